r"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
Needed?", arXiv:2410.01201): gated cells whose gates read only ``x_t``, so the recurrence is
a linear one, :math:`h_t = a_t \odot h_{t-1} + b_t`, that a parallel scan can run.

minGRU (blocks z, h of ``w_x [I, 2H]``, ``b [2H]``):

.. math::
    z_t &= \sigma(x_t W_{xz} + b_z), \qquad \tilde h_t = g(x_t W_{xh} + b_h) \\
    h_t &= (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t

minLSTM (blocks f, i, h of ``w_x [I, 3H]``, ``b [3H]``):

.. math::
    f_t &= \sigma(x_t W_{xf} + b_f), \quad i_t = \sigma(x_t W_{xi} + b_i), \quad
    \tilde h_t = g(x_t W_{xh} + b_h) \\
    f'_t &= \frac{f_t}{f_t + i_t}, \qquad i'_t = \frac{i_t}{f_t + i_t} \\
    h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

with the paper's positive activation :math:`g(v) = v + \tfrac12` for :math:`v \ge 0`,
:math:`\sigma(v)` otherwise (their log-space versions, Sec. 3 and Appendix A), so that
:math:`b_t = z_t \tilde h_t > 0`.

**Two ways to run a sequence.** ``cell.step`` (and :func:`lstmx.scan_stepwise`) applies
the equations above one step at a time in linear space. ``cell.fast_scan`` (used by
:func:`lstmx.scan`) has two formulations, chosen by the ``parallel`` option:

* ``parallel=False``: both gates are projected for all steps in one GEMM before the
  loop, then a ``lax.scan`` runs :math:`h_t = a_t h_{t-1} + b_t` (elementwise), with a
  hand-written VJP that runs the same recurrence backwards (:func:`linear_recurrence`).
* ``parallel=True``: the paper's log-space parallel scan. With
  :math:`a^*_t = \sum_{k \le t} \log a_k` (``log(1 - z) = -softplus(k_z)``,
  ``log f' = -softplus(softplus(-k_f) - softplus(-k_i))``) and
  :math:`\log b_k` (``log z = -softplus(-k_z)``, ``log i' = -softplus(-(softplus(-k_f) -
  softplus(-k_i)))``, plus :math:`\log g(\tilde v)`),

  .. math::
      h_t = e^{a^*_t} h_0 + \exp\!\big(a^*_t + \operatorname{logcumsumexp}_{k \le t}
            (\log b_k - a^*_k)\big).

  The second term is the paper's ``parallel_scan_log`` started from zero; it is computed
  with one ``jax.lax.associative_scan`` over pairs :math:`(A, B)` standing for
  :math:`h \mapsto e^{A} h + e^{B}` (composition :math:`(A_1 + A_2,\
  \operatorname{logaddexp}(B_1 + A_2, B_2))`), which gives the same :math:`a^*_t` and
  :math:`a^*_t + \operatorname{logcumsumexp}(\cdot)` without subtracting two large running
  sums (the literal ``a* + logcumsumexp(log b - a*)`` loses about
  :math:`|a^*_t| \cdot 10^{-7}` relative precision in float32 after many steps).
  **The initial state** enters linearly, :math:`e^{a^*_t} h_0`, so ``h_0`` may have any
  sign (the paper needs :math:`h_0 > 0` because it takes :math:`\log h_0`); the default
  initial state is zeros, as for every lstmx cell. ``unroll`` is ignored on this path.
* ``parallel="auto"`` (the default) picks the parallel scan when
  ``jax.default_backend()`` is not ``"cpu"``, at trace time. On the 2-core XLA:CPU
  machines the sequential loop was 2-4x faster than any associative scan (README,
  performance notes); the paper reports its speed-ups on a GPU.

Padded steps (``lengths``) have :math:`a = 1`, :math:`b = 0` (the state is carried, the
output is zero); ``reverse`` runs the same scan over the time-flipped sequence. All paths
agree with the step loop to float32 rounding, in values and gradients (tests).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lstmx import _checks
from lstmx.cells import base
from lstmx.cells.base import Array

__all__ = [
    "MinGRUOptions",
    "MinGRUParams",
    "MinLSTMOptions",
    "MinLSTMParams",
    "MinRNNState",
    "min_gru",
    "min_lstm",
]


class MinRNNState(base.HiddenState):
    """minGRU / minLSTM state, the last output ``h [*batch, H]``; any sign is allowed."""


class _MinParams(NamedTuple):
    """The params of both cells: an input kernel ``w_x`` and a bias ``b``, no recurrent
    kernel (the gates read only ``x_t``)."""

    w_x: Array
    b: Array


class MinGRUParams(_MinParams):
    """minGRU parameters ``w_x [I, 2H]``, ``b [2H]``, blocks in the order z, h (the
    candidate ``h̃``)."""


class MinLSTMParams(_MinParams):
    """minLSTM parameters ``w_x [I, 3H]``, ``b [3H]``, blocks in the order f, i, h (the
    candidate ``h̃``)."""


@dataclasses.dataclass(frozen=True)
class _MinOptions:
    """The options of both cells (attributes as :class:`MinGRUOptions`)."""

    hidden_size: int
    parallel: bool | str = "auto"

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        if not (isinstance(self.parallel, bool) or self.parallel == "auto"):
            raise ValueError(
                'parallel must be True, False or "auto", got '
                f"{type(self.parallel).__name__} {self.parallel!r}."
            )


@dataclasses.dataclass(frozen=True)
class MinGRUOptions(_MinOptions):
    """What a minGRU cell is.

    Attributes:
      hidden_size: ``H``.
      parallel: how :func:`lstmx.scan` runs a sequence: True, the log-space
        ``associative_scan``; False, a sequential ``lax.scan`` of the linear recurrence;
        "auto" (default), parallel unless ``jax.default_backend()`` is "cpu".
    """


@dataclasses.dataclass(frozen=True)
class MinLSTMOptions(_MinOptions):
    """What a minLSTM cell is (attributes as :class:`MinGRUOptions`)."""


_PARAMS = {MinGRUOptions: (MinGRUParams, 2), MinLSTMOptions: (MinLSTMParams, 3)}


def min_gru(hidden_size: int, *, parallel: bool | str = "auto") -> base.Cell:
    """A minGRU cell (equations and the ``parallel`` option in this module's docstring)."""
    return _cell(MinGRUOptions(hidden_size, parallel=parallel))


def min_lstm(hidden_size: int, *, parallel: bool | str = "auto") -> base.Cell:
    """A minLSTM cell (equations and the ``parallel`` option in this module's docstring)."""
    return _cell(MinLSTMOptions(hidden_size, parallel=parallel))


def _cell(options: MinGRUOptions | MinLSTMOptions) -> base.Cell:
    fast = partial(fast_scan, options)
    return base.make_cell(options, init_params, initial_state, step_with_gates, fast)


def init_params(options: Any, key: Array, input_size: int, dtype: Any = jnp.float32):
    """lecun-normal ``w_x`` (as PyTorch's ``nn.Linear`` scale, ``1/fan_in``), zero ``b``."""
    params_type, blocks = _PARAMS[type(options)]
    columns = blocks * options.hidden_size
    w_x = base.input_kernel(key, input_size, columns, dtype)
    return params_type(w_x, jnp.zeros((columns,), dtype))


initial_state = partial(base.zero_state, MinRNNState)  # zeros [*batch_shape, H]


def check_params(options: Any, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    params_type, blocks = _PARAMS[type(options)]
    columns = blocks * options.hidden_size
    _checks.params_type("params", params, params_type)
    if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != columns:
        _checks.array_shape("params.w_x", params.w_x, ("I", columns))
    _checks.array_shape("params.b", params.b, (columns,))


def g(v: Array) -> Array:
    r"""The paper's positive activation: :math:`v + \tfrac12` for :math:`v \ge 0`, else
    :math:`\sigma(v)`."""
    return jnp.where(v >= 0, v + 0.5, base.sigmoid(v))


def log_g(v: Array) -> Array:
    r""":math:`\log g(v)`: :math:`\log(v + \tfrac12)` for :math:`v \ge 0`, else
    :math:`-\mathrm{softplus}(-v)`; finite, with finite gradients, on both branches."""
    return jnp.where(v >= 0, jnp.log(jax.nn.relu(v) + 0.5), -jax.nn.softplus(-v))


def coefficients(options: Any, params: Any, x: Array) -> tuple[Array, Array, dict[str, Array]]:
    """``(a, b, gates)`` of :math:`h_t = a \\odot h_{t-1} + b` for inputs ``x [..., I]``."""
    k = base.affine(x, params.w_x, params.b)
    if isinstance(options, MinGRUOptions):
        k_z, v = jnp.split(k, 2, axis=-1)
        z, h_tilde = base.sigmoid(k_z), g(v)
        return 1.0 - z, z * h_tilde, {"z": z}
    k_f, k_i, v = jnp.split(k, 3, axis=-1)
    f, i, h_tilde = base.sigmoid(k_f), base.sigmoid(k_i), g(v)
    f_norm, i_norm = f / (f + i), i / (f + i)
    return f_norm, i_norm * h_tilde, {"f": f_norm, "i": i_norm}


def log_coefficients(options: Any, params: Any, x: Array) -> tuple[Array, Array]:
    """``(log a, log b)`` of the same recurrence, each computed stably from the logits."""
    k = base.affine(x, params.w_x, params.b)
    if isinstance(options, MinGRUOptions):
        k_z, v = jnp.split(k, 2, axis=-1)
        return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(v)
    k_f, k_i, v = jnp.split(k, 3, axis=-1)
    # log(i / f) = log σ(k_i) - log σ(k_f) = softplus(-k_f) - softplus(-k_i).
    diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(v)


def step_with_gates(
    options: Any, params: Any, state: MinRNNState, x: Array
) -> tuple[MinRNNState, Array, dict[str, Array]]:
    """One step in linear space; gates ``{"z"}`` (minGRU) or ``{"f", "i"}`` (minLSTM, the
    normalised ``f'`` and ``i'``), all in (0, 1). The candidate ``h̃ = g(·)`` is not
    reported: it is not a bounded activation, so gate saturation means nothing for it."""
    check_params(options, params)
    x = base.check_step(state, MinRNNState, options.hidden_size, x, params)
    a, b, gates = coefficients(options, params, x)
    h = a * state.h + b
    return MinRNNState(h), h, gates


def uses_parallel_scan(options: Any) -> bool:
    """Whether :func:`fast_scan` runs the log-space associative scan (see ``parallel``)."""
    if options.parallel == "auto":
        return jax.default_backend() != "cpu"
    return bool(options.parallel)


def fast_scan(
    options: Any,
    params: Any,
    state: MinRNNState,
    xs: Array,
    valid: Array | None,
    reverse: bool,
    unroll: int,
) -> tuple[MinRNNState, Array]:
    """The sequence path of :func:`lstmx.scan` (``xs [T, *batch, I]``, ``valid [T, *batch]``).

    The parallel scan is differentiated by JAX's autodiff; the sequential loop by the
    hand-written VJP of :func:`linear_recurrence` (reverse mode only, as every fast path;
    :func:`lstmx.scan_stepwise` supports forward mode).
    """
    if uses_parallel_scan(options):
        return _parallel_scan(options, params, state, xs, valid, reverse)
    return _sequential_scan(options, params, state, xs, valid, reverse, unroll)


def _sequential_scan(options, params, state, xs, valid, reverse, unroll):
    a, b, _ = coefficients(options, params, xs)  # [T, *batch, H], one GEMM for all steps
    if valid is not None:  # a padded step is the identity map: a = 1, b = 0
        keep = jnp.broadcast_to(valid[..., None], a.shape)
        a = jnp.where(keep, a, jnp.ones_like(a))
        b = jnp.where(keep, b, jnp.zeros_like(b))
    hs = linear_recurrence(a, b, state.h, reverse, unroll)
    final = hs[0] if reverse else hs[-1]
    ys = hs if valid is None else jnp.where(keep, hs, jnp.zeros_like(hs))
    return MinRNNState(final), ys


@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def linear_recurrence(a: Array, b: Array, h0: Array, reverse: bool, unroll: int) -> Array:
    r"""``hs [T, ...]`` with :math:`h_t = a_t \odot h_{t-1} + b_t` from ``h0`` (``reverse``:
    from the last step down), one elementwise ``lax.scan``.

    Its VJP is the same recurrence run the other way, by hand:
    :math:`g_t = \bar h_t + a_{t+1} \odot g_{t+1}`, then :math:`\bar a_t = g_t \odot
    h_{t-1}`, :math:`\bar b_t = g_t` and :math:`\bar h_0 = a_1 \odot g_1`: one more
    elementwise loop, where autodiff of ``lax.scan`` takes two and saves more.
    """

    def body(h, inputs):
        a_t, b_t = inputs
        h = a_t * h + b_t
        return h, h

    return lax.scan(body, h0, (a, b), reverse=reverse, unroll=unroll)[1]


def _linear_recurrence_forward(a, b, h0, reverse, unroll):
    hs = linear_recurrence(a, b, h0, reverse, unroll)
    return hs, (a, h0, hs)


def _linear_recurrence_backward(reverse, unroll, residuals, d_hs):
    a, h0, hs = residuals
    # h_{t-1} of every step, in time order: h0 then hs shifted by one step.
    if reverse:
        h_prev = jnp.concatenate([hs[1:], h0[None]])
    else:
        h_prev = jnp.concatenate([h0[None], hs[:-1]])

    def body(carry, inputs):
        d_h, a_t = inputs
        g = d_h + carry
        return a_t * g, g

    d_h0, g = lax.scan(body, jnp.zeros_like(h0), (d_hs, a), reverse=not reverse, unroll=unroll)
    return g * h_prev, g, d_h0


linear_recurrence.defvjp(_linear_recurrence_forward, _linear_recurrence_backward)


def _compose(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """``h -> e^A h + e^B`` maps in log form, ``first`` applied before ``second``."""
    log_a1, log_b1 = first
    log_a2, log_b2 = second
    return log_a1 + log_a2, jnp.logaddexp(log_b1 + log_a2, log_b2)


def _parallel_scan(options, params, state, xs, valid, reverse):
    log_a, log_b = log_coefficients(options, params, xs)  # [T, *batch, H]
    if valid is not None:
        keep = jnp.broadcast_to(valid[..., None], log_a.shape)
        # A padded step is the identity map: a = 1, b = 0 (a finite stand-in for log 0,
        # far below any real log b, keeps logaddexp's gradients finite).
        log_zero = jnp.asarray(-0.25 * jnp.finfo(log_b.dtype).max, log_b.dtype)
        log_a = jnp.where(keep, log_a, jnp.zeros_like(log_a))
        log_b = jnp.where(keep, log_b, log_zero)
    if reverse:
        log_a, log_b = jnp.flip(log_a, 0), jnp.flip(log_b, 0)
    a_star, log_s = lax.associative_scan(_compose, (log_a, log_b), axis=0)
    h = jnp.exp(a_star) * state.h[None] + jnp.exp(log_s)  # h_t = e^{a*_t} h_0 + s_t
    final = h[-1]
    if reverse:
        h = jnp.flip(h, 0)
    ys = h if valid is None else jnp.where(valid[..., None], h, jnp.zeros_like(h))
    return MinRNNState(final), ys
