"""Running cells over sequences: :func:`scan`, :func:`stack` and :func:`bidirectional`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lstmx import _checks
from lstmx.cells import Cell, Params, State

Array = jax.Array

__all__ = [
    "Bidirectional",
    "BidirectionalParams",
    "BidirectionalState",
    "StackOptions",
    "StackParams",
    "StackState",
    "StepKey",
    "bidirectional",
    "scan",
    "scan_stepwise",
    "stack",
    "step_key",
]


def scan(
    cell: Cell,
    params: Params,
    xs: Array,
    state: State | None = None,
    *,
    key: Array | None = None,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int = 1,
    remat: int | None = None,
) -> tuple[State, Array]:
    """Runs ``cell`` over a sequence with ``lax.scan``.

    Uses the cell's fast path (``cell.fast_scan``: a hand-made VJP that saves what its
    backward needs, :mod:`lstmx._fused`) where it has one. Reverse-mode autodiff
    (``jax.grad``, ``jax.vjp``) works through it; forward mode (``jax.jvp``,
    ``jax.jacfwd``) does not, so use :func:`scan_stepwise`, same contract, for that.

    Args:
      cell: an :class:`lstmx.Cell`.
      params: the cell's params.
      xs: ``[*batch, T, I]``, or ``[T, *batch, I]`` with ``time_major=True``; any number
        of leading batch axes, including none.
      state: initial state; zeros (``cell.initial_state``) when None.
      key: randomness for a cell that has some (:func:`lstmx.regularized`); with a key
        the cell trains (masks are drawn), without one it runs its deterministic
        expectation. Step ``t`` (its time position, the same in either direction) gets
        ``step_key(key, t)``. A key for a cell without randomness is refused.
      lengths: ``[*batch]`` integer lengths of right-padded sequences. Outputs at and past
        a sequence's length are zero and the final state is the state after its own last
        step. Checked against ``[0, T]`` when concrete; under ``jit`` out-of-range values
        behave as if clipped to that range.
      reverse: run from the last step to the first; with ``lengths``, each sequence is
        reversed inside its own length (step ``lengths-1`` comes first). Outputs stay at
        their time positions.
      time_major: whether time is the first axis of ``xs`` and of the outputs.
      unroll: passed to ``lax.scan``.
      remat: None, or a number of steps ``k``: rematerialisation (gradient checkpointing,
        Chen et al. 2016). The sequence runs as ``ceil(T / k)`` blocks of ``k`` steps,
        each under ``jax.checkpoint``: the backward pass keeps only the state at each
        block's start and recomputes one block's forward at a time, so training memory
        grows as ``T / k + k`` steps' worth instead of ``T`` (``k ≈ sqrt(T)`` is the
        minimum), for about one more forward pass of compute. Values and gradients equal
        those without it. A last partial block is padded with steps that keep the state.

    Returns:
      ``(final_state, ys)`` with ``ys`` shaped like ``xs`` but ``cell.output_size`` features.
    """
    return _run(
        cell,
        params,
        xs,
        state,
        fused=True,
        key=key,
        lengths=lengths,
        reverse=reverse,
        time_major=time_major,
        unroll=unroll,
        remat=remat,
    )


def scan_stepwise(
    cell: Cell, params: Params, xs: Array, state: State | None = None, **options: Any
) -> tuple[State, Array]:
    """Same contract as :func:`scan`, calling ``cell.step`` once per step.

    Takes the same arguments and keyword options (``key``, ``lengths``, ``reverse``,
    ``time_major``, ``unroll``, ``remat``) as :func:`scan`. The plain reference path, differentiated
    by autodiff of ``lax.scan`` (forward mode included); :func:`scan` differs only in its
    hand-made VJP. Tests hold :func:`scan` to it.
    """
    return _run(cell, params, xs, state, fused=False, **options)


def _run(
    cell,
    params,
    xs,
    state,
    *,
    fused,
    key=None,
    lengths=None,
    reverse=False,
    time_major=False,
    unroll=1,
    remat=None,
):
    """:func:`scan` (``fused=True``) or :func:`scan_stepwise` (``fused=False``)."""
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an lstmx.Cell, got {type(cell).__name__}.")
    xs = _checks.float_array("xs", xs)
    if xs.ndim < 2:
        layout = "[T, *batch, features]" if time_major else "[*batch, T, features]"
        raise ValueError(f"xs must be {layout} (at least 2 axes), got shape {tuple(xs.shape)}.")
    _checks.positive_int("unroll", unroll)
    if remat is not None:
        _checks.positive_int("remat", remat)
    if not isinstance(reverse, bool) or not isinstance(time_major, bool):
        raise TypeError(
            f"reverse and time_major must be bools, got {reverse!r} and {time_major!r}."
        )
    time_axis = 0 if time_major else xs.ndim - 2
    num_steps = xs.shape[time_axis]
    if num_steps == 0:
        raise ValueError(f"xs must have at least one time step, got shape {tuple(xs.shape)}.")
    batch_shape = tuple(xs.shape[:time_axis] + xs.shape[time_axis + 1 : -1])
    if state is None:
        state = cell.initial_state(batch_shape, xs.dtype)
    _check_state_batch(state, batch_shape, xs.dtype)
    step = _step_with_randomness(cell, key)
    # The cell's own step checks params, state and input, at trace time only.
    x_0 = lax.index_in_dim(xs, 0, time_axis, keepdims=False)
    jax.eval_shape(step, params, state, x_0, jnp.zeros((), jnp.int32))
    valid = None
    if lengths is not None:
        lengths = _check_lengths(lengths, batch_shape, num_steps)
        valid = jnp.arange(num_steps).reshape((num_steps,) + (1,) * lengths.ndim) < lengths[None]
    xs = jnp.moveaxis(xs, time_axis, 0)  # [T, *batch, I]
    times = jnp.arange(num_steps, dtype=jnp.int32)

    def run(state, xs, valid, times):
        if fused and key is None:
            return _fast_scan(cell, params, state, xs, valid, reverse, unroll)
        return _scan_steps(step, params, state, xs, valid, times, reverse, unroll)

    if remat is None:
        final, ys = run(state, xs, valid, times)
    else:
        final, ys = _run_in_blocks(run, state, xs, valid, times, reverse, remat, batch_shape)
    return final, jnp.moveaxis(ys, 0, time_axis)


def _run_in_blocks(run, state, xs, valid, times, reverse, block, batch_shape):
    """``run(state, xs, valid, times)`` over blocks of ``block`` steps, each under
    ``jax.checkpoint`` (see ``remat`` in :func:`scan`); time-major arrays."""
    num_steps = xs.shape[0]
    num_blocks = -(-num_steps // block)
    padding = num_blocks * block - num_steps
    if padding:  # the padded steps are invalid: they keep the state and output zeros
        if valid is None:
            valid = jnp.ones((num_steps, *batch_shape), bool)
        valid = jnp.concatenate([valid, jnp.zeros((padding, *batch_shape), bool)])
        xs = jnp.concatenate([xs, jnp.zeros((padding, *xs.shape[1:]), xs.dtype)])
        times = jnp.arange(num_steps + padding, dtype=jnp.int32)

    def blocks(a):
        return None if a is None else a.reshape(num_blocks, block, *a.shape[1:])

    @jax.checkpoint
    def one_block(state, inputs):
        return run(state, *inputs)

    final, ys = lax.scan(
        one_block, state, (blocks(xs), blocks(valid), blocks(times)), reverse=reverse
    )
    return final, ys.reshape(num_blocks * block, *ys.shape[2:])[:num_steps]


class StepKey(NamedTuple):
    """The randomness of one step of a cell that has some.

    Attributes:
      sequence: the same key at every step of a sequence: per-sequence masks (Gal &
        Ghahramani's variational dropout) come from it.
      step: this step's own key: per-step masks (zoneout, Semeniuta's dropout) come from it.
    """

    sequence: Array
    step: Array


def step_key(key: Array, t: Any) -> StepKey:
    """The :class:`StepKey` of time position ``t`` in a sequence run with ``key``.

    :func:`scan` gives step ``t`` exactly this, so a step loop written by hand
    (``cell.step(params, state, x_t, key=step_key(key, t))``) draws the same masks.
    """
    sequence_key, steps_key = jax.random.split(key)
    return StepKey(sequence_key, jax.random.fold_in(steps_key, t))


def _step_with_randomness(cell: Cell, key: Array | None) -> Callable:
    """``step(params, state, x, t)``: the cell's step, given ``step_key(key, t)`` if keyed."""
    if key is None:
        return lambda params, state, x, t: cell.step(params, state, x)
    if not getattr(cell.options, "stochastic", False):
        raise ValueError(
            "key is for cells with randomness (lstmx.regularized(...)); this cell has none. "
            "Drop key=, or wrap the cell with lstmx.regularized."
        )
    return lambda params, state, x, t: cell.step(params, state, x, key=step_key(key, t))


def _scan_steps(step, params, state, inputs, valid, times, reverse, unroll):
    """``lax.scan`` of ``step(params, state, x, t)`` for ``t`` in ``times [T]``; where
    ``valid`` [T, *batch] is False the state is kept."""

    def masked_step(carry, inputs_t):
        x_t, t, valid_t = inputs_t
        new_state, y = step(params, carry, x_t, t)
        if valid_t is None:
            return new_state, y
        keep = valid_t[..., None]
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(keep, new, old), new_state, carry
        )
        return new_state, jnp.where(keep, y, jnp.zeros_like(y))

    return lax.scan(masked_step, state, (inputs, times, valid), reverse=reverse, unroll=unroll)


def _fast_scan(cell, params, state, xs, valid, reverse, unroll):
    """The cell's fast path if it has one, else autodiff of ``lax.scan`` over its step."""
    if cell.fast_scan is not None:
        try:
            return cell.fast_scan(params, state, xs, valid, reverse, unroll)
        except TypeError as error:
            if "forward-mode autodiff" not in str(error):
                raise
            raise TypeError(
                "lstmx.scan runs this cell's fast path, whose gradient is a custom VJP: "
                "reverse mode (jax.grad, jax.vjp, jax.jacrev) only. For forward mode "
                "(jax.jvp, jax.jacfwd, jax.hessian) use lstmx.scan_stepwise, which takes the "
                "same arguments and gives the same values."
            ) from None
    step = _step_with_randomness(cell, None)
    times = jnp.arange(xs.shape[0], dtype=jnp.int32)
    return _scan_steps(step, params, state, xs, valid, times, reverse, unroll)


def _check_state_batch(state: State, batch_shape: tuple[int, ...], dtype: Any) -> None:
    for leaf in jax.tree_util.tree_leaves(state):
        if not hasattr(leaf, "shape"):
            raise TypeError(f"state must hold arrays, got a leaf of type {type(leaf).__name__}.")
        if leaf.dtype != dtype:
            raise TypeError(
                f"state and xs must have the same dtype, got state {leaf.dtype} and xs {dtype}; "
                f"make it with cell.initial_state(batch_shape, {dtype})."
            )
        if tuple(leaf.shape[:-1]) != batch_shape:
            raise ValueError(
                f"state has batch shape {tuple(leaf.shape[:-1])} but xs has batch shape "
                f"{batch_shape}; make it with cell.initial_state({batch_shape})."
            )


def _check_lengths(lengths: Any, batch_shape: tuple[int, ...], num_steps: int) -> Array:
    dtype = getattr(lengths, "dtype", None)
    if dtype is None:
        lengths = np.asarray(lengths)
        dtype = lengths.dtype
    if not jnp.issubdtype(dtype, jnp.integer):
        raise TypeError(f"lengths must be integers, got dtype {dtype}.")
    if tuple(jnp.shape(lengths)) != batch_shape:
        raise ValueError(
            f"lengths must have the batch shape of xs, {batch_shape}, "
            f"got {tuple(jnp.shape(lengths))}."
        )
    try:
        values = np.asarray(lengths)
    except jax.errors.TracerArrayConversionError:
        values = None  # traced under jit: checked by the caller's data, clipped by the mask
    if values is not None and values.size and (values.min() < 0 or values.max() > num_steps):
        raise ValueError(
            f"lengths must lie in [0, T={num_steps}], got values from {values.min()} to "
            f"{values.max()}."
        )
    return jnp.asarray(lengths)


class StackParams(NamedTuple):
    """Parameters of a stacked cell: one entry per layer, bottom first."""

    layers: tuple


class StackState(NamedTuple):
    """State of a stacked cell: one entry per layer, bottom first."""

    layers: tuple


@dataclasses.dataclass(frozen=True)
class StackOptions:
    """What a stack is: its layers' cells, bottom first (each with its own ``options``)."""

    layers: tuple[Cell, ...]

    @property
    def stochastic(self) -> bool:
        """Whether a layer has randomness (then the stack's step takes a ``key``)."""
        return any(_is_stochastic(layer) for layer in self.layers)


def _is_stochastic(cell: Cell) -> bool:
    return bool(getattr(cell.options, "stochastic", False))


def stack(cells: Sequence[Cell]) -> Cell:
    """Stacks cells into a multi-layer cell: layer ``l+1`` reads layer ``l``'s output.

    The stack is a :class:`lstmx.Cell` whose ``options`` is a :class:`StackOptions`
    listing the layers. :func:`scan` runs a stack layer by layer, each layer on its own
    fast path.
    """
    cells = tuple(cells)
    if not cells:
        raise ValueError("stack needs at least one cell, got none.")
    for index, cell in enumerate(cells):
        if not isinstance(cell, Cell):
            raise TypeError(
                f"stack's cells[{index}] must be an lstmx.Cell, got {type(cell).__name__}."
            )

    def init(key: Array, input_size: int, dtype: Any = jnp.float32) -> StackParams:
        layers = []
        for cell, layer_key in zip(cells, jax.random.split(key, len(cells)), strict=True):
            layers.append(cell.init(layer_key, input_size, dtype))
            input_size = cell.output_size
        return StackParams(tuple(layers))

    def initial_state(batch_shape: Sequence[int] = (), dtype: Any = jnp.float32) -> StackState:
        return StackState(tuple(cell.initial_state(batch_shape, dtype) for cell in cells))

    def check(params: Any, state: Any) -> None:
        _checks.params_type("params", params, StackParams)
        _checks.params_type("state", state, StackState)
        for name, value in (("params", params), ("state", state)):
            if len(value.layers) != len(cells):
                raise ValueError(f"{name} has {len(value.layers)} layers, the stack {len(cells)}.")

    def step_with_gates(
        params: StackParams, state: StackState, x: Array, key: StepKey | None = None
    ) -> tuple[StackState, Array, dict[str, Array]]:
        """The stack's step and every layer's gates, as ``{"layers[l].<gate>": [*batch, H]}``."""
        check(params, state)
        new_states, y, gates = [], x, {}
        for index, cell in enumerate(cells):
            layer_params, layer_state = params.layers[index], state.layers[index]
            randomness = {}
            if key is not None and _is_stochastic(cell):  # each layer its own randomness
                randomness = {"key": StepKey(*(jax.random.fold_in(k, index) for k in key))}
            if cell.step_with_gates is None:  # a cell built by hand: no gates to report
                layer_state, y = cell.step(layer_params, layer_state, y, **randomness)
                layer_gates = {}
            else:
                layer_state, y, layer_gates = cell.step_with_gates(
                    layer_params, layer_state, y, **randomness
                )
            new_states.append(layer_state)
            gates.update({f"layers[{index}].{name}": v for name, v in layer_gates.items()})
        return StackState(tuple(new_states)), y, gates

    def step(params: StackParams, state: StackState, x: Array, key: StepKey | None = None):
        new_state, y, _ = step_with_gates(params, state, x, key)
        return new_state, y

    def fast_scan(params, state, xs, valid, reverse, unroll):
        """Layer by layer, each on its own fast path."""
        check(params, state)
        finals = []
        for cell, layer_params, layer_state in zip(cells, params.layers, state.layers, strict=True):
            final, xs = _fast_scan(cell, layer_params, layer_state, xs, valid, reverse, unroll)
            finals.append(final)
        return StackState(tuple(finals)), xs

    return Cell(
        init=init,
        initial_state=initial_state,
        step=step,
        output_size=cells[-1].output_size,
        options=StackOptions(cells),
        fast_scan=fast_scan,
        step_with_gates=step_with_gates,
    )


class BidirectionalParams(NamedTuple):
    forward: Params
    backward: Params


class BidirectionalState(NamedTuple):
    forward: State
    backward: State


class Bidirectional(NamedTuple):
    """A bidirectional *layer*: a forward and a backward cell over one sequence.

    Not a :class:`lstmx.Cell`: the backward half needs the whole sequence before its first
    output, so a bidirectional layer cannot ``step``; it has ``apply`` over a sequence
    instead. Stack bidirectional layers by applying them one after another.

    Attributes:
      init: ``init(key, input_size, dtype=float32) -> BidirectionalParams``.
      initial_state: ``initial_state(batch_shape=(), dtype=float32) -> BidirectionalState``.
      apply: ``apply(params, xs, state=None, *, key=None, lengths=None, time_major=False,
        unroll=1)
        -> (BidirectionalState, ys)``, ``ys [..., O_fwd + O_bwd]``; with ``lengths`` the
        backward cell reads each sequence from its own last step; ``key`` is split between
        the halves that have randomness.
      output_size: ``O_fwd + O_bwd``.
      forward: the forward cell.
      backward: the backward cell.
    """

    init: Callable[..., BidirectionalParams]
    initial_state: Callable[..., BidirectionalState]
    apply: Callable[..., tuple[BidirectionalState, Array]]
    output_size: int
    forward: Cell
    backward: Cell


def bidirectional(forward: Cell, backward: Cell) -> Bidirectional:
    """Builds a bidirectional layer from two cells (Schuster & Paliwal 1997)."""
    for name, cell in (("forward", forward), ("backward", backward)):
        if not isinstance(cell, Cell):
            raise TypeError(
                f"bidirectional's {name} must be an lstmx.Cell, got {type(cell).__name__}."
            )

    def init(key: Array, input_size: int, dtype: Any = jnp.float32) -> BidirectionalParams:
        key_f, key_b = jax.random.split(key)
        return BidirectionalParams(
            forward.init(key_f, input_size, dtype), backward.init(key_b, input_size, dtype)
        )

    def initial_state(batch_shape: Sequence[int] = (), dtype: Any = jnp.float32):
        return BidirectionalState(
            forward.initial_state(batch_shape, dtype), backward.initial_state(batch_shape, dtype)
        )

    def apply(params, xs, state=None, *, key=None, lengths=None, time_major=False, unroll=1):
        _checks.params_type("params", params, BidirectionalParams)
        if state is None:
            state = BidirectionalState(None, None)
        _checks.params_type("state", state, BidirectionalState)
        options = {"lengths": lengths, "time_major": time_major, "unroll": unroll}
        key_f = key_b = None
        if key is not None:
            if not (_is_stochastic(forward) or _is_stochastic(backward)):
                raise ValueError("key is for cells with randomness; neither half has any.")
            key_f, key_b = jax.random.split(key)
            key_f = key_f if _is_stochastic(forward) else None
            key_b = key_b if _is_stochastic(backward) else None
        final_f, ys_f = scan(forward, params.forward, xs, state.forward, key=key_f, **options)
        final_b, ys_b = scan(
            backward, params.backward, xs, state.backward, key=key_b, reverse=True, **options
        )
        return BidirectionalState(final_f, final_b), jnp.concatenate([ys_f, ys_b], axis=-1)

    output_size = forward.output_size + backward.output_size
    return Bidirectional(init, initial_state, apply, output_size, forward, backward)
