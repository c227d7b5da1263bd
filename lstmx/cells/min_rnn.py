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

**Negative eigenvalues** (``negative_eigenvalues=True``; Grazzi, Siems, Franke, Zela, Hutter
& Pontil 2025, "Unlocking State-Tracking in Linear RNNs Through Negative Eigenvalues", ICLR,
arXiv:2411.12537). With the transition :math:`a_t` in (0, 1) a linear recurrence cannot
keep parity at arbitrary length in finite precision (Merrill, Petty & Sabharwal 2024;
Grazzi et al. prove it for any transition with only positive eigenvalues).
Grazzi et al. widen Mamba's transition from :math:`[0, 1]` to :math:`[-1, 1]` by
:math:`a \mapsto 2a - 1`, leaving the input term as it was; the same map here gives

.. math::
    \text{minGRU: } h_t = (1 - 2 z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad
    \text{minLSTM: } h_t = (2 f'_t - 1) \odot h_{t-1} + i'_t \odot \tilde h_t.

A unit then flips sign at :math:`z_t \to 1` (or :math:`f'_t \to 0`), which is how a
diagonal recurrence counts modulo 2: from :math:`h = 0`, :math:`h \mapsto c - h` at each
1 and :math:`h \mapsto h` at each 0 leaves :math:`h \in \{0, c\}`. (Counting modulo 3
needs more than a real diagonal: Grazzi et al. show it needs non-triangular transitions.)

**Two ways to run a sequence.** ``cell.step`` (and :func:`lstmx.scan_stepwise`) applies
the equations above one step at a time in linear space. ``cell.fast_scan`` (used by
:func:`lstmx.scan`) has two formulations, chosen by the ``parallel`` option:

* ``parallel=False``: a sequential loop over blocks of at most :data:`BLOCK_STEPS` steps.
  Each block projects its gates with one GEMM, then an inner ``lax.scan`` runs
  :math:`h_t = a_t h_{t-1} + b_t` (elementwise); a hand-written VJP runs the same
  recurrence backwards and recomputes each block's gates from ``x`` instead of storing
  them (:func:`blocked_recurrence`). ``unroll`` applies to the inner loops.
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
  machines the blocked sequential loop trained 4-9x faster than the associative scans at
  T = 1024 (README, "Speed"); the paper reports its speed-ups on a GPU.

  With ``negative_eigenvalues`` the logarithm of :math:`a_t` does not exist, so the
  parallel path is a linear-space ``associative_scan`` over pairs :math:`(A, B)` standing
  for :math:`h \mapsto A h + B` (composition :math:`(A_1 A_2,\ A_2 B_1 + B_2)`); with
  :math:`|a_t| < 1` its products only shrink, so nothing overflows. The sequential path is
  the same loop with the new :math:`a_t`.

**Accuracy.** minLSTM's normalised gates :math:`f', i'` are a quotient of two sigmoids,
which needs sigmoids accurate in relative terms: :func:`normalised_gates` uses
``jax.nn.sigmoid``. Everywhere else the gates enter only through products and sums with
quantities of size about 1 (:math:`a h`, :math:`z \tilde h`, :math:`1 - z`, their
derivatives), where the fast ``tanh`` form's absolute error (at most 1.2e-7) is at
float32 rounding, so it stays for speed. The exception is minGRU's gate with negative
eigenvalues, whose slope must stay exact where it saturates
(:func:`sigmoid_with_exact_slope`). Against a float64 evaluation of the equations
above, values and gradients agree to 1e-5 (relative and absolute) for logits anywhere in
[-30, 30], on every path (tests).

Padded steps (``lengths``) have :math:`a = 1`, :math:`b = 0` (the state is carried, the
output is zero); ``reverse`` runs the same scan over the time-flipped sequence. All paths
agree with the step loop to float32 rounding, in values and gradients (tests).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
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
    negative_eigenvalues: bool = False

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        if not isinstance(self.negative_eigenvalues, bool):
            raise TypeError(
                "negative_eigenvalues must be True or False, got "
                f"{type(self.negative_eigenvalues).__name__} {self.negative_eigenvalues!r}."
            )
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
      negative_eigenvalues: False (default), the paper's transition ``1 - z`` in (0, 1);
        True, Grazzi et al.'s ``1 - 2z`` in (-1, 1) (minLSTM: ``2f' - 1``), see the
        module docstring.
    """

    family = "min_gru"

    def parameter_roles(self) -> dict[str, str]:
        """``{MinGRUParams field: its role}``, for :func:`lstmx.describe`."""
        H = self.hidden_size
        return {
            "w_x": f"input kernel W_x: x_t → blocks [z h̃], {H} columns each (no recurrent kernel)",
            "b": "bias b of blocks [z h̃]",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 I 2H`` per step and example: no recurrent matmul."""
        return 2 * input_size * 2 * self.hidden_size


@dataclasses.dataclass(frozen=True)
class MinLSTMOptions(_MinOptions):
    """What a minLSTM cell is (attributes as :class:`MinGRUOptions`)."""

    family = "min_lstm"

    def parameter_roles(self) -> dict[str, str]:
        """``{MinLSTMParams field: its role}``, for :func:`lstmx.describe`."""
        H = self.hidden_size
        return {
            "w_x": (
                f"input kernel W_x: x_t → blocks [f i h̃], {H} columns each (no recurrent kernel)"
            ),
            "b": "bias b of blocks [f i h̃]",
        }

    def matmul_flops(self, input_size: int) -> int:
        """``2 I 3H`` per step and example: no recurrent matmul."""
        return 2 * input_size * 3 * self.hidden_size


_PARAMS = {MinGRUOptions: (MinGRUParams, 2), MinLSTMOptions: (MinLSTMParams, 3)}


def min_gru(
    hidden_size: int, *, parallel: bool | str = "auto", negative_eigenvalues: bool = False
) -> base.Cell:
    """A minGRU cell (equations and both options in this module's docstring)."""
    return _cell(
        MinGRUOptions(hidden_size, parallel=parallel, negative_eigenvalues=negative_eigenvalues)
    )


def min_lstm(
    hidden_size: int, *, parallel: bool | str = "auto", negative_eigenvalues: bool = False
) -> base.Cell:
    """A minLSTM cell (equations and both options in this module's docstring)."""
    return _cell(
        MinLSTMOptions(hidden_size, parallel=parallel, negative_eigenvalues=negative_eigenvalues)
    )


def _cell(options: MinGRUOptions | MinLSTMOptions) -> base.Cell:
    fast = partial(fast_scan, options)
    return base.make_cell(options, init_params, initial_state, gated_step, fast)


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
    return coefficients_of_logits(options, base.affine(x, params.w_x, params.b))


def coefficients_of_logits(options: Any, k: Array) -> tuple[Array, Array, dict[str, Array]]:
    """:func:`coefficients` from the logits ``k = x W_x + b [..., G*H]``."""
    if isinstance(options, MinGRUOptions):
        k_z, v = jnp.split(k, 2, axis=-1)
        h_tilde = g(v)
        if options.negative_eigenvalues:
            z = sigmoid_with_exact_slope(k_z)
            return 1.0 - 2.0 * z, z * h_tilde, {"z": z}
        z = base.sigmoid(k_z)
        return 1.0 - z, z * h_tilde, {"z": z}
    k_f, k_i, v = jnp.split(k, 3, axis=-1)
    f_norm, i_norm = normalised_gates(k_f, k_i)
    a = f_norm - i_norm if options.negative_eigenvalues else f_norm  # f' - i' = 2f' - 1
    return a, i_norm * g(v), {"f": f_norm, "i": i_norm}


def normalised_gates(k_f: Array, k_i: Array) -> tuple[Array, Array]:
    r"""minLSTM's :math:`f' = f / (f + i)` and :math:`i' = i / (f + i)`, exact under saturation.

    The quotient of two sigmoids is exact when each sigmoid is accurate in relative terms,
    as ``jax.nn.sigmoid`` is (the fast ``tanh`` form is only accurate to about 1e-7 in
    absolute terms: with it the quotient was 4e-2 off at logits of -16 to -3 and 0/0
    below). Logits below :math:`\log(\text{tiny}) + 2` (-85.3 in float32, where both
    sigmoids would reach the subnormals and their sum 0) count as that bound. The
    log-space form :math:`\sigma(\mathrm{softplus}(-k_i) - \mathrm{softplus}(-k_f))` is as
    exact and needs no bound, but trained minLSTM 1.6x slower on XLA:CPU; this one as fast
    as the old quotient of fast sigmoids (new/old 0.99, B 32, T 256, H 128).
    """
    lowest = math.log(jnp.finfo(k_f.dtype).tiny) + 2.0
    f = jax.nn.sigmoid(jnp.maximum(k_f, lowest))
    i = jax.nn.sigmoid(jnp.maximum(k_i, lowest))
    return f / (f + i), i / (f + i)


@jax.custom_jvp
def sigmoid_with_exact_slope(k: Array) -> Array:
    r""":math:`\sigma(k)` whose derivative is :math:`\sigma(k)\,\sigma(-k)`, exact in relative
    terms where the gate saturates (autodiff's :math:`\sigma(1 - \sigma)` loses it once
    :math:`\sigma` rounds to 1). minGRU's gate needs it with negative eigenvalues: there
    :math:`|a| = |1 - 2z|` is near 1 at both saturations, nothing decays, and the state and
    its gradients grow to many times 1, which turned the slope's float32 error of 1e-7
    into a gradient 2e-5 off (tests/test_min_rnn_accuracy.py)."""
    return jax.nn.sigmoid(k)


@sigmoid_with_exact_slope.defjvp
def _sigmoid_with_exact_slope_jvp(primals, tangents):
    (k,), (dk,) = primals, tangents
    return jax.nn.sigmoid(k), dk * sigmoid_slope(k)


def sigmoid_slope(k: Array) -> Array:
    r""":math:`\sigma'(k) = \sigma(k)\,\sigma(-k)`, each factor accurate in relative terms."""
    return jax.nn.sigmoid(k) * jax.nn.sigmoid(-k)


def log_coefficients(options: Any, params: Any, x: Array) -> tuple[Array, Array]:
    """``(log a, log b)`` of the same recurrence, each computed stably from the logits
    (the transition in (0, 1) only: with ``negative_eigenvalues`` there is no ``log a``)."""
    k = base.affine(x, params.w_x, params.b)
    if isinstance(options, MinGRUOptions):
        k_z, v = jnp.split(k, 2, axis=-1)
        return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(v)
    k_f, k_i, v = jnp.split(k, 3, axis=-1)
    # log(i / f) = log σ(k_i) - log σ(k_f) = softplus(-k_f) - softplus(-k_i).
    diff = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    return -jax.nn.softplus(diff), -jax.nn.softplus(-diff) + log_g(v)


def gated_step(
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
    hand-written VJP of :func:`blocked_recurrence` (reverse mode only, as every fast path;
    :func:`lstmx.scan_stepwise` supports forward mode).
    """
    if uses_parallel_scan(options):
        return _parallel_scan(options, params, state, xs, valid, reverse)
    return _sequential_scan(options, params, state, xs, valid, reverse, unroll)


#: The most steps one iteration of the sequential path's outer loop runs. An iteration
#: projects its block of steps with one GEMM, then runs the block's recurrence in an inner
#: ``lax.scan``; so no ``[T, B, G*H]`` array of gates is ever written to memory, and the
#: backward recomputes a block's gates from ``x`` instead of reading them back. Chosen by
#: measurement on XLA:CPU (minGRU, B = 32, I = 10, H = 128, T = 1024, train): 32 to 128
#: steps were within noise of each other; 16 was 1.3x slower than 64 (and 256, with an inner
#: ``unroll=4``, 1.2x slower than 64 with the same unroll).
BLOCK_STEPS = 64


def _sequential_scan(options, params, state, xs, valid, reverse, unroll):
    steps = xs.shape[0]
    blocks = -(-steps // BLOCK_STEPS)
    block_steps = -(-steps // blocks)  # blocks of equal length, with the least padding
    padding = blocks * block_steps - steps
    keep = valid
    if padding:  # identity steps after the last: they keep the state in either direction
        real = jnp.ones(xs.shape[:-1], bool) if valid is None else valid
        keep = jnp.concatenate([real, jnp.zeros((padding, *real.shape[1:]), bool)])
        xs = jnp.concatenate([xs, jnp.zeros((padding, *xs.shape[1:]), xs.dtype)])
    hs = blocked_recurrence(
        options,
        params,
        state.h,
        xs.reshape(blocks, block_steps, *xs.shape[1:]),
        None if keep is None else keep.reshape(blocks, block_steps, *keep.shape[1:]),
        reverse,
        unroll,
    )
    hs = hs.reshape(blocks * block_steps, *hs.shape[2:])[:steps]
    final = hs[0] if reverse else hs[-1]
    ys = hs if valid is None else jnp.where(valid[..., None], hs, jnp.zeros_like(hs))
    return MinRNNState(final), ys


def _masked_coefficients(options, k, keep):
    """``(a, b)`` of a block's logits ``k [C, *batch, G*H]``; a step where ``keep`` is False
    is the identity map, ``a = 1``, ``b = 0``."""
    a, b, _ = coefficients_of_logits(options, k)
    if keep is None:
        return a, b
    keep = keep[..., None]
    return jnp.where(keep, a, jnp.ones_like(a)), jnp.where(keep, b, jnp.zeros_like(b))


def _block_forward(options, params, reverse, unroll, h, block):
    """One block of steps (``x [C, *batch, I]``, ``keep [C, *batch]`` or None) from ``h
    [*batch, H]``: the state after the block and the block's outputs ``[C, *batch, H]``."""
    x, keep = block
    a, b = _masked_coefficients(options, base.affine(x, params.w_x, params.b), keep)

    def step(h, coefficients):
        a_t, b_t = coefficients
        h = a_t * h + b_t
        return h, h

    return lax.scan(step, h, (a, b), reverse=reverse, unroll=unroll)


@partial(jax.custom_vjp, nondiff_argnums=(0, 5, 6))
def blocked_recurrence(options, params, h0, xs, keep, reverse, unroll):
    r"""``hs [N, C, *batch, H]``: :math:`h_t = a_t \odot h_{t-1} + b_t` from ``h0`` over
    ``xs [N, C, *batch, I]``, N blocks of C steps (``keep [N, C, *batch]`` False: an
    identity step; ``reverse``: from the last step down). Each block's ``(a, b)`` is
    projected from its ``x`` with one GEMM inside the loop (:data:`BLOCK_STEPS`).

    Its VJP runs the blocks the other way, recomputing each block's gates from ``x`` (one
    small GEMM) rather than saving them: :math:`g_t = \bar h_t + a_{t+1} \odot g_{t+1}`
    step by step, then for the whole block :math:`\bar a_t = g_t \odot h_{t-1}`,
    :math:`\bar b_t = g_t`, the logits' gradient by hand (:func:`_logit_gradient`), and
    the block's share of ``dW``, ``db`` and ``d xs`` as one GEMM or sum each; the state's
    gradient is :math:`\bar h_0 = a_1 \odot g_1`.
    """
    return _blocked_forward(options, params, h0, xs, keep, reverse, unroll)[0]


def _blocked_forward(options, params, h0, xs, keep, reverse, unroll):
    """``(hs, starts)``: the outputs and, per block, the state the block started from."""

    def body(h, block):
        h_end, hs = _block_forward(options, params, reverse, unroll, h, block)
        return h_end, (hs, h)

    _, (hs, starts) = lax.scan(body, h0, (xs, keep), reverse=reverse)
    return hs, starts


def _blocked_recurrence_forward(options, params, h0, xs, keep, reverse, unroll):
    hs, starts = _blocked_forward(options, params, h0, xs, keep, reverse, unroll)
    return hs, (params, xs, keep, hs, starts)


def _blocked_recurrence_backward(options, reverse, unroll, residuals, d_hs):
    params, xs, keep, hs, starts = residuals

    def step(d_next, inputs):  # d_next = a_{t+1} g_{t+1}, the gradient reaching h_t
        dy_t, a_t = inputs
        g_t = dy_t + d_next
        return a_t * g_t, g_t

    def body(carry, block):
        d_next, d_w, d_b = carry
        x, keep_block, h_block, h_start, dy = block
        k = base.affine(x, params.w_x, params.b)  # the block's logits, recomputed
        a, _ = _masked_coefficients(options, k, keep_block)
        d_next, g = lax.scan(step, d_next, (dy, a), reverse=not reverse, unroll=unroll)
        if reverse:  # h_{t-1}: the state each step started from
            h_prev = jnp.concatenate([h_block[1:], h_start[None]])
        else:
            h_prev = jnp.concatenate([h_start[None], h_block[:-1]])
        d_a, d_b_coefficient = g * h_prev, g
        if keep_block is not None:  # an identity step's a and b are constants
            mask = keep_block[..., None]
            d_a = jnp.where(mask, d_a, jnp.zeros_like(d_a))
            d_b_coefficient = jnp.where(mask, g, jnp.zeros_like(g))
        d_k = _logit_gradient(options, k, d_a, d_b_coefficient)
        rows = math.prod(x.shape[:-1])  # not -1: a batch may be empty
        flat_x, flat_d_k = x.reshape(rows, x.shape[-1]), d_k.reshape(rows, d_k.shape[-1])
        d_w = d_w + flat_x.T @ flat_d_k
        d_b = d_b + flat_d_k.sum(axis=0)
        return (d_next, d_w, d_b), d_k @ params.w_x.T

    zeros = (jnp.zeros_like(starts[0]), jnp.zeros_like(params.w_x), jnp.zeros_like(params.b))
    (d_h0, d_w, d_b), d_xs = lax.scan(
        body, zeros, (xs, keep, hs, starts, d_hs), reverse=not reverse
    )
    d_keep = None if keep is None else np.zeros(keep.shape, jax.dtypes.float0)
    return type(params)(d_w, d_b), d_h0, d_xs, d_keep


blocked_recurrence.defvjp(_blocked_recurrence_forward, _blocked_recurrence_backward)


def _logit_gradient(options, k, d_a, d_b):
    r"""The gradient of the logits :math:`k = x W + b` from those of ``a`` and ``b``:

    * minGRU (:math:`a = 1 - z`, :math:`b = z \tilde h`): :math:`\bar k_z = (\bar b \tilde h -
      \bar a)\, z (1 - z)`, :math:`\bar k_h = \bar b\, z\, g'(v)`;
    * minLSTM (:math:`a = f'`, :math:`b = i' \tilde h`, :math:`f' + i' = 1`): with
      :math:`s = (\bar a - \bar b \tilde h) f' i'`, :math:`\bar k_f = s (1 - f)`,
      :math:`\bar k_i = -s (1 - i)`, :math:`\bar k_h = \bar b\, i'\, g'(v)`;

    where :math:`g'(v) = 1` for :math:`v \ge 0`, :math:`\sigma(v)(1 - \sigma(v))` otherwise.
    With ``negative_eigenvalues`` (:math:`a = 1 - 2z`, or :math:`2f' - 1`) the same
    formulas hold with :math:`2 \bar a` in place of :math:`\bar a`.
    """
    if options.negative_eigenvalues:
        d_a = 2.0 * d_a
    if isinstance(options, MinGRUOptions):
        k_z, v = jnp.split(k, 2, axis=-1)
        h_tilde, g_prime = g(v), _g_slope(v)
        if options.negative_eigenvalues:  # as the forward: see sigmoid_with_exact_slope
            z, z_slope = jax.nn.sigmoid(k_z), sigmoid_slope(k_z)
        else:
            z = base.sigmoid(k_z)
            z_slope = z * (1.0 - z)
        return jnp.concatenate([(d_b * h_tilde - d_a) * z_slope, d_b * z * g_prime], -1)
    k_f, k_i, v = jnp.split(k, 3, axis=-1)
    h_tilde, g_prime = g(v), _g_slope(v)
    f_norm, i_norm = normalised_gates(k_f, k_i)
    s = (d_a - d_b * h_tilde) * f_norm * i_norm
    return jnp.concatenate([s * (1.0 - base.sigmoid(k_f)), -s * (1.0 - base.sigmoid(k_i)),
                            d_b * i_norm * g_prime], -1)  # fmt: skip


def _g_slope(v: Array) -> Array:
    """The derivative of :func:`g` at ``v``: 1 for ``v >= 0``, else ``σ(v)(1 - σ(v))``."""
    sigma_v = base.sigmoid(v)
    return jnp.where(v >= 0, jnp.ones_like(v), sigma_v * (1.0 - sigma_v))


def _compose(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """``h -> e^A h + e^B`` maps in log form, ``first`` applied before ``second``."""
    log_a1, log_b1 = first
    log_a2, log_b2 = second
    return log_a1 + log_a2, jnp.logaddexp(log_b1 + log_a2, log_b2)


def _parallel_scan(options, params, state, xs, valid, reverse):
    if options.negative_eigenvalues:  # a in (-1, 1) has no logarithm: compose linearly
        a, b, _ = coefficients(options, params, xs)  # [T, *batch, H]

        def states(a_product, b_sum):  # h_t = (a_t ... a_1) h_0 + B_t
            return a_product * state.h[None] + b_sum

        return _scan_affine_maps((a, b), (1.0, 0.0), _compose_linear, states, valid, reverse)
    log_a, log_b = log_coefficients(options, params, xs)  # [T, *batch, H]
    # log 0 for a padded step's b: a finite stand-in far below any real log b keeps
    # logaddexp's gradients finite.
    log_zero = jnp.asarray(-0.25 * jnp.finfo(log_b.dtype).max, log_b.dtype)

    def states(a_star, log_s):  # h_t = e^{a*_t} h_0 + s_t
        return jnp.exp(a_star) * state.h[None] + jnp.exp(log_s)

    return _scan_affine_maps((log_a, log_b), (0.0, log_zero), _compose, states, valid, reverse)


def _compose_linear(first: tuple[Array, Array], second: tuple[Array, Array]):
    """``h -> A h + B`` maps, ``first`` applied before ``second``."""
    a1, b1 = first
    a2, b2 = second
    return a1 * a2, a2 * b1 + b2


def _scan_affine_maps(maps, identity, compose, states, valid, reverse):
    """Every prefix composition of the per-step maps ``maps`` ``([T, *batch, H], ...)``.

    A padded step (``valid`` false) becomes ``identity``, so it leaves ``h`` as it is;
    ``states`` turns the composed maps into ``h [T, *batch, H]``; ``reverse`` composes
    from the last step. Returns the final state and the outputs, zero at padded steps.
    """
    if valid is not None:
        keep = valid[..., None]
        maps = tuple(jnp.where(keep, m, e) for m, e in zip(maps, identity, strict=True))
    if reverse:
        maps = tuple(jnp.flip(m, 0) for m in maps)
    h = states(*lax.associative_scan(compose, maps, axis=0))
    final = h[-1]
    if reverse:
        h = jnp.flip(h, 0)
    ys = h if valid is None else jnp.where(valid[..., None], h, jnp.zeros_like(h))
    return MinRNNState(final), ys
