r"""Gradient flow and gate statistics of a cell on a sequence.

Gradient flow (the vanishing-gradient problem, Hochreiter 1991; Bengio, Simard & Frasconi
1994) is measured as the Frobenius norm of the Jacobian of the last output with respect to
each earlier input and each earlier hidden state::

    flow = diagnostics.gradient_norms(cell, params, xs)      # xs [T, I] or [*batch, T, I]
    flow.wrt_states      # [T]: ||dh_T / dh_t||_F, t = 1..T
    flow.lags            # [T]: T - t, the time lag of each entry

Gate statistics are the mean activation of each gate and the share of saturated
activations, recomputed step by step from the params and the states::

    stats = diagnostics.gate_statistics(cell, params, xs)
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

from lstmx import _checks
from lstmx.cells import Cell
from lstmx.sequence import StackState

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
    jax.eval_shape(cell.step, params, state, xs[..., 0, :])  # the cell's own checks
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


def gate_activations(cell: Cell, params: Any, xs: Array, state: Any = None) -> dict[str, Array]:
    r"""The activation of every gate at every step of ``cell`` run over ``xs``.

    The gates come from the cell's own equations (``cell.step_with_gates``), so they
    are exactly what the cell computes. Gates returned, in the order of the kernels' blocks:

    * LSTM: the sigmoid gates with weights (``i``, ``f``, ``o``; CIFG's ``i = 1 - f`` and
      the constant gates of NIG, NFG and NOG are left out) and the block input
      ``g = tanh(z_g)`` (not for NIAF, whose ``g`` is a plain pre-activation).
    * GRU: ``r`` and ``z`` (sigmoid) and the candidate ``n`` (tanh).
    * Elman RNN: none.

    Args:
      cell: an :class:`lstmx.Cell`; for a :func:`lstmx.stack` the keys are
        ``"layers[l].<gate>"``.
      params: the cell's params.
      xs: ``[*batch, T, I]`` (any number of leading batch axes, including none).
      state: initial state; zeros when None.

    Returns:
      ``{gate: [*batch, T, H]}``.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an lstmx.Cell, got {type(cell).__name__}.")
    xs = _checks.float_array("xs", xs)
    if xs.ndim < 2:
        raise ValueError(f"xs must be [*batch, T, I], got shape {tuple(xs.shape)}.")
    if state is None:
        state = cell.initial_state(xs.shape[:-2], xs.dtype)
    jax.eval_shape(cell.step, params, state, xs[..., 0, :])  # the cell's own checks
    xs = jnp.moveaxis(xs, -2, 0)  # [T, *batch, I]
    # jax returns dicts with sorted keys; tracing once records the equations' own order.
    order: list[str] = []
    jax.eval_shape(functools.partial(_layer_gates, cell, names=order), params, xs, state)
    gates, _ = _compiled_gates(cell)(params, xs, state)
    return {name: jnp.moveaxis(gates[name], 0, -2) for name in order}


def gate_statistics(cell: Cell, params: Any, xs: Array, state: Any = None) -> dict[str, GateStats]:
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
    for name, values in gate_activations(cell, params, xs, state).items():
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


def _layer_gates(cell: Cell, params: Any, xs: Array, state: Any, names: list | None = None):
    """One cell's gates ``{name: [T, *batch, H]}`` and outputs ``[T, *batch, O]``.

    ``names``, if given, receives the gate names in the order the equations produce them.
    """
    if cell.step_with_gates is None:
        raise TypeError(
            "gate diagnostics need a cell with step_with_gates (every lstmx cell and stack has "
            "one); this cell was built by hand without it."
        )

    def body(previous, x):
        new, y, gates = cell.step_with_gates(params, previous, x)
        if names is not None:
            names.extend(gates)
        return new, (gates, y)

    _, (gates, ys) = lax.scan(body, state, xs)
    return gates, ys


@functools.lru_cache(maxsize=64)
def _compiled_gates(cell: Cell) -> Callable:
    """``_layer_gates`` compiled once per cell (and shapes)."""
    return jax.jit(functools.partial(_layer_gates, cell))
