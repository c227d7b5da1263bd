r"""The independently recurrent neural network (Li, Li, Cook, Zhu & Gao 2018, "Independently
Recurrent Neural Network (IndRNN): Building A Longer and Deeper RNN", CVPR,
arXiv:1803.04831): each unit has one recurrent weight, on its own previous output.

.. math::
    h_t = \mathrm{act}(x_t W_x + u \odot h_{t-1} + b), \qquad u \in \mathbb{R}^H

with ``act = relu`` by default (the paper's choice). Without ``recurrent_max`` the
recurrent weights are used as they are.

**Recurrent-weight bound** (Li et al. 2018, Sec. 3, backpropagation through time for an
IndRNN): the gradient reaching step ``t``
from step ``T`` scales as :math:`\prod_{k=t+1}^{T} u_n \mathrm{act}'_{n,k}`, so with relu a
unit keeps its memory over ``T - t`` steps without exploding when
:math:`|u_n| \le \gamma^{1/(T-t)}`; for the adding problem the paper bounds
:math:`|u_n| \le 2^{1/T}` (``T`` the sequence length). ``recurrent_max=2 ** (1 / T)``
implements that rule:

* init: ``u ~ U[recurrent_min, recurrent_max]`` (``recurrent_min`` 0 and the top 1 when
  ``recurrent_max`` is None), as in the widely used TensorFlow implementation batzner/indrnn
  (``ind_rnn_cell.py``, whose adding example sets ``recurrent_max = 2 ** (1 / T)``);
  ``w_x`` is lecun-normal and ``b`` zero, as for every lstmx cell;
* forward pass: ``u`` is clipped to ``[-recurrent_max, recurrent_max]`` before use (its
  gradient is zero where the clip is active), so training may move ``u`` anywhere but the
  cell always runs with :math:`|u| \le` ``recurrent_max``. The stored param is not changed.

**Li et al.'s adding-problem init** (their code, Sunnydreamrain/IndRNN_Theano_Lasagne,
``adding/adding.py``): ``w_x ~ N(0, 0.001^2)`` (``input_std=1e-3``), which keeps a relu
unit with :math:`u \approx 1` from summing ``T`` inputs of size one into a huge state, and
in the last of their two layers ``u ~ U[2^{-1/T}, 2^{1/T}]``
(``recurrent_min=2 ** (-1 / T)``), so that every unit of that layer starts with a long
memory.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmx import _checks
from lstmx.cells import base
from lstmx.cells.base import Array

__all__ = ["IndRNNOptions", "IndRNNParams", "IndRNNState", "indrnn"]


class IndRNNState(base.HiddenState):
    """The IndRNN's state, its last output ``h [*batch, H]`` (unit n reads only its own)."""


class IndRNNParams(NamedTuple):
    """IndRNN parameters.

    Attributes:
      w_x: input kernel ``[I, H]``.
      u: recurrent weights ``[H]``, one per unit, multiplying ``h_{t-1}`` elementwise.
      b: bias ``[H]``.
    """

    w_x: Array
    u: Array
    b: Array


@dataclasses.dataclass(frozen=True)
class IndRNNOptions:
    """What an IndRNN cell is.

    Attributes:
      hidden_size: ``H``.
      activation: the elementwise non-linearity (``jax.nn.relu`` by default).
      recurrent_max: None, or a positive bound on ``|u|`` (the paper's ``2 ** (1 / T)``
        for sequences of length ``T``): the init draws ``u ~ U[recurrent_min, recurrent_max]``
        and the forward pass clips ``u`` to ``[-recurrent_max, recurrent_max]``.
      recurrent_min: the low end of the init draw ``u ~ U[recurrent_min, recurrent_max or
        1]`` (0 by default; Li et al.'s last layer uses ``2 ** (-1 / T)``).
      input_std: None for a lecun-normal ``w_x``, or a positive standard deviation:
        ``w_x ~ N(0, input_std^2)`` (Li et al.'s adding problem uses 0.001).
    """

    hidden_size: int
    activation: Callable[[Array], Array] = jax.nn.relu
    recurrent_max: float | None = None
    recurrent_min: float = 0.0
    input_std: float | None = None

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        if not callable(self.activation):
            raise TypeError(f"activation must be callable, got {type(self.activation).__name__}.")
        bound = self.recurrent_max
        if bound is not None:
            if isinstance(bound, bool) or not isinstance(
                bound, (int, float, np.integer, np.floating)
            ):
                raise TypeError(
                    "recurrent_max must be None or a positive number (e.g. 2 ** (1 / T)), got "
                    f"{type(bound).__name__} {bound!r}."
                )
            if not (math.isfinite(bound) and bound > 0):
                raise ValueError(
                    "recurrent_max must be None or a positive finite number (e.g. 2 ** (1 / T)), "
                    f"got {bound!r}."
                )
        _checks.finite_number("recurrent_min", self.recurrent_min, "e.g. 2 ** (-1 / T)")
        top = 1.0 if bound is None else float(bound)
        if not 0 <= self.recurrent_min < top:
            raise ValueError(
                f"recurrent_min must be >= 0 and below the top of the init draw (recurrent_max, "
                f"or 1 without it) {top!r}, got {self.recurrent_min!r}."
            )
        if self.input_std is not None:
            _checks.finite_number(
                "input_std", self.input_std, "e.g. 1e-3, or None for lecun-normal"
            )
            if not self.input_std > 0:
                raise ValueError(
                    f"input_std must be None or a positive number, got {self.input_std!r}."
                )

    family = "indrnn"

    def parameter_roles(self) -> dict[str, str]:
        """``{IndRNNParams field: its role}``, for :func:`lstmx.describe`."""
        bound = self.recurrent_max
        clip = f", clipped to |u| ≤ {bound:g} in the forward pass" if bound is not None else ""
        return {
            "w_x": "input kernel W_x: x_t → pre-activation",
            "u": f"recurrent weights u: u ⊙ h_{{t-1}}, one per unit{clip}",
            "b": "bias b",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 I H`` per step and example (the recurrence is elementwise)."""
        return 2 * input_size * self.hidden_size


def indrnn(
    hidden_size: int,
    activation: Callable[[Array], Array] = jax.nn.relu,
    *,
    recurrent_max: float | None = None,
    recurrent_min: float = 0.0,
    input_std: float | None = None,
) -> base.Cell:
    """An IndRNN cell (equations and the ``recurrent_max`` rule in this module's docstring).

    Its recurrence is elementwise (no recurrent GEMM), so it has no fast path of its own:
    :func:`lstmx.scan` runs autodiff of ``lax.scan`` over its step.
    """
    options = IndRNNOptions(hidden_size, activation, recurrent_max, recurrent_min, input_std)
    return base.make_cell(options, init_params, initial_state, gated_step)


def init_params(
    options: IndRNNOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> IndRNNParams:
    """lecun-normal (or ``N(0, input_std^2)``) ``w_x``, ``u ~ U[recurrent_min, recurrent_max
    or 1]``, zero ``b``."""
    H = options.hidden_size
    key_x, key_u = jax.random.split(key)
    if options.input_std is None:
        w_x = base.input_kernel(key_x, input_size, H, dtype)
    else:
        shape = (_checks.positive_int("input_size", input_size), H)
        draw = jax.nn.initializers.normal(options.input_std)
        w_x = draw(key_x, shape, base.draw_dtype(dtype)).astype(dtype)
    top = 1.0 if options.recurrent_max is None else float(options.recurrent_max)
    low = float(options.recurrent_min)
    u = jax.random.uniform(key_u, (H,), base.draw_dtype(dtype), low, top).astype(dtype)
    return IndRNNParams(w_x, u, jnp.zeros((H,), dtype))


initial_state = partial(base.zero_state, IndRNNState)  # zeros [*batch_shape, H]


def check_params(options: IndRNNOptions, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    H = options.hidden_size
    _checks.params_type("params", params, IndRNNParams)
    if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != H:
        _checks.array_shape("params.w_x", params.w_x, ("I", H))
    _checks.array_shape("params.u", params.u, (H,))
    _checks.array_shape("params.b", params.b, (H,))


def recurrent_weights(options: IndRNNOptions, params: IndRNNParams) -> Array:
    """``u`` as the forward pass uses it: clipped to ``[-recurrent_max, recurrent_max]``."""
    if options.recurrent_max is None:
        return params.u
    bound = float(options.recurrent_max)
    return jnp.clip(params.u, -bound, bound)


def gated_step(options: IndRNNOptions, params: IndRNNParams, state: IndRNNState, x: Array):
    """One step; an IndRNN has no gates, so the gates are ``{}``."""
    check_params(options, params)
    x = base.check_step(state, IndRNNState, options.hidden_size, x, params)
    u = recurrent_weights(options, params)
    z = base.affine(x, params.w_x, params.b) + jnp.broadcast_to(u, state.h.shape) * state.h
    h = options.activation(z)
    return IndRNNState(h), h, {}
