"""Synthetic long-dependency tasks, state-tracking tasks and lag windows for forecasting.

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

The state-tracking tasks (parity check, modular arithmetic, cycle navigation, even
pairs) are the regular-language tasks of Delétang et al. 2023, "Neural Networks and the
Chomsky Hierarchy" (ICLR), defined as in their code (DeepMind's
``neural_networks_chomsky_hierarchy``, ``tasks/regular/*.py``): a string of tokens and
one class per string. Here a batch may mix lengths: each string is drawn at the batch's
padded length and cut at its own length (`StateTrackingBatch`); the label is that of the
cut string. `STATE_TRACKING_TASKS` lists them with their vocabulary and class counts.

Size arguments (``batch_size``, ``delay``, ``length``, ``lag``, ``horizon``) must be
Python ints (numpy integers are accepted, bools are not); they are checked in plain
Python before any tracing and raise ``TypeError``/``ValueError`` naming what was
expected and what came.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lstmx import _checks

__all__ = [
    "BLANK",
    "COPY_LENGTH",
    "DELIMITER",
    "MODULAR_OPERATORS",
    "NUM_CLASSES",
    "NUM_SYMBOLS",
    "PAD",
    "STATE_TRACKING_TASKS",
    "StateTrackingBatch",
    "StateTrackingTask",
    "adding_baseline",
    "adding_task",
    "copy_baseline",
    "copy_task",
    "cycle_navigation",
    "even_pairs",
    "modular_arithmetic",
    "parity_check",
    "sample_lengths",
    "state_tracking_task",
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
# State-tracking tasks (Delétang et al. 2023).
# --------------------------------------------------------------------------------------

PAD = -1
"""Token of the positions past a string's length in a padded `StateTrackingBatch`."""

MODULAR_OPERATORS = {"+": 0, "-": 1, "*": 2}
"""Modular arithmetic's operators; operator ``op`` is token ``modulus + MODULAR_OPERATORS[op]``.

As Delétang et al.'s ``OP_BY_CHARACTER``, whose fourth symbol (``"_"``, token
``modulus + 3``) is part of the vocabulary but never drawn."""


class StateTrackingBatch(NamedTuple):
    """A batch of strings of the state-tracking tasks, right-padded.

    Attributes:
      tokens: int32 ``[B, T]``; positions at and past ``lengths`` hold `PAD`.
      lengths: int32 ``[B]``, each string's length, in ``1 .. T``.
      labels: int32 ``[B]``, the class of each string.
    """

    tokens: jax.Array
    lengths: jax.Array
    labels: jax.Array


def _strings(
    key: jax.Array, batch_size: int, length: int, lengths: Any, num_symbols: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Uniform symbols ``[B, T]``, the lengths ``[B]`` and the mask ``[B, T]`` of real positions."""
    batch_size = _checks.int_at_least("batch_size", batch_size, 1)
    length = _checks.int_at_least("length", length, 1)
    symbols = jax.random.randint(key, (batch_size, length), 0, num_symbols, dtype=jnp.int32)
    if lengths is None:
        lengths = jnp.full((batch_size,), length, jnp.int32)
    else:
        lengths = jnp.asarray(lengths)
        if lengths.shape != (batch_size,) or not jnp.issubdtype(lengths.dtype, jnp.integer):
            raise ValueError(
                f"lengths must be an integer array of shape [batch_size] = [{batch_size}], "
                f"got {lengths.dtype} {tuple(lengths.shape)}"
            )
        lengths = jnp.clip(lengths.astype(jnp.int32), 1, length)
    mask = jnp.arange(length)[None, :] < lengths[:, None]
    return symbols, lengths, mask


def _batch(symbols: jax.Array, lengths: jax.Array, mask: jax.Array, labels) -> StateTrackingBatch:
    tokens = jnp.where(mask, symbols, PAD)
    return StateTrackingBatch(tokens, lengths, labels.astype(jnp.int32))


def parity_check(
    key: jax.Array, batch_size: int, length: int, lengths: Any = None
) -> StateTrackingBatch:
    r"""Parity check: is the number of 1s in a binary string even (class 0) or odd (class 1)?

    Delétang et al. 2023 (``tasks/regular/parity_check.py``): symbols iid uniform over
    {0, 1}; the label is :math:`\sum_t s_t \bmod 2`. ``1010100`` has three 1s: class 1.
    Two symbols, two classes, chance 1/2.

    Args:
      key: PRNG key (may be traced).
      batch_size: ``B``, a positive Python int (static).
      length: ``T``, the padded length, a positive Python int (static).
      lengths: ``[B]`` integer lengths in ``1 .. T`` (may be traced; clipped to that range);
        None: every string has length ``T``.

    Returns:
      A `StateTrackingBatch`.
    """
    symbols, lengths, mask = _strings(key, batch_size, length, lengths, 2)
    return _batch(symbols, lengths, mask, jnp.sum(symbols * mask, axis=1) % 2)


def even_pairs(
    key: jax.Array, batch_size: int, length: int, lengths: Any = None
) -> StateTrackingBatch:
    r"""Even pairs: is the number of ``01`` and ``10`` pairs in a binary string even (class 0)?

    Delétang et al. 2023 (``tasks/regular/even_pairs.py``): symbols iid uniform over
    {0, 1}; the label is the number of positions ``t`` with :math:`s_t \ne s_{t+1}`, mod 2
    (which equals :math:`s_1 \ne s_T`). ``0101001`` has five unequal pairs: class 1.
    Two symbols, two classes, chance 1/2.

    Arguments and return as :func:`parity_check`.
    """
    symbols, lengths, mask = _strings(key, batch_size, length, lengths, 2)
    unequal = (symbols[:, :-1] != symbols[:, 1:]) & mask[:, 1:]  # pair (t, t+1) inside
    return _batch(symbols, lengths, mask, jnp.sum(unequal, axis=1) % 2)


def cycle_navigation(
    key: jax.Array, batch_size: int, length: int, lengths: Any = None, cycle_length: int = 5
) -> StateTrackingBatch:
    r"""Cycle navigation: the final position of a walk on a cycle, starting at 0.

    Delétang et al. 2023 (``tasks/regular/cycle_navigation.py``, cycle of 5): actions iid
    uniform over {0, 1, 2}, action ``a`` moving by ``a - 1`` (0: one step left, 1: stay,
    2: one step right; their code, whose docstring words it differently); the label is
    :math:`\sum_t (a_t - 1) \bmod C`. Three symbols, ``C`` classes, chance 1/C.

    Arguments and return as :func:`parity_check`, and:
      cycle_length: ``C``, a Python int >= 2 (static).
    """
    cycle_length = _checks.int_at_least("cycle_length", cycle_length, 2)
    symbols, lengths, mask = _strings(key, batch_size, length, lengths, 3)
    return _batch(symbols, lengths, mask, jnp.sum((symbols - 1) * mask, axis=1) % cycle_length)


def _evaluate_modular(tokens: jax.Array, mask: jax.Array, modulus: int) -> jax.Array:
    """The value mod ``modulus`` of ``n o n o ... n`` strings ``[B, T]``, ``*`` before ``+ -``.

    A left-to-right fold: ``total`` holds the finished terms, ``term`` the running product
    of the current one (signed by the ``-`` before it), ``op`` the last operator read.
    """
    plus, minus, times = (modulus + MODULAR_OPERATORS[op] for op in "+-*")

    def read(carry, column):
        total, term, op = carry
        token, real, position = column
        is_number = position % 2 == 0
        first = position == 0
        new_term = jnp.where(
            first | (op == plus), token, jnp.where(op == minus, -token, term * token)
        )
        new_total = jnp.where(first | (op == times), total, total + term)
        total = jnp.where(real & is_number, new_total % modulus, total)
        term = jnp.where(real & is_number, new_term % modulus, term)
        op = jnp.where(real & ~is_number, token, op)
        return (total, term, op), None

    zeros = jnp.zeros(tokens.shape[0], jnp.int32)
    positions = jnp.arange(tokens.shape[1])
    columns = (tokens.T, mask.T, positions)
    (total, term, _), _ = jax.lax.scan(read, (zeros, zeros, zeros), columns)
    return (total + term) % modulus


def modular_arithmetic(
    key: jax.Array, batch_size: int, length: int, lengths: Any = None, modulus: int = 5
) -> StateTrackingBatch:
    r"""Modular arithmetic (the bracket-free version): the value of ``n o n o ... n`` mod m.

    Delétang et al. 2023 (``tasks/regular/modular_arithmetic.py``, modulus 5): numbers iid
    uniform over ``0 .. m-1`` at the even positions, operators iid uniform over ``+ - *``
    at the odd ones, evaluated with ``*`` binding tighter than ``+`` and ``-``, mod ``m``.
    Modulo 5: ``1 + 2 * 3`` = 2, ``1 - 1 - 1`` = 4. Strings have odd length: an even length
    ``L`` becomes ``L - 1``, as in their code (a string of length 1 is a single number).
    Tokens: numbers ``0 .. m-1``, operator ``op`` is ``m + MODULAR_OPERATORS[op]``; the
    vocabulary is ``m + 4`` tokens (their unused blank included), ``m`` classes, chance 1/m.

    Arguments and return as :func:`parity_check`, and:
      modulus: ``m``, a Python int >= 2 (static).
    """
    modulus = _checks.int_at_least("modulus", modulus, 2)
    key_numbers, key_operators = jax.random.split(key)
    numbers, lengths, _ = _strings(key_numbers, batch_size, length, lengths, modulus)
    operators = modulus + jax.random.randint(
        key_operators, numbers.shape, 0, len(MODULAR_OPERATORS), dtype=jnp.int32
    )
    lengths = lengths - (1 - lengths % 2)  # odd
    mask = jnp.arange(numbers.shape[1])[None, :] < lengths[:, None]
    symbols = jnp.where(jnp.arange(numbers.shape[1]) % 2 == 0, numbers, operators)
    return _batch(symbols, lengths, mask, _evaluate_modular(symbols, mask, modulus))


def sample_lengths(key: jax.Array, batch_size: int, max_length: int) -> jax.Array:
    """Lengths iid uniform over ``1 .. max_length``, int32 ``[B]`` (Delétang et al.'s
    training curriculum, drawn per string rather than per batch)."""
    batch_size = _checks.int_at_least("batch_size", batch_size, 1)
    max_length = _checks.int_at_least("max_length", max_length, 1)
    return jax.random.randint(key, (batch_size,), 1, max_length + 1, dtype=jnp.int32)


class StateTrackingTask(NamedTuple):
    """A state-tracking task: its generator and sizes.

    Attributes:
      generate: ``generate(key, batch_size, length, lengths, size) -> StateTrackingBatch``
        (``size``: the modulus or cycle length; ignored by the binary tasks).
      vocab_size: distinct input tokens.
      num_classes: classes of the answer (chance is ``1 / num_classes``).
    """

    generate: Callable[..., StateTrackingBatch]
    vocab_size: int
    num_classes: int


def state_tracking_task(name: str, modulus: int = 5) -> StateTrackingTask:
    """The task called ``name`` (a key of `STATE_TRACKING_TASKS`), with ``modulus`` the
    modulus of modular arithmetic and the cycle length of cycle navigation.

    Raises:
      ValueError: an unknown name or a modulus below 2.
    """
    if name not in STATE_TRACKING_TASKS:
        raise ValueError(
            f"unknown state-tracking task {name!r}; known: {', '.join(STATE_TRACKING_TASKS)}"
        )
    modulus = _checks.int_at_least("modulus", modulus, 2)
    if name == "parity":
        return StateTrackingTask(lambda k, b, t, n, _: parity_check(k, b, t, n), 2, 2)
    if name == "even_pairs":
        return StateTrackingTask(lambda k, b, t, n, _: even_pairs(k, b, t, n), 2, 2)
    if name == "cycle_navigation":
        return StateTrackingTask(
            lambda k, b, t, n, m: cycle_navigation(k, b, t, n, cycle_length=m), 3, modulus
        )
    return StateTrackingTask(
        lambda k, b, t, n, m: modular_arithmetic(k, b, t, n, modulus=m),
        modulus + len(MODULAR_OPERATORS) + 1,
        modulus,
    )


STATE_TRACKING_TASKS = ("parity", "modular_arithmetic", "cycle_navigation", "even_pairs")
"""The names of `state_tracking_task` (the ``--task`` values of ``experiments.run``)."""


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
