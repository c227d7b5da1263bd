r"""The sLSTM of xLSTM (Beck et al. 2024): exponential gating with a normaliser state.

Pre-activations :math:`\tilde z_* = x W_{x*} + h_{t-1} R_* + b_*` for the blocks
``i, f, z, o`` (NX-AI's order), with :math:`R` block-diagonal over ``num_heads`` heads: the
``H`` units are split into heads of ``d = H / num_heads`` consecutive units, and a head's
pre-activations read only its own part of :math:`h_{t-1}`. Then

.. math::
    \log f_t &= \log\sigma(\tilde f_t) \ \text{(forget\_gate="sigmoid")} \quad\text{or}\quad
        \tilde f_t \ \text{(forget\_gate="exp")} \\
    m_t &= \max(\log f_t + m_{t-1},\ \tilde\imath_t) \\
    i'_t &= \exp(\tilde\imath_t - m_t) \qquad f'_t = \exp(\log f_t + m_{t-1} - m_t) \\
    c_t &= f'_t \odot c_{t-1} + i'_t \odot \tanh(\tilde z_t) \qquad
    n_t = f'_t \odot n_{t-1} + i'_t \\
    h_t &= \sigma(\tilde o_t) \odot c_t / n_t

This is the stabilised form of :math:`c_t = f_t c_{t-1} + i_t z_t`, :math:`n_t = f_t n_{t-1}
+ i_t`, :math:`h_t = o_t c_t / n_t` with :math:`i_t = \exp(\tilde\imath_t)`: the stabiliser
:math:`m_t` scales ``c`` and ``n`` alike, so ``h`` is the same, and :math:`i', f' \le 1`.

Transcribed from NX-AI/xlstm ``xlstm/blocks/slstm/src/vanilla/slstm.py``
(``slstm_forward_pointwise``), with two differences, both documented here:

* The zero initial state (``h = c = n = m = 0``, as NX-AI's ``_zero_state``) has
  :math:`n = 0`; NX-AI then sets :math:`m_t = \tilde\imath_t` when ``n == 0`` *everywhere*
  (``torch.all``). lstmx does it per element (``where(n_{t-1} == 0, ĩ, max(...))``), which is
  the same for a zero initial state and stays right for a state whose ``n`` is zero only in
  some rows. With it, :math:`n_t \ge 1` after the first step, :math:`|c_t| \le n_t` and so
  :math:`|h_t| \le 1`, for any input.
* NX-AI clamps :math:`i', f'` at 1 (``torch.minimum(..., 1)``). By the definition of
  :math:`m_t` both exponents are :math:`\le 0`, so the clamp is a no-op, except at the
  first step (``n = 0``, :math:`m_t = \tilde\imath_t`), where :math:`f'` could overflow to
  ``inf`` and make ``inf * 0 = nan`` with ``c = n = 0``. lstmx keeps the clamp for
  :math:`f'` (as ``exp(min(·, 0))``); :math:`i'` needs none.

NX-AI's vanilla sLSTM has the sigmoid forget gate only; ``forget_gate="exp"`` is the
paper's other choice (Beck et al., eq. 16). Their sLSTM *layer* also projects ``x``
head-wise and adds a causal convolution; this cell is the recurrence with a dense input
kernel ``W_x``, like :func:`lstmx.lstm`.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmx import _checks
from lstmx.cells import base

Array = jax.Array

__all__ = ["SLSTMOptions", "SLSTMParams", "SLSTMState", "slstm"]


class SLSTMState(NamedTuple):
    """sLSTM state, every field ``[*batch, H]``.

    Attributes:
      h: hidden output.
      c: cell state (stabilised: the un-stabilised one times ``exp(-m)``).
      n: normaliser state (stabilised likewise); 0 only before the first step.
      m: stabiliser, the running log-scale of ``c`` and ``n``.
    """

    h: Array
    c: Array
    n: Array
    m: Array


class SLSTMParams(NamedTuple):
    """sLSTM parameters; ``K = num_heads`` heads of ``d = H / K`` units.

    Attributes:
      w_x: input kernel ``[I, 4H]``, gate blocks i, f, z, o of ``H`` columns each; inside
        a block, units in head order (head ``k`` is units ``k*d:(k+1)*d``).
      w_h: block-diagonal recurrent kernel, stored as its ``K`` diagonal blocks
        ``[K, d, 4d]``: ``w_h[k]`` maps head ``k``'s ``h_{t-1}[k*d:(k+1)*d]`` to that head's
        columns of the blocks i, f, z, o (``d`` columns each, in that order). NX-AI's
        ``recurrent_kernel [K, d, 4, d]`` reshaped.
      b: bias ``[4H]``, same layout as ``w_x``'s columns.
    """

    w_x: Array
    w_h: Array
    b: Array


def powerlaw_forget_bias(head_dim: int) -> jax.Array:
    """NX-AI's default forget-gate bias ("powerlaw_blockdependent", first block) ``[d]``:
    ``-(-5 + 12 (j / (d-1))^0.3)`` for ``j = 0..d-1``, from +5 down to -7 (5 when d = 1)."""
    ramp = jnp.linspace(0.0, 1.0, head_dim) if head_dim > 1 else jnp.zeros((1,))
    return -(-5.0 + 12.0 * ramp**0.3)


@dataclasses.dataclass(frozen=True)
class SLSTMOptions:
    """What an sLSTM cell is.

    Attributes:
      hidden_size: ``H``; a multiple of ``num_heads``.
      num_heads: ``K``, the number of diagonal blocks of the recurrent kernel (NX-AI's
        default is 4).
      forget_gate: "sigmoid" (``f = σ(f̃)``, NX-AI's only choice) or "exp" (``f = exp(f̃)``).
      init: "default": lecun-normal ``w_x``; each head's recurrent block per gate an
        orthogonal ``[d, d]`` matrix; zero biases but the forget gate's, which is NX-AI's
        default power-law ramp per head (:func:`powerlaw_forget_bias`, +5 to -7, so forget
        values from σ(5) to σ(-7)); with ``forget_gate="exp"`` the bias is
        ``log σ(ramp)``, so the initial forget values are the same.
    """

    hidden_size: int
    num_heads: int = 4
    forget_gate: str = "sigmoid"
    init: str = "default"

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        _checks.positive_int("num_heads", self.num_heads)
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"num_heads must divide hidden_size (heads of H / num_heads units), got "
                f"hidden_size={self.hidden_size} and num_heads={self.num_heads}."
            )
        if self.forget_gate not in ("sigmoid", "exp"):
            raise ValueError(f'forget_gate must be "sigmoid" or "exp", got {self.forget_gate!r}.')
        if self.init != "default":
            raise ValueError(f'init must be "default" for the sLSTM, got {self.init!r}.')

    @property
    def head_size(self) -> int:
        """``d = hidden_size / num_heads``."""
        return self.hidden_size // self.num_heads

    family = "slstm"

    def parameter_roles(self) -> dict[str, str]:
        """``{SLSTMParams field: its role}``, for :func:`lstmx.describe`."""
        H, K, d = self.hidden_size, self.num_heads, self.head_size
        return {
            "w_x": f"input kernel W_x: x_t → gate blocks [i f z o], {H} columns each",
            "w_h": (
                f"block-diagonal recurrent kernel R, {K} head blocks of {d}×{4 * d}: "
                f"head k's h_{{t-1}} → its columns of [i f z o]"
            ),
            "b": f"bias b of gate blocks [i f z o] (forget gate {self.forget_gate})",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 (I 4H + K d 4d)`` per step and example (the recurrent kernel is block-diagonal)."""
        H, K, d = self.hidden_size, self.num_heads, self.head_size
        return 2 * (input_size * 4 * H + K * d * 4 * d)


def slstm(
    hidden_size: int, *, num_heads: int = 4, forget_gate: str = "sigmoid", init: str = "default"
) -> base.Cell:
    """An sLSTM cell (xLSTM, Beck et al. 2024); equations in this module's docstring.

    Args:
      hidden_size: ``H``, a multiple of ``num_heads``.
      num_heads: heads of the block-diagonal recurrent kernel.
      forget_gate: "sigmoid" or "exp".
      init: "default" (see :class:`SLSTMOptions`).

    Returns:
      A :class:`lstmx.Cell` with :class:`SLSTMParams` and :class:`SLSTMState`. It has no
      fast path: :func:`lstmx.scan` runs autodiff of ``lax.scan`` over its step.
    """
    options = SLSTMOptions(hidden_size, num_heads=num_heads, forget_gate=forget_gate, init=init)
    return base.make_cell(options, init_params, initial_state, gated_step)


def init_params(
    options: SLSTMOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> SLSTMParams:
    """Initial params (see :class:`SLSTMOptions` ``init``)."""
    H, K, d = options.hidden_size, options.num_heads, options.head_size
    key_x, key_h = jax.random.split(key)
    w_x = base.input_kernel(key_x, input_size, 4 * H, dtype)
    w_h = jnp.stack([base.orthogonal_blocks(k, d, d, 4, dtype) for k in jax.random.split(key_h, K)])
    ramp = powerlaw_forget_bias(d)
    if options.forget_gate == "exp":
        ramp = jax.nn.log_sigmoid(ramp)
    b_f = jnp.tile(ramp, K).astype(dtype)
    zeros = jnp.zeros((H,), dtype)
    return SLSTMParams(w_x, w_h, jnp.concatenate([zeros, b_f, zeros, zeros]))


initial_state = partial(base.zero_state, SLSTMState)  # zeros for h, c, n and m (NX-AI's zero state)


def check_params(options: SLSTMOptions, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    H, K, d = options.hidden_size, options.num_heads, options.head_size
    _checks.params_type("params", params, SLSTMParams)
    _checks.array_shape("params.w_h", params.w_h, (K, d, 4 * d))
    if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != 4 * H:
        _checks.array_shape("params.w_x", params.w_x, ("I", 4 * H))
    _checks.array_shape("params.b", params.b, (4 * H,))


def recurrent(options: SLSTMOptions, w_h: Array, h: Array) -> Array:
    """``h_{t-1} R [*batch, 4H]`` for the block-diagonal ``R`` stored as ``w_h [K, d, 4d]``."""
    K, d = options.num_heads, options.head_size
    batch = h.shape[:-1]
    per_head = jnp.einsum("...kd,kde->...ke", h.reshape(*batch, K, d), w_h)  # [*batch, K, 4d]
    per_gate = jnp.swapaxes(per_head.reshape(*batch, K, 4, d), -3, -2)  # [*batch, 4, K, d]
    return per_gate.reshape(*batch, 4 * K * d)


def gated_step(
    options: SLSTMOptions, params: SLSTMParams, state: SLSTMState, x: Array
) -> tuple[SLSTMState, Array, dict[str, Array]]:
    """One step that also returns ``{"i": i', "f": f', "g": tanh(z̃), "o": σ(õ)}``.

    ``i'`` and ``f'`` are the *stabilised* gates (in ``[0, 1]``), as NX-AI returns them. The
    cell input, the paper's ``z``, is reported as ``g``, the name of the LSTM's block input
    (same place in the block order, same tanh), so :mod:`lstmx.diagnostics` treats it as a
    tanh and tables line up with the LSTM's.
    """
    check_params(options, params)
    x = base.check_step(state, SLSTMState, options.hidden_size, x, params)
    _checks.state_size(state, options.hidden_size, names=("n", "m"))
    x_proj = base.affine(x, params.w_x, params.b)
    return pointwise(options, params, state, x_proj, recurrent(options, params.w_h, state.h))


def pointwise(
    options: SLSTMOptions, params: SLSTMParams, state: SLSTMState, x_proj: Array, hh: Array
) -> tuple[SLSTMState, Array, dict[str, Array]]:
    """Everything after the projections: ``x_proj = x W_x + b``, ``hh = h_{t-1} R``."""
    i_raw, f_raw, z_raw, o_raw = jnp.split(x_proj + hh, 4, axis=-1)
    log_f = jax.nn.log_sigmoid(f_raw) if options.forget_gate == "sigmoid" else f_raw
    log_f_plus_m = log_f + state.m
    m = jnp.where(state.n == 0, i_raw, jnp.maximum(log_f_plus_m, i_raw))
    i = jnp.exp(i_raw - m)
    f = jnp.exp(jnp.minimum(log_f_plus_m - m, 0.0))  # NX-AI's clamp; see the module docs
    z = jnp.tanh(z_raw)
    o = base.sigmoid(o_raw)
    c = f * state.c + i * z
    n = f * state.n + i
    h = o * (c / n)
    return SLSTMState(h, c, n, m), h, {"i": i, "f": f, "g": z, "o": o}
