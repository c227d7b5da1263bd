r"""Gradient flow and gate statistics of a cell on a sequence.

Gradient flow (the vanishing-gradient problem, Hochreiter 1991; Bengio, Simard & Frasconi
1994) is measured as the Frobenius norm of the Jacobian of the last output with respect to
each earlier input and each earlier hidden state::

    flow = diagnostics.gradient_norms(cell, params, xs)      # xs [T, I] or [*batch, T, I]
    flow.wrt_states      # [T]: ||dh_T / dh_t||_F, t = 1..T
    flow.lags            # [T]: T - t, the time lag of each entry

Gate statistics are the mean activation of each gate and the share of saturated
activations, recomputed step by step from the params and the states::

    stats = diagnostics.gate_statistics("lstm", params, xs)
    stats["f"].mean, stats["f"].saturated_high

Numbers only: the files, plots and tables built from them are the lab's
(``experiments/gradient_flow``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lstmx import _checks, cells
from lstmx.cells import Cell, GRUParams, LSTMParams, RNNParams
from lstmx.describe import _layout
from lstmx.sequence import StackParams, StackState

Array = jax.Array

__all__ = [
    "SATURATION_MARGIN",
    "GateStats",
    "GradientFlow",
    "gate_activations",
    "gate_statistics",
    "gradient_norms",
]

SATURATION_MARGIN = 0.05
"""A sigmoid gate is saturated below 0.05 or above 0.95; a tanh below -0.95 or above 0.95."""


# --------------------------------------------------------------------------------------
# Gradient flow.
# --------------------------------------------------------------------------------------


class GradientFlow(NamedTuple):
    r"""Jacobian norms of the last output :math:`h_T` of a sequence of length ``T``.

    Entry ``t - 1`` (steps counted ``t = 1..T``) belongs to step ``t``, at time lag
    ``T - t`` (see :attr:`lags`); the last entry is lag 0.

    Attributes:
      wrt_inputs: ``[T]`` :math:`\lVert \partial h_T / \partial x_t \rVert_F`.
      wrt_states: ``[T]`` :math:`\lVert \partial h_T / \partial h_t \rVert_F`; the last
        entry is :math:`\lVert I_H \rVert_F = \sqrt{H}`.
    """

    wrt_inputs: Array
    wrt_states: Array

    @property
    def lags(self) -> np.ndarray:
        """``[T]`` the time lag ``T - t`` of each entry: ``T-1, T-2, ..., 0``."""
        return np.arange(self.wrt_states.shape[-1])[::-1]


def gradient_norms(cell: Cell, params: Any, xs: Array, state: Any = None) -> GradientFlow:
    r"""How strongly the last output depends on each earlier input and hidden state.

    For a sequence :math:`x_1, \dots, x_T` and hidden outputs :math:`h_t` (the output
    after step :math:`t`; for a stack, the top layer's), returns for every :math:`t`

    .. math::
        \Big\lVert \frac{\partial h_T}{\partial x_t} \Big\rVert_F
        \quad\text{and}\quad
        \Big\lVert \frac{\partial h_T}{\partial h_t} \Big\rVert_F
        = \Big\lVert \prod_{s=t+1}^{T} \frac{\partial h_s}{\partial h_{s-1}} \Big\rVert_F
        \text{ (RNN, GRU)}.

    :math:`\partial h_T / \partial h_t` is the derivative with respect to the ``h`` field
    of the state after step :math:`t`, the rest of the state (an LSTM's cell state
    :math:`c_t`, an FGR cell's gate activations) held fixed: it is computed exactly by
    adding an injection :math:`\delta_t` to :math:`h_t` at every step and differentiating
    :math:`h_T` with respect to :math:`\delta` at :math:`\delta = 0`. For an LSTM the
    gradient that reaches step :math:`t` through :math:`c_t` is therefore not part of it;
    it is part of :math:`\partial h_T / \partial x_t`, which counts every path.

    Both come from one reverse-mode pass per output unit: a ``jax.vjp`` of
    :math:`(x, \delta) \mapsto h_T` pulled back along the ``H`` one-hot cotangents
    (``jax.vmap``), which gives the Jacobians row by row.

    Args:
      cell: an :class:`lstmx.Cell` whose state has an ``h`` field (every lstmx cell, and
        stacks of them).
      params: the cell's params.
      xs: ``[T, I]`` one sequence, or ``[*batch, T, I]``: then the norms are averaged
        over the batch (the mean of each sequence's norm).
      state: initial state (``[*batch]`` like ``xs``); zeros when None.

    Returns:
      A :class:`GradientFlow` of two ``[T]`` arrays.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an lstmx.Cell, got {type(cell).__name__}.")
    xs = _checks.float_array("xs", xs)
    if xs.ndim < 2:
        raise ValueError(f"xs must be [T, I] or [*batch, T, I], got shape {tuple(xs.shape)}.")
    jax.eval_shape(cell.project_inputs, params, xs)  # checks params against xs
    batch_shape = tuple(xs.shape[:-2])
    if state is None:
        state = cell.initial_state(batch_shape, xs.dtype)
    for leaf in jax.tree_util.tree_leaves(state):
        if tuple(leaf.shape[:-1]) != batch_shape:
            raise ValueError(
                f"state has batch shape {tuple(leaf.shape[:-1])} but xs has batch shape "
                f"{batch_shape}; make it with cell.initial_state({batch_shape})."
            )
    _output_h(state)  # a clear error for states without an h field
    num = math.prod(batch_shape)
    flat_xs = xs.reshape((num, *xs.shape[-2:]))
    flat_state = jax.tree_util.tree_map(lambda a: a.reshape((num, a.shape[-1])), state)
    wrt_inputs, wrt_states = _batched_norms(cell, params, flat_xs, flat_state)
    return GradientFlow(wrt_inputs, wrt_states)


def _batched_norms(cell: Cell, params: Any, xs: Array, state: Any) -> tuple[Array, Array]:
    """``xs [N, T, I]``, ``state [N, ...]`` -> the two norms ``[T]``, averaged over N."""
    try:
        norms = _compiled_norms(cell)  # one compilation per cell and shapes
    except TypeError:  # a cell with unhashable fields: compile for this call only
        norms = _compiled_norms.__wrapped__(cell)
    return norms(params, xs, state)


@functools.lru_cache(maxsize=32)
def _compiled_norms(cell: Cell) -> Callable[[Any, Array, Any], tuple[Array, Array]]:
    def one(params: Any, xs: Array, state: Any) -> tuple[Array, Array]:
        deltas = jnp.zeros((xs.shape[0], cell.output_size), xs.dtype)

        def last_output(xs: Array, deltas: Array) -> Array:
            def body(carry, inputs):
                x, delta = inputs
                carry, _ = cell.step(params, carry, x)
                return _add_to_h(carry, delta), None

            final, _ = lax.scan(body, state, (xs, deltas))
            return _output_h(final)

        h_last, pullback = jax.vjp(last_output, xs, deltas)

        def squared_rows(cotangent: Array) -> tuple[Array, Array]:
            d_xs, d_deltas = pullback(cotangent)  # one row of each Jacobian: [T, I], [T, H]
            return jnp.sum(d_xs**2, axis=-1), jnp.sum(d_deltas**2, axis=-1)

        eye = jnp.eye(h_last.shape[-1], dtype=h_last.dtype)
        sq_x, sq_h = jax.vmap(squared_rows)(eye)  # [H, T] each
        return jnp.sqrt(jnp.sum(sq_x, axis=0)), jnp.sqrt(jnp.sum(sq_h, axis=0))

    @jax.jit
    def batched(params: Any, xs: Array, state: Any) -> tuple[Array, Array]:
        norms_x, norms_h = jax.vmap(one, in_axes=(None, 0, 0))(params, xs, state)
        return jnp.mean(norms_x, axis=0), jnp.mean(norms_h, axis=0)

    return batched


def _output_h(state: Any) -> Array:
    """The hidden output in ``state``: its ``h`` field, or the top layer's for a stack."""
    if isinstance(state, StackState):
        return _output_h(state.layers[-1])
    h = getattr(state, "h", None)
    if h is None or not hasattr(state, "_replace"):
        raise TypeError(
            "gradient_norms needs a state NamedTuple with an h field (or a stack of such), "
            f"got {type(state).__name__}."
        )
    return h


def _add_to_h(state: Any, delta: Array) -> Any:
    if isinstance(state, StackState):
        return StackState((*state.layers[:-1], _add_to_h(state.layers[-1], delta)))
    return state._replace(h=state.h + delta)


# --------------------------------------------------------------------------------------
# Gate statistics.
# --------------------------------------------------------------------------------------


class GateStats(NamedTuple):
    """Activation statistics of one gate over all steps, sequences and units.

    Attributes:
      mean: the mean activation.
      saturated_low: the share of activations below ``0.05`` (sigmoid) or ``-0.95``
        (tanh): the gate is shut.
      saturated_high: the share above ``0.95``: the gate is wide open (sigmoid) or the
        tanh is flat.
      activation: "sigmoid" or "tanh".
    """

    mean: float
    saturated_low: float
    saturated_high: float
    activation: str


def gate_activations(
    variant: str, params: Any, xs: Array, state: Any = None, **options: Any
) -> dict[str, Array]:
    r"""The activation of every gate at every step of a cell run over ``xs``.

    The gates are recomputed at every step from the params, the input and the states
    before and after the step, with the cell's own equations (see :func:`lstmx.lstm`,
    :func:`lstmx.gru`). Which gates exist is a property of the variant, not of the params'
    shapes, so the cell is named as for :func:`lstmx.variant`.

    Gates returned, in the order of the kernels' blocks:

    * LSTM: the sigmoid gates with weights (``i``, ``f``, ``o``; CIFG's ``i = 1 - f`` and
      the constant gates of NIG, NFG and NOG are left out) and the block input
      ``g = tanh(z_g)`` (not for NIAF, whose ``g`` is a plain pre-activation).
    * GRU: ``r`` and ``z`` (sigmoid) and the candidate ``n`` (tanh).
    * Elman RNN: none.

    Args:
      variant: a name from :func:`lstmx.variant_names`.
      params: the cell's params; for :class:`lstmx.StackParams` every layer is the same
        variant and the keys are ``"layers[l].<gate>"``.
      xs: ``[*batch, T, I]`` (any number of leading batch axes, including none).
      state: initial state; zeros when None.
      **options: the factory's keyword options over the variant's own, as in
        :func:`lstmx.variant` (e.g. ``peephole=True`` for ``lstmx.lstm(H, peephole=True)``
        described as "lstm").

    Returns:
      ``{gate: [*batch, T, H]}``.
    """
    layout = _layout(variant, options)
    xs = _checks.float_array("xs", xs)
    if xs.ndim < 2:
        raise ValueError(f"xs must be [*batch, T, I], got shape {tuple(xs.shape)}.")
    xs = jnp.moveaxis(xs, -2, 0)  # [T, *batch, I]
    if isinstance(params, StackParams):
        gates = {}
        states = (None,) * len(params.layers) if state is None else state.layers
        for index, (layer, layer_state) in enumerate(zip(params.layers, states, strict=True)):
            layer_gates, xs = _layer_gates(layout, variant, options, layer, xs, layer_state)
            gates.update({f"layers[{index}].{name}": v for name, v in layer_gates.items()})
    else:
        gates = _layer_gates(layout, variant, options, params, xs, state)[0]
    return {name: jnp.moveaxis(values, 0, -2) for name, values in gates.items()}


def gate_statistics(
    variant: str, params: Any, xs: Array, state: Any = None, **options: Any
) -> dict[str, GateStats]:
    r"""Mean activation and saturation of each gate over all steps, sequences and units.

    The gates are those of :func:`gate_activations` (same arguments). A sigmoid gate is
    saturated below ``0.05`` (``saturated_low``: shut) or above ``0.95``
    (``saturated_high``: open); a tanh (``g``, ``n``) below ``-0.95`` or above ``0.95``
    (:data:`SATURATION_MARGIN` = 0.05 from the ends of the range). An Elman RNN has no
    gates: ``{}``.

    Returns:
      ``{gate: GateStats}`` with Python floats, in the order of :func:`gate_activations`.
    """
    stats = {}
    for name, values in gate_activations(variant, params, xs, state, **options).items():
        activation = "tanh" if name.rsplit(".", 1)[-1] in ("g", "n") else "sigmoid"
        low = -1.0 + SATURATION_MARGIN if activation == "tanh" else SATURATION_MARGIN
        high = 1.0 - SATURATION_MARGIN
        stats[name] = GateStats(
            float(jnp.mean(values)),
            float(jnp.mean(values < low)),
            float(jnp.mean(values > high)),
            activation,
        )
    return stats


def _layer_gates(layout, variant, options, params, xs, state):
    """One layer's gates ``{name: [T, *batch, H]}`` and outputs ``[T, *batch, H]``."""
    expected = {"lstm": LSTMParams, "gru": GRUParams, "rnn": RNNParams}[layout.kind]
    _checks.params_type("params", params, expected)
    hidden_size = params.w_h.shape[0]
    if state is None:
        cell = cells.variant(variant, hidden_size, **options)
        state = cell.initial_state(xs.shape[1:-1], xs.dtype)
    key = (variant, tuple(sorted(options.items())), hidden_size)
    try:
        run = _compiled_gates(*key)  # one compilation per variant, options and shapes
    except TypeError:  # an unhashable option value
        run = _compiled_gates.__wrapped__(*key)
    gates, ys = run(params, xs, state)
    # lax.scan returns dicts with sorted keys; put the gates back in block order.
    return {name: gates[name] for name in layout.blocks if name in gates}, ys


@functools.lru_cache(maxsize=64)
def _compiled_gates(variant: str, options: tuple, hidden_size: int) -> Callable:
    layout = _layout(variant, dict(options))
    cell = cells.variant(variant, hidden_size, **dict(options))
    gates_fn = {"lstm": _lstm_gates, "gru": _gru_gates, "rnn": lambda *_: {}}[layout.kind]

    @jax.jit
    def run(params: Any, xs: Array, state: Any) -> tuple[dict[str, Array], Array]:
        def body(previous, x):
            new, y = cell.step(params, previous, x)
            return new, (gates_fn(layout, params, previous, new, x), y)

        _, (gates, ys) = lax.scan(body, state, xs)
        return gates, ys

    return run


def _affine(x: Array, w: Array, b: Array) -> Array:
    z = x @ w
    return z + jnp.broadcast_to(b, z.shape)


def _lstm_gates(layout, params: LSTMParams, previous, new, x) -> dict[str, Array]:
    """The gate activations of one LSTM step (the equations of :func:`lstmx.lstm`)."""
    options, blocks, sigmoid_gates = layout.options, layout.blocks, layout.sigmoid_gates
    z = _affine(x, params.w_x, params.b) + previous.h @ params.w_h
    pre = dict(zip(blocks, jnp.split(z, len(blocks), axis=-1), strict=True))
    if options["full_gate_recurrence"]:
        extra = jnp.split(previous.gates @ params.w_gates, len(sigmoid_gates), axis=-1)
        for name, value in zip(sigmoid_gates, extra, strict=True):
            pre[name] = pre[name] + value
    if options["peephole"]:
        for row, name in enumerate(sigmoid_gates):
            c = new.c if name == "o" else previous.c  # the output gate sees the new cell state
            pre[name] = pre[name] + jnp.broadcast_to(params.p[row], c.shape) * c
    gates = {}
    for name in blocks:
        if name != "g":
            gates[name] = cells.sigmoid(pre[name])
        elif options["input_activation"]:
            gates[name] = jnp.tanh(pre[name])
    return gates


def _gru_gates(layout, params: GRUParams, previous, new, x) -> dict[str, Array]:
    """The gate activations of one GRU step (the equations of :func:`lstmx.gru`)."""
    H = params.w_h.shape[0]
    h = previous.h
    x_r, x_z, x_n = jnp.split(_affine(x, params.w_x, params.b_x), 3, axis=-1)
    h_r, h_z = jnp.split(_affine(h, params.w_h[:, : 2 * H], params.b_h[: 2 * H]), 2, axis=-1)
    r, z = cells.sigmoid(x_r + h_r), cells.sigmoid(x_z + h_z)
    if layout.options["reset_after"]:
        n = jnp.tanh(x_n + r * _affine(h, params.w_h[:, 2 * H :], params.b_h[2 * H :]))
    else:
        n = jnp.tanh(x_n + _affine(r * h, params.w_h[:, 2 * H :], params.b_h[2 * H :]))
    return {"r": r, "z": z, "n": n}
