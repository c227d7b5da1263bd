r"""JANET, "just another network": the forget-gate-only LSTM of van der Westhuizen &
Lasenby 2018 ("The unreasonable effectiveness of the forget gate", arXiv:1804.04849).

.. math::
    s_t &= x_t W_{xf} + h_{t-1} W_{hf} + b_f \\
    \tilde c_t &= \tanh(x_t W_{xc} + h_{t-1} W_{hc} + b_c) \\
    c_t &= \sigma(s_t) \odot c_{t-1} + (1 - \sigma(s_t - \beta)) \odot \tilde c_t \\
    h_t &= c_t

The one gate decides both what is kept and, shifted by ``β`` (the paper's 1), what is
written: ``1 - σ(s - β)`` is a little larger than ``1 - σ(s)``, so the cell still takes in
new information while it remembers. The output is the cell state itself (no output gate,
no output non-linearity), so the state is just ``h``. The recurrence is one GEMM
``h_{t-1} [W_hf | W_hc]`` followed by elementwise work (the fast path of
:mod:`lstmx._fused`).

Initialisation: lecun-normal input kernel and orthogonal recurrent blocks as the other
lstmx cells; ``b_c = 0``; ``b_f = 1`` (Jozefowicz et al. 2015) by default, or, with
``init="chrono"``, the paper's choice, ``b_f ~ log U[1, t_max - 1]`` (Tallec & Ollivier
2018) with ``t_max`` the sequence length.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmx import _checks
from lstmx.cells import base
from lstmx.cells.base import Array

__all__ = ["JANETOptions", "JANETParams", "JANETState", "janet"]


class JANETState(base.HiddenState):
    """JANET's state, ``h = c [*batch, H]``: the output is the cell state."""


class JANETParams(NamedTuple):
    """JANET parameters, blocks in the order f, c.

    Attributes:
      w_x: input kernel ``[I, 2H]``, ``[W_xf | W_xc]``.
      w_h: recurrent kernel ``[H, 2H]``, ``[W_hf | W_hc]``.
      b: bias ``[2H]``, ``[b_f | b_c]``.
    """

    w_x: Array
    w_h: Array
    b: Array


@dataclasses.dataclass(frozen=True)
class JANETOptions:
    """What a JANET cell is.

    Attributes:
      hidden_size: ``H``.
      beta: ``β``, the shift of the input's gate ``1 - σ(s - β)``; the paper uses 1. With
        0 the input gate is exactly ``1 - f`` (a coupled, CIFG-like write).
      init: "default" (``b_f = 1``) or "chrono" (``b_f ~ log U[1, t_max - 1]``, the paper's).
      t_max: the longest dependency expected (the paper: the sequence length); required by
        ``init="chrono"``.
    """

    hidden_size: int
    beta: float = 1.0
    init: str = "default"
    t_max: int | None = None

    family = "janet"

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        _checks.finite_number("beta", self.beta, "e.g. 1.0, the paper's")
        base.check_init(self.init, self.t_max)

    def parameter_roles(self) -> dict[str, str]:
        """``{JANETParams field: its role}``, for :func:`lstmx.describe`."""
        return {
            **base.kernel_roles("blocks [f c̃]", self.hidden_size, ""),
            "b": f"bias b of blocks [f c̃]; the write gate is 1 − σ(s − {self.beta:g})",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 (I + H) 2H`` per step and example."""
        return 2 * (input_size + self.hidden_size) * 2 * self.hidden_size


def janet(
    hidden_size: int, *, beta: float = 1.0, init: str = "default", t_max: int | None = None
) -> base.Cell:
    """A JANET cell (equations in this module's docstring; see :class:`JANETOptions`)."""
    options = JANETOptions(hidden_size, beta=beta, init=init, t_max=t_max)
    fast_scan = base.fused_scan(options, project_inputs, pointwise)
    return base.make_cell(options, init_params, initial_state, gated_step, fast_scan)


def init_params(
    options: JANETOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> JANETParams:
    """Initial params (see :class:`JANETOptions` ``init``)."""
    H = options.hidden_size
    key_kernels, key_bias = jax.random.split(key)
    w_x, w_h = base.kernels(key_kernels, input_size, H, 2, dtype)
    if options.init == "chrono":
        b_f = base.chrono_bias(key_bias, H, options.t_max, dtype)
    else:
        b_f = jnp.ones((H,), dtype)
    return JANETParams(w_x, w_h, jnp.concatenate([b_f, jnp.zeros((H,), dtype)]))


initial_state = partial(base.zero_state, JANETState)  # zeros [*batch_shape, H]


def check_params(options: JANETOptions, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    H = options.hidden_size
    base.check_kernels(params, JANETParams, 2 * H, H)
    _checks.array_shape("params.b", params.b, (2 * H,))


def project_inputs(options: JANETOptions, params: JANETParams, x: Array) -> Array:
    """``x W_x + b [..., 2H]``."""
    return base.affine(x, params.w_x, params.b)


def gated_step(
    options: JANETOptions, params: JANETParams, state: JANETState, x: Array
) -> tuple[JANETState, Array, dict[str, Array]]:
    """One step that also returns the gates ``{"f": σ(s), "g": c̃}`` (``g`` as the LSTM's)."""
    check_params(options, params)
    x = base.check_step(state, JANETState, options.hidden_size, x, params)
    hh = state.h @ params.w_h  # one GEMM for both blocks, f and c̃
    return pointwise(options, params, state, project_inputs(options, params, x), hh)


def pointwise(
    options: JANETOptions, params: JANETParams, state: JANETState, x_proj: Array, hh: Array
):
    """Everything after the recurrent GEMM ``hh = h_{t-1} W_h [..., 2H]``."""
    s, candidate = jnp.split(x_proj + hh, 2, axis=-1)
    f = base.sigmoid(s)
    g = jnp.tanh(candidate)
    c = f * state.h + (1.0 - base.sigmoid(s - options.beta)) * g
    return JANETState(c), c, {"f": f, "g": g}
