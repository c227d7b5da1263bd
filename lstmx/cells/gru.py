r"""The gated recurrent unit (Cho et al. 2014), gate order r, z, n, in both reset conventions.

.. math::
    r &= \sigma(x W_{xr} + b_{xr} + h_{t-1} W_{hr} + b_{hr}) \\
    z &= \sigma(x W_{xz} + b_{xz} + h_{t-1} W_{hz} + b_{hz}) \\
    n &= \tanh(x W_{xn} + b_{xn} + r \odot (h_{t-1} W_{hn} + b_{hn}))
         \quad \text{(reset\_after=True: PyTorch, cuDNN, Flax, Keras)} \\
    n &= \tanh(x W_{xn} + b_{xn} + (r \odot h_{t-1}) W_{hn} + b_{hn})
         \quad \text{(reset\_after=False: Cho et al. 2014, Haiku)} \\
    h_t &= (1 - z) \odot n + z \odot h_{t-1}
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

__all__ = ["GRUOptions", "GRUParams", "GRUState", "gru"]


class GRUState(base.HiddenState):
    """The GRU's state, its last output ``h [*batch, H]`` (Flax's GRU carry is this array)."""


class GRUParams(NamedTuple):
    """GRU parameters, gate blocks in the order r, z, n (PyTorch's, up to a transpose).

    Attributes:
      w_x: input kernel ``[I, 3H]``.
      w_h: recurrent kernel ``[H, 3H]``.
      b_x: input bias ``[3H]``.
      b_h: recurrent bias ``[3H]``; kept apart because ``b_hn`` sits inside the reset product.
    """

    w_x: Array
    w_h: Array
    b_x: Array
    b_h: Array


@dataclasses.dataclass(frozen=True)
class GRUOptions:
    """What a GRU cell is.

    Attributes:
      hidden_size: ``H``, the number of units (and the size of ``h`` and of the output).
      reset_after: True applies the reset gate after the recurrent matmul, as PyTorch,
        cuDNN, Flax and Keras do; False is Cho et al. 2014's original (and Haiku's).
        Both use the same :class:`GRUParams`.
      init: "default" (lecun-normal input kernel, orthogonal recurrent blocks, zero biases)
        or "chrono": the update-gate bias ``b_xz ~ log U[1, t_max-1]``, so that keeping the
        old state (z near 1) is the initial behaviour over time scales up to ``t_max``.
      t_max: required by ``init="chrono"``.
    """

    hidden_size: int
    reset_after: bool = True
    init: str = "default"
    t_max: int | None = None

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        base.check_bool("reset_after", self.reset_after)
        base.check_init(self.init, self.t_max)

    family = "gru"

    def parameter_roles(self) -> dict[str, str]:
        """``{GRUParams field: its role}``, for :func:`lstmx.describe`."""
        if self.reset_after:
            reset = "; n block reset after the matmul: r ⊙ (h W_hn + b_hn)"
        else:
            reset = "; n block reset before the matmul: (r ⊙ h) W_hn (Cho et al.)"
        return {
            **base.kernel_roles("gate blocks [r z n]", self.hidden_size, reset),
            "b_x": "input bias b_x of gate blocks [r z n]",
            "b_h": "recurrent bias b_h of gate blocks [r z n], apart from b_x because of the reset",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 (I + H) 3H`` per step and example."""
        return 2 * (input_size + self.hidden_size) * 3 * self.hidden_size


def gru(
    hidden_size: int, *, reset_after: bool = True, init: str = "default", t_max: int | None = None
) -> base.Cell:
    """A GRU cell (equations in this module's docstring; options in :class:`GRUOptions`)."""
    options = GRUOptions(hidden_size, reset_after=reset_after, init=init, t_max=t_max)
    # Cho's reset multiplies h before its second GEMM, so the recurrence is not one GEMM
    # followed by elementwise work; it runs on autodiff of lax.scan.
    fast_scan = None
    if reset_after:
        fast_scan = base.fused_scan(options, project_inputs, pointwise)
    return base.make_cell(options, init_params, initial_state, gated_step, fast_scan)


def init_params(
    options: GRUOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> GRUParams:
    """Initial params (see :class:`GRUOptions` ``init``)."""
    H = options.hidden_size
    key_x, key_h, key_b = jax.random.split(key, 3)
    w_x = base.input_kernel(key_x, input_size, 3 * H, dtype)
    w_h = base.orthogonal_blocks(key_h, H, H, 3, dtype)
    b_x = jnp.zeros((3 * H,), dtype)
    if options.init == "chrono":
        b_x = b_x.at[H : 2 * H].set(base.chrono_bias(key_b, H, options.t_max, dtype))
    return GRUParams(w_x, w_h, b_x, jnp.zeros((3 * H,), dtype))


initial_state = partial(base.zero_state, GRUState)  # zeros [*batch_shape, H]


def check_params(options: GRUOptions, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    H = options.hidden_size
    base.check_kernels(params, GRUParams, 3 * H, H)
    _checks.array_shape("params.b_x", params.b_x, (3 * H,))
    _checks.array_shape("params.b_h", params.b_h, (3 * H,))


def project_inputs(options: GRUOptions, params: GRUParams, x: Array) -> Array:
    """``x W_x + b_x [..., 3H]``: the part of every gate that reads only the input (all
    of ``b_x``, so ``b_xn`` stays outside the reset product)."""
    return base.affine(x, params.w_x, params.b_x)


def gated_step(
    options: GRUOptions, params: GRUParams, state: GRUState, x: Array
) -> tuple[GRUState, Array, dict[str, Array]]:
    """One step that also returns the gates ``{"r", "z": sigmoid, "n": tanh}``."""
    check_params(options, params)
    x = base.check_step(state, GRUState, options.hidden_size, x, params)
    x_proj = project_inputs(options, params, x)
    if options.reset_after:
        return pointwise(options, params, state, x_proj, state.h @ params.w_h)
    H, h = options.hidden_size, state.h
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    h_r, h_z = jnp.split(base.affine(h, params.w_h[:, : 2 * H], params.b_h[: 2 * H]), 2, axis=-1)
    r, z = base.sigmoid(x_r + h_r), base.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + base.affine(r * h, params.w_h[:, 2 * H :], params.b_h[2 * H :]))
    h_new = (1.0 - z) * n + z * h
    return GRUState(h_new), h_new, {"r": r, "z": z, "n": n}


def pointwise(options: GRUOptions, params: GRUParams, state: GRUState, x_proj: Array, hh: Array):
    """``reset_after=True``: everything after the recurrent GEMM ``hh = h_{t-1} W_h``."""
    h_r, h_z, h_n = jnp.split(hh + jnp.broadcast_to(params.b_h, hh.shape), 3, axis=-1)
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    r, z = base.sigmoid(x_r + h_r), base.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * h_n)
    h_new = (1.0 - z) * n + z * state.h
    return GRUState(h_new), h_new, {"r": r, "z": z, "n": n}
