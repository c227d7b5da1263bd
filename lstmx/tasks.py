"""Synthetic long-dependency tasks and lag windows for forecasting.

The copy memory task and the adding problem follow Arjovsky, Shah & Bengio 2016,
"Unitary Evolution Recurrent Neural Networks" (ICML), the layout reused by Henaff et
al. 2016, Wisdom et al. 2016 and Tallec & Ollivier 2018. Both generators draw a fresh
batch from a PRNG key and are jittable with the size arguments static, so a training
step can generate its own data::

    @jax.jit
    def train_step(params, key):
        inputs, targets = copy_task(key, batch_size=20, delay=100)
        ...

Copy task token encoding (``NUM_CLASSES = 10`` classes):

    ======  ===========================================
    token   meaning
    ======  ===========================================
    0..7    data symbols (``NUM_SYMBOLS = 8``)
    8       ``BLANK``
    9       ``DELIMITER`` (the cue to start recalling)
    ======  ===========================================

Size arguments (``batch_size``, ``delay``, ``length``, ``lag``, ``horizon``) must be
Python ints (numpy integers are accepted, bools are not); they are checked in plain
Python before any tracing and raise ``TypeError``/``ValueError`` naming what was
expected and what came.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lstmx import _checks

__all__ = [
    "BLANK",
    "COPY_LENGTH",
    "DELIMITER",
    "NUM_CLASSES",
    "NUM_SYMBOLS",
    "adding_baseline",
    "adding_task",
    "copy_baseline",
    "copy_task",
    "windows",
]

NUM_SYMBOLS = 8
"""Number of data symbols in the copy task; symbols are tokens ``0 .. NUM_SYMBOLS - 1``."""

BLANK = 8
"""Copy task token for "nothing here": the gap, the tail of the input, the early targets."""

DELIMITER = 9
"""Copy task token that tells the model to start reproducing the symbols."""

NUM_CLASSES = 10
"""Size of the copy task vocabulary: ``NUM_SYMBOLS`` data symbols, ``BLANK``, ``DELIMITER``."""

COPY_LENGTH = 10
"""Number of symbols the copy task asks the model to remember and reproduce."""


# --------------------------------------------------------------------------------------
# Copy memory task.
# --------------------------------------------------------------------------------------


def copy_task(key: jax.Array, batch_size: int, delay: int) -> tuple[jax.Array, jax.Array]:
    """Generates a batch of the copy memory task (Arjovsky, Shah & Bengio 2016).

    With ``T = delay`` every sequence has length ``T + 20``::

        inputs:  s_1 .. s_10 | BLANK x (T - 1) | DELIMITER | BLANK x 10
        targets: BLANK x (T + 10)                           | s_1 .. s_10

    The symbols ``s_k`` are iid uniform over ``0 .. NUM_SYMBOLS - 1`` (with
    replacement). In index terms: symbols at ``[0, 10)``, blanks at ``[10, T + 9)``,
    the delimiter at ``T + 9``, blanks at ``[T + 10, T + 20)``; the targets are blank
    at ``[0, T + 10)`` and ``targets[:, T + 10:] == inputs[:, :10]``. The model must
    therefore reproduce the symbols right after seeing the delimiter, ``T`` steps
    after the last symbol was shown. The loss in the paper is the cross-entropy
    over ``NUM_CLASSES`` averaged over all ``T + 20`` steps; see `copy_baseline`.

    Args:
        key: PRNG key (may be traced).
        batch_size: ``B``, a positive Python int (static under ``jax.jit``).
        delay: ``T``, a positive Python int (static under ``jax.jit``). ``T = 1``
            puts the delimiter directly after the symbols.

    Returns:
        ``(inputs, targets)``, both int32 ``[B, T + 20]`` token ids.

    Raises:
        TypeError: ``batch_size`` or ``delay`` is not an int.
        ValueError: ``batch_size`` or ``delay`` is below 1.
    """
    batch_size = _checks.int_at_least("batch_size", batch_size, 1)
    delay = _checks.int_at_least("delay", delay, 1)
    B, T = batch_size, delay
    symbols = jax.random.randint(key, (B, COPY_LENGTH), 0, NUM_SYMBOLS, dtype=jnp.int32)
    inputs = jnp.concatenate(
        [
            symbols,
            jnp.full((B, T - 1), BLANK, dtype=jnp.int32),
            jnp.full((B, 1), DELIMITER, dtype=jnp.int32),
            jnp.full((B, COPY_LENGTH), BLANK, dtype=jnp.int32),
        ],
        axis=1,
    )
    targets = jnp.concatenate(
        [jnp.full((B, T + COPY_LENGTH), BLANK, dtype=jnp.int32), symbols], axis=1
    )
    return inputs, targets


def copy_baseline(delay: int) -> float:
    r"""Cross-entropy of the memoryless strategy on the copy task.

    A model that predicts ``BLANK`` with certainty for the first ``T + 10`` steps
    and a uniform distribution over the ``NUM_SYMBOLS`` data symbols for the last
    10 pays ``ln 8`` at each of the last 10 steps and nothing elsewhere, so its
    loss averaged over the ``T + 20`` steps is (Arjovsky, Shah & Bengio 2016)

    .. math::

        \frac{10 \ln 8}{T + 20},

    i.e. 0.1733 at ``T = 100`` and 0.0400 at ``T = 500``. A model has learned
    something only if it beats this.

    Args:
        delay: ``T``, a positive int.

    Returns:
        The baseline loss in nats per step.

    Raises:
        TypeError: ``delay`` is not an int.
        ValueError: ``delay`` is below 1.
    """
    delay = _checks.int_at_least("delay", delay, 1)
    return COPY_LENGTH * math.log(NUM_SYMBOLS) / (delay + 2 * COPY_LENGTH)


# --------------------------------------------------------------------------------------
# Adding problem.
# --------------------------------------------------------------------------------------


def adding_task(key: jax.Array, batch_size: int, length: int) -> tuple[jax.Array, jax.Array]:
    r"""Generates a batch of the adding problem, Arjovsky, Shah & Bengio 2016 form.

    This is the variant of Hochreiter & Schmidhuber 1997 used by Arjovsky et al.
    2016: channel 0 holds values ``v_t ~ U[0, 1)``; channel 1 is zero except for
    exactly two markers of 1.0, at ``a ~ U{0, .., T//2 - 1}`` (first half) and
    ``b ~ U{T//2, .., T - 1}`` (second half). The target is

    .. math::

        y = v_a + v_b,

    scored by mean squared error at the last step; see `adding_baseline`.

    Args:
        key: PRNG key (may be traced).
        batch_size: ``B``, a positive Python int (static under ``jax.jit``).
        length: ``T``, a Python int ``>= 2`` so that each half holds at least one
            position (static under ``jax.jit``).

    Returns:
        ``(x, y)``: ``x`` float32 ``[B, T, 2]`` (values, markers), ``y`` float32 ``[B]``.

    Raises:
        TypeError: ``batch_size`` or ``length`` is not an int.
        ValueError: ``batch_size < 1`` or ``length < 2``.
    """
    batch_size = _checks.int_at_least("batch_size", batch_size, 1)
    length = _checks.int_at_least("length", length, 2, " (one marker goes in each half)")
    B, T = batch_size, length
    half = T // 2
    key_values, key_first, key_second = jax.random.split(key, 3)
    values = jax.random.uniform(key_values, (B, T), dtype=jnp.float32)
    first = jax.random.randint(key_first, (B,), 0, half, dtype=jnp.int32)
    second = jax.random.randint(key_second, (B,), half, T, dtype=jnp.int32)
    markers = jax.nn.one_hot(first, T, dtype=jnp.float32) + jax.nn.one_hot(
        second, T, dtype=jnp.float32
    )
    x = jnp.stack([values, markers], axis=-1)
    y = (
        jnp.take_along_axis(values, first[:, None], axis=1)[:, 0]
        + jnp.take_along_axis(values, second[:, None], axis=1)[:, 0]
    )
    return x, y


def adding_baseline() -> float:
    r"""Mean squared error of always predicting 1 on the adding problem.

    With ``v_a, v_b ~ U[0, 1]`` independent, ``E[v_a + v_b] = 1``, so

    .. math::

        \mathbb{E}[(v_a + v_b - 1)^2] = \mathrm{Var}(v_a) + \mathrm{Var}(v_b)
        = \tfrac{1}{12} + \tfrac{1}{12} = \tfrac{1}{6} \approx 0.1667

    (Arjovsky, Shah & Bengio 2016). A model has learned something only if it
    beats this.

    Returns:
        1/6.
    """
    return 1.0 / 6.0


# --------------------------------------------------------------------------------------
# Lag windows for forecasting.
# --------------------------------------------------------------------------------------


def windows(series: np.ndarray | jax.Array, lag: int, horizon: int) -> tuple[jax.Array, jax.Array]:
    r"""Cuts a series into overlapping (lag, horizon) windows for forecasting.

    Window ``j`` (``0 <= j < W``, ``W = N - lag - horizon + 1``) uses the ``lag``
    past steps to predict the ``horizon`` next ones:

    .. math::

        \text{inputs}_j = s_{j : j + \text{lag}}, \qquad
        \text{targets}_j = s_{j + \text{lag} : j + \text{lag} + \text{horizon}}.

    Implemented as one gather with an index array (no loop over windows), so it is
    also jittable with ``lag`` and ``horizon`` static.

    Args:
        series: ``[N]`` or ``[N, F]`` numpy or jax array; a 1-D series is treated as
            ``F = 1``. It is converted with ``jnp.asarray``, so float64 numpy input
            becomes float32 unless ``jax_enable_x64`` is set.
        lag: number of input steps, a positive int.
        horizon: number of target steps, a positive int.

    Returns:
        ``(inputs, targets)``: ``[W, lag, F]`` and ``[W, horizon, F]`` in the
        series' dtype; the feature axis is kept for a 1-D series.

    Raises:
        TypeError: ``series`` is not a numpy/jax array, or ``lag``/``horizon`` is not an int.
        ValueError: ``series`` rank is not 1 or 2, ``lag`` or ``horizon`` is below 1,
            or ``N < lag + horizon`` (not even one window).
    """
    if not isinstance(series, (np.ndarray, jax.Array)):
        raise TypeError(
            f"series must be a numpy or jax array of shape [N] or [N, F], "
            f"got {type(series).__name__}"
        )
    lag = _checks.int_at_least("lag", lag, 1)
    horizon = _checks.int_at_least("horizon", horizon, 1)
    if series.ndim not in (1, 2):
        raise ValueError(
            f"series must have rank 1 [N] or 2 [N, F], got rank {series.ndim} "
            f"with shape {tuple(series.shape)}"
        )
    num_steps = series.shape[0]  # N
    if num_steps < lag + horizon:
        raise ValueError(
            f"series is too short: one window needs lag + horizon = {lag + horizon} steps, "
            f"got a series of length {num_steps}"
        )
    s = jnp.asarray(series)
    if s.ndim == 1:
        s = s[:, None]
    num_windows = num_steps - lag - horizon + 1  # W
    # idx[j, k] = j + k: row j lists the lag + horizon steps of window j.
    idx = jnp.arange(num_windows)[:, None] + jnp.arange(lag + horizon)[None, :]
    window = s[idx]  # [W, lag + horizon, F]
    return window[:, :lag], window[:, lag:]
