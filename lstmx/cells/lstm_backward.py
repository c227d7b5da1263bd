r"""The LSTM's hand-written elementwise backward, for the fast path.

:func:`lstmx.cells.lstm.forward`, the one place the LSTM's equations are written, saves
as it computes (as cuDNN's reserve space does) the post-activation gates ``a = [i, f, g,
o]`` (the blocks the cell has, ``[*batch, G*H]``), the new cell state ``c_t`` and
``tanh(c_t)``: a :class:`Saved`. The cell's step returns the same forward's values, and
the fast path's forward loop runs it and keeps the :class:`Saved`. The backward here is
then elementwise work on those saved values, with no activation evaluated again. With
:math:`\bar h = \partial L/\partial h_t` (from the output and the next step) and
:math:`\bar c` the cotangent of :math:`c_t` from the next step:

.. math::
    \bar o &= \bar h \odot \tanh c_t \qquad
    \bar c \mathrel{+}= \bar h \odot o \odot (1 - \tanh^2 c_t) + \bar z_o \odot p_o \\
    \bar i &= \bar c \odot g \qquad \bar g = \bar c \odot i \qquad
    \bar f = \bar c \odot c_{t-1} \quad (\text{CIFG: } \bar f \mathrel{-}= \bar i) \\
    \bar z_\sigma &= \bar a \odot a (1 - a) \qquad \bar z_g = \bar g \odot (1 - g^2) \\
    \bar c_{t-1} &= \bar c \odot f + \bar z_i \odot p_i + \bar z_f \odot p_f \qquad
    \bar p_* = \textstyle\sum_\text{batch} \bar z_* \odot c_{t-1}\ (c_t \text{ for } o)

and :math:`\bar z = [\bar z_i, \bar z_f, \bar z_g, \bar z_o]` is the cotangent of both
``x_proj`` and ``hh`` (the fast path adds :math:`\bar z W_h^\top` to :math:`\bar h_{t-1}`).
Every activation the forward saves has the form :math:`s \tanh(k z) + m` (the sigmoid as
:func:`lstmx.sigmoid`, :math:`\tfrac12\tanh(\tfrac z2) + \tfrac12`; ``tanh``; or NIAF's
identity), so the backward differentiates it from the saved activation alone, with
per-column constants.

Covers every option but ``full_gate_recurrence``, ``proj_size`` and ``layer_norm``
(:func:`supported`); those cells differentiate :func:`~lstmx.cells.lstm.pointwise` by
autodiff at saved projections instead. The tests hold both to the step-by-step path.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmx._fused import HandBackward

Array = jax.Array

__all__ = ["Saved", "broadcast_row", "hand_backward", "supported"]


class Saved(NamedTuple):
    """What one step keeps for its backward.

    Attributes:
      gates: post-activation gate blocks ``[*batch, G*H]`` in the cell's block order.
      c: the new cell state ``c_t [*batch, H]`` (after ``cell_clip``); None unless the
        output gate's peephole or ``cell_clip`` needs it.
      c_out: ``tanh(c_t)``, or ``c_t`` without the output activation ``[*batch, H]``.
    """

    gates: Array
    c: Array | None
    c_out: Array


def supported(options: Any) -> bool:
    """Whether :func:`hand_backward` covers a cell with these :class:`LSTMOptions`."""
    return not (options.full_gate_recurrence or options.proj_size or options.layer_norm)


def _activation_constants(options: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column ``(k, s, m)`` with ``activation(z) = s * tanh(k * z) + m`` ``[G*H]``:
    ``(1/2, 1/2, 1/2)`` for a sigmoid gate, ``(1, 1, 0)`` for ``g = tanh``; a linear ``g``
    (NIAF) is marked by ``k = 0`` and replaced after the ``tanh``."""
    constants = {"i": (0.5, 0.5, 0.5), "f": (0.5, 0.5, 0.5), "o": (0.5, 0.5, 0.5)}
    constants["g"] = (1.0, 1.0, 0.0) if options.input_activation else (0.0, 0.0, 0.0)
    H = options.hidden_size
    columns = np.array([constants[name] for name in options.blocks], np.float32)
    k, s, m = (np.repeat(columns[:, j], H) for j in range(3))
    return k, s, m


def hand_backward(options: Any, forward: Any) -> HandBackward:
    """The :class:`lstmx._fused.HandBackward` of an LSTM with these options (see
    :func:`supported`); ``forward(params, state, x_proj, hh) -> (new_state, h, Saved)`` is
    :func:`lstmx.cells.lstm.forward` at these options."""
    if not supported(options):
        raise ValueError(f"no hand-written backward for {options}; see lstm_backward.supported")
    blocks, sigmoid_gates = options.blocks, options.sigmoid_gates
    G = len(blocks)
    k, s, m = _activation_constants(options)
    inverse_s = np.where(s == 0, 0.0, 1.0 / np.where(s == 0, 1.0, s)).astype(np.float32)
    linear_g = not options.input_activation
    peephole_o = options.peephole and options.output_gate
    clip = options.cell_clip

    def split(a: Array) -> dict[str, Array]:
        return dict(zip(blocks, jnp.split(a, G, axis=-1), strict=True))

    def backward(params, state, saved, d_state, dy):
        c_prev, c = state.c, saved.c
        gates = split(saved.gates)
        f = gates.get("f")
        i = gates.get("i", 1.0 - f if options.coupled else None)
        g = gates["g"]
        dh = d_state.h + dy
        dc = d_state.c
        d_o = None
        if options.output_gate:
            o = gates["o"]
            d_o = dh * saved.c_out
            dh = dh * o
        dc = dc + (dh * (1.0 - saved.c_out * saved.c_out) if options.output_activation else dh)
        if peephole_o:  # o's pre-activation reads c_t
            dc = dc + d_o * o * (1.0 - o) * broadcast_row(params.p[-1], c)
        if clip is not None:
            dc = jnp.where(jnp.abs(c) < clip, dc, 0.0)
        d_gate = {"g": dc if i is None else dc * i, "o": d_o}
        if "i" in gates:
            d_gate["i"] = dc * g
        if f is not None:
            d_gate["f"] = dc * c_prev - (dc * g if options.coupled else 0.0)
        # d activation / d pre-activation from the saved activation a = s tanh(k z) + m:
        # k s (1 - tanh²) with tanh = (a - m) / s; a(1 - a) for a sigmoid, 1 - g² for tanh.
        a = saved.gates
        centred = (a - broadcast_row(m, a)) * broadcast_row(inverse_s, a)
        d_a = jnp.concatenate([d_gate[name] for name in blocks], axis=-1)
        dz = d_a * broadcast_row(k * s, a) * (1.0 - centred * centred)
        if linear_g:
            dz = jnp.where(broadcast_row(k == 0, a), d_a, dz)
        d_pre = split(dz)
        dc_prev = dc if f is None else dc * f
        d_p = None
        if options.peephole:
            rows = []
            for row, name in enumerate(sigmoid_gates):
                source = c if name == "o" else c_prev
                rows.append(_sum_batch(d_pre[name] * source))
                if name != "o":
                    dc_prev = dc_prev + d_pre[name] * broadcast_row(params.p[row], c_prev)
            d_p = jnp.stack(rows)
        d_params = jax.tree_util.tree_map(jnp.zeros_like, params)._replace(p=d_p)
        d_prev = type(state)(jnp.zeros_like(state.h), dc_prev)
        return d_params, d_prev, dz, None  # hh's cotangent is x_proj's

    return HandBackward(forward, backward)


def broadcast_row(v: Any, like: Array) -> Array:
    """``v [n]`` broadcast to ``like [*batch, n]`` (explicitly: rank promotion may be off)."""
    return jnp.broadcast_to(jnp.asarray(v, like.dtype if v.dtype != bool else bool), like.shape)


def _sum_batch(x: Array) -> Array:
    """Sums ``[*batch, H]`` over its batch axes to ``[H]``."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1]).sum(axis=0)
