"""Running cells over sequences: :func:`scan`, :func:`stack` and :func:`bidirectional`."""

from __future__ import annotations

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
    "StackParams",
    "StackState",
    "bidirectional",
    "scan",
    "scan_stepwise",
    "stack",
]


def scan(
    cell: Cell,
    params: Params,
    xs: Array,
    state: State | None = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int = 1,
) -> tuple[State, Array]:
    """Runs ``cell`` over a sequence with ``lax.scan``.

    Uses the cell's fast path (``cell.fast_scan``: a hand-made VJP whose weight gradients
    are single GEMMs after the backward loop) where it has one. Reverse-mode autodiff
    (``jax.grad``, ``jax.vjp``) works through it; forward mode (``jax.jvp``,
    ``jax.jacfwd``) does not, so use :func:`scan_stepwise`, same contract, for that.

    Args:
      cell: an :class:`lstmx.Cell`.
      params: the cell's params.
      xs: ``[*batch, T, I]``, or ``[T, *batch, I]`` with ``time_major=True``; any number
        of leading batch axes, including none.
      state: initial state; zeros (``cell.initial_state``) when None.
      lengths: ``[*batch]`` integer lengths of right-padded sequences. Outputs at and past
        a sequence's length are zero and the final state is the state after its own last
        step. Checked against ``[0, T]`` when concrete; under ``jit`` out-of-range values
        behave as if clipped to that range.
      reverse: run from the last step to the first; with ``lengths``, each sequence is
        reversed inside its own length (step ``lengths-1`` comes first). Outputs stay at
        their time positions.
      time_major: whether time is the first axis of ``xs`` and of the outputs.
      unroll: passed to ``lax.scan``.

    Returns:
      ``(final_state, ys)`` with ``ys`` shaped like ``xs`` but ``cell.output_size`` features.
    """
    return _run(cell, params, xs, state, lengths, reverse, time_major, unroll, fused=True)


def scan_stepwise(
    cell: Cell,
    params: Params,
    xs: Array,
    state: State | None = None,
    *,
    lengths: Array | None = None,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int = 1,
) -> tuple[State, Array]:
    """Same contract as :func:`scan`, calling ``cell.step`` once per step.

    The plain reference path, differentiated by autodiff of ``lax.scan`` (forward mode
    included); :func:`scan` differs only in its hand-made VJP. Tests hold :func:`scan`
    to it.
    """
    return _run(cell, params, xs, state, lengths, reverse, time_major, unroll, fused=False)


def _run(cell, params, xs, state, lengths, reverse, time_major, unroll, *, fused):
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an lstmx.Cell, got {type(cell).__name__}.")
    xs = _checks.float_array("xs", xs)
    if xs.ndim < 2:
        layout = "[T, *batch, features]" if time_major else "[*batch, T, features]"
        raise ValueError(f"xs must be {layout} (at least 2 axes), got shape {tuple(xs.shape)}.")
    _checks.positive_int("unroll", unroll)
    if not isinstance(reverse, bool) or not isinstance(time_major, bool):
        raise TypeError(
            f"reverse and time_major must be bools, got {reverse!r} and {time_major!r}."
        )
    time_axis = 0 if time_major else xs.ndim - 2
    num_steps = xs.shape[time_axis]
    if num_steps == 0:
        raise ValueError(f"xs must have at least one time step, got shape {tuple(xs.shape)}.")
    batch_shape = tuple(xs.shape[:time_axis] + xs.shape[time_axis + 1 : -1])
    jax.eval_shape(cell.project_inputs, params, xs)  # checks params and xs on the user's layout
    if state is None:
        state = cell.initial_state(batch_shape, xs.dtype)
    _check_state_batch(state, batch_shape, xs.dtype)
    # The cell's own step checks the state's type and sizes, at trace time only.
    jax.eval_shape(cell.step, params, state, lax.index_in_dim(xs, 0, time_axis, keepdims=False))
    valid = None
    if lengths is not None:
        lengths = _check_lengths(lengths, batch_shape, num_steps)
        valid = jnp.arange(num_steps).reshape((num_steps,) + (1,) * lengths.ndim) < lengths[None]
    xs = jnp.moveaxis(xs, time_axis, 0)  # [T, *batch, I]
    if fused:
        final, ys = _fast_scan(cell, params, state, xs, valid, reverse, unroll)
    else:
        final, ys = _scan_steps(cell.step, params, state, xs, valid, reverse, unroll)
    return final, jnp.moveaxis(ys, 0, time_axis)


def _scan_steps(step, params, state, inputs, valid, reverse, unroll):
    """``lax.scan`` of ``step``; where ``valid`` [T, *batch] is False the state is kept."""

    def masked_step(carry, inputs_t):
        x_t, valid_t = inputs_t
        new_state, y = step(params, carry, x_t)
        if valid_t is None:
            return new_state, y
        keep = valid_t[..., None]
        new_state = jax.tree_util.tree_map(
            lambda new, old: jnp.where(keep, new, old), new_state, carry
        )
        return new_state, jnp.where(keep, y, jnp.zeros_like(y))

    return lax.scan(masked_step, state, (inputs, valid), reverse=reverse, unroll=unroll)


def _fast_scan(cell, params, state, xs, valid, reverse, unroll):
    """The cell's fast path if it has one, else autodiff of ``lax.scan`` over its step."""
    if cell.fast_scan is not None:
        return cell.fast_scan(params, state, xs, valid, reverse, unroll)

    def step(params, state, x):
        return cell.step_projected(params, state, cell.project_inputs(params, x))

    return _scan_steps(step, params, state, xs, valid, reverse, unroll)


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


def stack(cells: Sequence[Cell]) -> Cell:
    """Stacks cells into a multi-layer cell: layer ``l+1`` reads layer ``l``'s output.

    The stack's output is the top layer's; its ``project_inputs`` is the bottom layer's.
    :func:`scan` runs a stack layer by layer, each layer on its own fast path.
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

    def check(params: Any, state: Any = None) -> None:
        _checks.params_type("params", params, StackParams)
        if len(params.layers) != len(cells):
            raise ValueError(f"params has {len(params.layers)} layers, the stack {len(cells)}.")
        if state is not None:
            _checks.params_type("state", state, StackState)
            if len(state.layers) != len(cells):
                raise ValueError(f"state has {len(state.layers)} layers, the stack {len(cells)}.")

    def project_inputs(params: StackParams, x: Array) -> Array:
        check(params)
        return cells[0].project_inputs(params.layers[0], x)

    def step_projected(params: StackParams, state: StackState, x_proj: Array):
        new_states = []
        layer_state, y = cells[0].step_projected(params.layers[0], state.layers[0], x_proj)
        new_states.append(layer_state)
        for cell, layer_params, layer_state in zip(
            cells[1:], params.layers[1:], state.layers[1:], strict=True
        ):
            layer_state, y = cell.step(layer_params, layer_state, y)
            new_states.append(layer_state)
        return StackState(tuple(new_states)), y

    def step(params: StackParams, state: StackState, x: Array):
        check(params, state)
        return step_projected(params, state, project_inputs(params, x))

    def fast_scan(params, state, xs, valid, reverse, unroll):
        """Layer by layer, each on its own fast path."""
        check(params, state)
        finals = []
        for cell, layer_params, layer_state in zip(cells, params.layers, state.layers, strict=True):
            final, xs = _fast_scan(cell, layer_params, layer_state, xs, valid, reverse, unroll)
            finals.append(final)
        ys = xs
        return StackState(tuple(finals)), ys

    return Cell(
        init,
        initial_state,
        step,
        project_inputs,
        step_projected,
        cells[-1].output_size,
        fast_scan,
    )


class BidirectionalParams(NamedTuple):
    forward: Params
    backward: Params


class BidirectionalState(NamedTuple):
    forward: State
    backward: State


class Bidirectional(NamedTuple):
    """A forward and a backward cell run over one sequence, outputs concatenated.

    Attributes:
      init: ``init(key, input_size, dtype=float32) -> BidirectionalParams``.
      initial_state: ``initial_state(batch_shape=(), dtype=float32) -> BidirectionalState``.
      apply: ``apply(params, xs, state=None, *, lengths=None, time_major=False, unroll=1)
        -> (BidirectionalState, ys)``, ``ys [..., O_fwd + O_bwd]``; with ``lengths`` the
        backward cell reads each sequence from its own last step.
      output_size: ``O_fwd + O_bwd``.
    """

    init: Callable[..., BidirectionalParams]
    initial_state: Callable[..., BidirectionalState]
    apply: Callable[..., tuple[BidirectionalState, Array]]
    output_size: int


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

    def apply(params, xs, state=None, *, lengths=None, time_major=False, unroll=1):
        _checks.params_type("params", params, BidirectionalParams)
        if state is None:
            state = BidirectionalState(None, None)
        _checks.params_type("state", state, BidirectionalState)
        options = {"lengths": lengths, "time_major": time_major, "unroll": unroll}
        final_f, ys_f = scan(forward, params.forward, xs, state.forward, **options)
        final_b, ys_b = scan(backward, params.backward, xs, state.backward, reverse=True, **options)
        return BidirectionalState(final_f, final_b), jnp.concatenate([ys_f, ys_b], axis=-1)

    return Bidirectional(init, initial_state, apply, forward.output_size + backward.output_size)
