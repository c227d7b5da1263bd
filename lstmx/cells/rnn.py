r"""The Elman RNN (Elman 1990): :math:`h_t = \mathrm{act}(x W_x + h_{t-1} W_h + b)`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax.numpy as jnp

from lstmx import _checks
from lstmx.cells import base
from lstmx.cells.base import Array

__all__ = ["RNNOptions", "RNNParams", "RNNState", "rnn"]


class RNNState(base.HiddenState):
    """The Elman RNN's state, its last output ``h [*batch, H]``."""


class RNNParams(NamedTuple):
    """Elman RNN parameters: ``w_x [I, H]``, ``w_h [H, H]``, ``b [H]``."""

    w_x: Array
    w_h: Array
    b: Array


@dataclasses.dataclass(frozen=True)
class RNNOptions:
    """What an Elman RNN cell is: ``hidden_size`` and the ``activation`` function."""

    hidden_size: int
    activation: Callable[[Array], Array] = jnp.tanh

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        if not callable(self.activation):
            raise TypeError(f"activation must be callable, got {type(self.activation).__name__}.")

    family = "rnn"

    def parameter_roles(self) -> dict[str, str]:
        """``{RNNParams field: its role}``, for :func:`lstmx.describe`."""
        return {
            "w_x": "input kernel W_x: x_t → pre-activation",
            "w_h": "recurrent kernel W_h: h_{t-1} → pre-activation",
            "b": "bias b",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 (I + H) H`` per step and example."""
        return 2 * (input_size + self.hidden_size) * self.hidden_size


def rnn(hidden_size: int, activation: Callable[[Array], Array] = jnp.tanh) -> base.Cell:
    """An Elman RNN cell, initialised like the LSTM: lecun-normal ``w_x``, orthogonal
    ``w_h``, zero ``b``."""
    options = RNNOptions(hidden_size, activation)
    fast_scan = base.fused_scan(options, project_inputs, pointwise)
    return base.make_cell(options, init_params, initial_state, gated_step, fast_scan)


def init_params(
    options: RNNOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> RNNParams:
    w_x, w_h = base.kernels(key, input_size, options.hidden_size, 1, dtype)
    return RNNParams(w_x, w_h, jnp.zeros((options.hidden_size,), dtype))


initial_state = partial(base.zero_state, RNNState)  # zeros [*batch_shape, H]


def check_params(options: RNNOptions, params: Any) -> None:
    H = options.hidden_size
    base.check_kernels(params, RNNParams, H, H)
    _checks.array_shape("params.b", params.b, (H,))


def project_inputs(options: RNNOptions, params: RNNParams, x: Array) -> Array:
    return base.affine(x, params.w_x, params.b)


def gated_step(options: RNNOptions, params: RNNParams, state: RNNState, x: Array):
    """One step; an Elman RNN has no gates, so the gates are ``{}``."""
    check_params(options, params)
    x = base.check_step(state, RNNState, options.hidden_size, x, params)
    return pointwise(
        options, params, state, project_inputs(options, params, x), state.h @ params.w_h
    )


def pointwise(options: RNNOptions, params: RNNParams, state: RNNState, x_proj: Array, hh: Array):
    h = options.activation(x_proj + hh)
    return RNNState(h), h, {}
