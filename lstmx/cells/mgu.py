r"""The minimal gated unit (Zhou, Wu, Zhang & Zhou 2016, arXiv:1603.09420), as Flax linen's
``MGUCell``: one gate ``f`` that both resets and updates.

.. math::
    f &= \sigma(x W_{xf} + b_{xf} + h_{t-1} W_{hf}) \\
    n &= \tanh(x W_{xn} + b_{xn} + f \odot (h_{t-1} W_{hn} + b_{hn}))
         \quad \text{(reset\_gate=True, the default; Flax's default)} \\
    n &= \tanh(x W_{xn} + b_{xn} + h_{t-1} W_{hn})
         \quad \text{(reset\_gate=False: no } f \odot \text{ and no } b_{hn}) \\
    h_t &= (1 - f) \odot n + f \odot h_{t-1}

Zhou et al. write the candidate with the gate before the matmul, ``(f ⊙ h) W_hn``, and
``h_t = (1 - f) ⊙ h_{t-1} + f ⊙ n``; lstmx follows Flax (gate after the matmul, ``f``
weighting the old state), so that :func:`lstmx.convert.from_flax_mgu` is exact and the
recurrence is one GEMM ``h_{t-1} [W_hf | W_hn]`` followed by elementwise work (the fast
path of :mod:`lstmx._fused`). Initialised as Flax does: lecun-normal input kernel,
orthogonal recurrent blocks, ``b_xf = 1`` (Jozefowicz et al. 2015), other biases 0.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax.numpy as jnp

from lstmx import _checks
from lstmx.cells import base
from lstmx.cells.base import Array

__all__ = ["MGUOptions", "MGUParams", "MGUState", "mgu"]


class MGUState(base.HiddenState):
    """The MGU's state, its last output ``h [*batch, H]``, as Flax's ``MGUCell`` carries it."""


class MGUParams(NamedTuple):
    """MGU parameters, blocks in the order f, n.

    Attributes:
      w_x: input kernel ``[I, 2H]`` (Flax's ``if`` and ``in`` kernels side by side).
      w_h: recurrent kernel ``[H, 2H]`` (Flax's ``hf`` and ``hn`` kernels).
      b_x: input bias ``[2H]`` (Flax's ``if`` and ``in`` biases).
      b_hn: recurrent bias of the candidate ``[H]``, inside the gate product
        ``f ⊙ (h W_hn + b_hn)``; None when ``reset_gate=False`` (it would only add to
        ``b_xn``).
    """

    w_x: Array
    w_h: Array
    b_x: Array
    b_hn: Array | None


@dataclasses.dataclass(frozen=True)
class MGUOptions:
    """What an MGU cell is.

    Attributes:
      hidden_size: ``H``.
      reset_gate: True (Flax's default) gates the candidate's recurrent term,
        ``n = tanh(x W_xn + b_xn + f ⊙ (h W_hn + b_hn))``; False drops the product and
        ``b_hn``.
    """

    hidden_size: int
    reset_gate: bool = True

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        base.check_bool("reset_gate", self.reset_gate)

    family = "mgu"

    def parameter_roles(self) -> dict[str, str]:
        """``{MGUParams field: its role}``, for :func:`lstmx.describe`."""
        gated = "; n block gated after the matmul: f ⊙ (h W_hn + b_hn)" if self.reset_gate else ""
        return {
            **base.kernel_roles("blocks [f n]", self.hidden_size, gated),
            "b_x": "input bias b_x of blocks [f n] (b_f starts at 1)",
            "b_hn": "recurrent bias b_hn of the candidate n, inside the gate product",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 (I + H) 2H`` per step and example."""
        return 2 * (input_size + self.hidden_size) * 2 * self.hidden_size


def mgu(hidden_size: int, *, reset_gate: bool = True) -> base.Cell:
    """A minimal gated unit (equations in this module's docstring; see :class:`MGUOptions`)."""
    options = MGUOptions(hidden_size, reset_gate=reset_gate)
    fast_scan = base.fused_scan(options, project_inputs, pointwise)
    return base.make_cell(options, init_params, initial_state, gated_step, fast_scan)


def init_params(
    options: MGUOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> MGUParams:
    """Initial params: Flax ``MGUCell``'s initialisers (lecun-normal, orthogonal, b_xf = 1)."""
    w_x, w_h = base.kernels(key, input_size, options.hidden_size, 2, dtype)
    H = options.hidden_size
    b_x = jnp.concatenate([jnp.ones((H,), dtype), jnp.zeros((H,), dtype)])
    b_hn = jnp.zeros((H,), dtype) if options.reset_gate else None
    return MGUParams(w_x, w_h, b_x, b_hn)


initial_state = partial(base.zero_state, MGUState)  # zeros [*batch_shape, H]


def check_params(options: MGUOptions, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    H = options.hidden_size
    base.check_kernels(params, MGUParams, 2 * H, H)
    _checks.array_shape("params.b_x", params.b_x, (2 * H,))
    if options.reset_gate:
        _checks.array_shape("params.b_hn", params.b_hn, (H,))
    elif params.b_hn is not None:
        raise ValueError(
            "params.b_hn must be None for mgu(reset_gate=False) (the candidate has no "
            f"recurrent bias), got an array of shape {tuple(params.b_hn.shape)}."
        )


def project_inputs(options: MGUOptions, params: MGUParams, x: Array) -> Array:
    """``x W_x + b_x [..., 2H]``."""
    return base.affine(x, params.w_x, params.b_x)


def gated_step(
    options: MGUOptions, params: MGUParams, state: MGUState, x: Array
) -> tuple[MGUState, Array, dict[str, Array]]:
    """One step that also returns the gates ``{"f": sigmoid, "n": tanh}``."""
    check_params(options, params)
    x = base.check_step(state, MGUState, options.hidden_size, x, params)
    hh = state.h @ params.w_h  # one GEMM for both blocks, f and n
    return pointwise(options, params, state, project_inputs(options, params, x), hh)


def pointwise(options: MGUOptions, params: MGUParams, state: MGUState, x_proj: Array, hh: Array):
    """Everything after the recurrent GEMM ``hh = h_{t-1} W_h [..., 2H]``."""
    x_f, x_n = jnp.split(x_proj, 2, axis=-1)
    h_f, h_n = jnp.split(hh, 2, axis=-1)
    f = base.sigmoid(x_f + h_f)
    if options.reset_gate:
        h_n = f * (h_n + jnp.broadcast_to(params.b_hn, h_n.shape))
    n = jnp.tanh(x_n + h_n)
    h_new = (1.0 - f) * n + f * state.h
    return MGUState(h_new), h_new, {"f": f, "n": n}
