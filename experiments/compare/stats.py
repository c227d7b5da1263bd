r"""Statistics for comparing variants over seeds: intervals, a test, a correction, an effect.

Every function here is pure (numbers in, numbers out), works on a one-dimensional sample
of per-seed values, and returns NaN with a short note instead of raising when a statistic
is undefined (one seed, zero variance). What each computes:

* :func:`bootstrap_mean_ci` — 95 % bootstrap confidence interval of the mean,
  ``scipy.stats.bootstrap`` with the **BCa** (bias-corrected and accelerated) method,
  9,999 resamples and a fixed seed, so the same records always give the same interval.
* :func:`wilson_ci` — Wilson score interval of a proportion (solve rate),
  ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``.
* :func:`welch_test` — Welch's unequal-variance two-sample t-test, two-sided,
  ``scipy.stats.ttest_ind(a, b, equal_var=False)``.
* :func:`holm_adjust` — Holm–Bonferroni step-down adjusted p-values (Holm 1979), written
  here because SciPy has none.
* :func:`hedges_g` — Hedges' g, the standardised mean difference with the exact
  small-sample bias correction (Hedges 1981).
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats as _scipy_stats

__all__ = [
    "BOOTSTRAP_METHOD",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "Interval",
    "TestResult",
    "bootstrap_mean_ci",
    "hedges_correction",
    "hedges_g",
    "holm_adjust",
    "mean_std_median",
    "welch_test",
    "wilson_ci",
]

CONFIDENCE = 0.95
"""Confidence level of every interval."""

BOOTSTRAP_METHOD = "BCa"
"""``scipy.stats.bootstrap``'s method: bias-corrected and accelerated percentile interval."""

BOOTSTRAP_RESAMPLES = 9999
"""Bootstrap resamples per interval."""

BOOTSTRAP_SEED = 0
"""Seed of the bootstrap's generator: the same sample always gives the same interval."""


class Interval(NamedTuple):
    """A confidence interval.

    Attributes:
      low: lower end (NaN when undefined).
      high: upper end (NaN when undefined).
      note: empty, or why the interval is NaN or degenerate.
    """

    low: float
    high: float
    note: str = ""


class TestResult(NamedTuple):
    """Result of :func:`welch_test`.

    Attributes:
      t: ``(mean(a) - mean(b)) / sqrt(var_a / n_a + var_b / n_b)`` (sample variances);
        negative when ``a`` has the lower mean (for losses: ``a`` is better).
      df: Welch–Satterthwaite degrees of freedom.
      p: two-sided p-value.
      note: empty, or why ``t``/``df``/``p`` are NaN.
    """

    __test__ = False  # Not a pytest test class, whatever its name.

    t: float
    df: float
    p: float
    note: str = ""


_NAN_TEST = (math.nan, math.nan, math.nan)


def _sample(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _is_constant(x: np.ndarray) -> bool:
    """True for samples whose values are all equal (variance exactly 0)."""
    return bool(np.all(x == x[0]))


def _sample_var(x: np.ndarray) -> float:
    """ddof=1 variance, exactly 0 for constant samples (np.var's rounded mean can miss)."""
    return 0.0 if _is_constant(x) else float(np.var(x, ddof=1))


def mean_std_median(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation (ddof=1) and median of ``values [n]``.

    Returns:
      ``(mean, std, median)``; all NaN for n = 0, std NaN for n = 1.
    """
    x = _sample(values)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    std = math.sqrt(_sample_var(x)) if x.size > 1 else math.nan
    return float(np.mean(x)), std, float(np.median(x))


def _rng_keyword(generator: np.random.Generator) -> dict[str, np.random.Generator]:
    """``rng=`` on SciPy >= 1.15, ``random_state=`` before (same generator either way)."""
    if "rng" in inspect.signature(_scipy_stats.bootstrap).parameters:
        return {"rng": generator}
    return {"random_state": generator}


def bootstrap_mean_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    method: str = BOOTSTRAP_METHOD,
) -> Interval:
    """Bootstrap confidence interval of the mean of ``values [n]``.

    ``scipy.stats.bootstrap((values,), np.mean, method=method)`` with a generator seeded
    by ``seed``, so the result is deterministic.

    Args:
      values: [n] finite samples (e.g. a variant's final losses over seeds).
      confidence: confidence level in (0, 1).
      n_resamples: bootstrap resamples.
      seed: seed of ``np.random.default_rng``.
      method: ``"BCa"`` (default), ``"percentile"`` or ``"basic"``.

    Returns:
      An :class:`Interval`. n < 2: NaN ends and a note (one value says nothing about
      spread). All values equal: the degenerate interval ``[value, value]`` and a note.
    """
    x = _sample(values)
    if x.size < 2:
        return Interval(math.nan, math.nan, f"confidence interval needs n >= 2 (n = {x.size})")
    if _is_constant(x):
        value = float(x[0])
        return Interval(value, value, "all values equal: zero-width interval")
    result = _scipy_stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        **_rng_keyword(np.random.default_rng(seed)),
    )
    ci = result.confidence_interval
    return Interval(float(ci.low), float(ci.high))


def wilson_ci(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval of a proportion ``successes / trials``.

    Args:
      successes: k, in [0, trials].
      trials: n >= 0.
      confidence: confidence level in (0, 1).

    Returns:
      An :class:`Interval` from ``scipy.stats.binomtest(k, n).proportion_ci(method=
      "wilson")``; NaN ends and a note when ``trials`` is 0.
    """
    if trials == 0:
        return Interval(math.nan, math.nan, "no trials")
    ci = _scipy_stats.binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="wilson"
    )
    return Interval(float(ci.low), float(ci.high))


def welch_test(a: Sequence[float], b: Sequence[float]) -> TestResult:
    """Welch's unequal-variance two-sample t-test, two-sided (``a`` against ``b``).

    ``scipy.stats.ttest_ind(a, b, equal_var=False)``, after checking the cases where the
    test is undefined.

    Args:
      a: [n_a] finite samples (e.g. a variant's final losses over seeds).
      b: [n_b] finite samples (e.g. the reference variant's).

    Returns:
      A :class:`TestResult`. Degenerate inputs return NaNs with a note instead of raising:
      fewer than two samples on either side, or zero variance on both sides.
    """
    a, b = _sample(a), _sample(b)
    if a.size < 2 or b.size < 2:
        return TestResult(*_NAN_TEST, f"test needs n >= 2 on both sides (n = {a.size} vs {b.size})")
    if _is_constant(a) and _is_constant(b):
        return TestResult(*_NAN_TEST, "test undefined: zero variance in both groups")
    with warnings.catch_warnings():
        # SciPy warns of precision loss for a constant sample; its variance is still 0.
        warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
        result = _scipy_stats.ttest_ind(a, b, equal_var=False)
    return TestResult(float(result.statistic), float(result.df), float(result.pvalue))


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    r"""Holm–Bonferroni adjusted p-values for one family of tests (Holm 1979).

    With the m defined p-values sorted ascending, :math:`p_{(1)} \le \dots \le p_{(m)}`,
    the adjusted value of the i-th smallest is

    .. math:: \tilde p_{(i)} = \max_{j \le i} \min\bigl(1, (m - j + 1)\, p_{(j)}\bigr),

    so rejecting every hypothesis with :math:`\tilde p \le \alpha` is Holm's step-down
    procedure: it controls the family-wise error rate at :math:`\alpha` under any
    dependence between the tests. NaN p-values (tests that could not be run) are not part
    of the family: they do not count in m and stay NaN.

    Args:
      p_values: [m] p-values in [0, 1], NaN allowed.

    Returns:
      [m] adjusted p-values in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64).reshape(-1)
    adjusted = np.full_like(p, math.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    order = defined[np.argsort(p[defined], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):  # rank j - 1 for the j-th smallest
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def hedges_correction(df: float) -> float:
    r"""Hedges' exact small-sample correction factor :math:`J(\nu)` (Hedges 1981).

    .. math:: J(\nu) = \frac{\Gamma(\nu / 2)}{\sqrt{\nu / 2}\;\Gamma((\nu - 1) / 2)},

    computed through ``math.lgamma``; :math:`J \approx 1 - 3 / (4\nu - 1)`.

    Args:
      df: :math:`\nu = n_a + n_b - 2 > 1`.
    """
    half = df / 2.0
    return math.exp(math.lgamma(half) - math.lgamma(half - 0.5)) / math.sqrt(half)


def hedges_g(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    r"""Hedges' g of ``a`` against ``b``: the bias-corrected standardised mean difference.

    .. math::

        s_p = \sqrt{\frac{(n_a - 1) s_a^2 + (n_b - 1) s_b^2}{n_a + n_b - 2}}, \qquad
        g = J(n_a + n_b - 2)\,\frac{\bar a - \bar b}{s_p}

    with sample variances (ddof=1) and :func:`hedges_correction`'s exact :math:`J`.
    For losses, g < 0 means ``a`` has the lower (better) mean.

    Args:
      a: [n_a] finite samples.
      b: [n_b] finite samples.

    Returns:
      ``(g, note)``; g is NaN, with the reason in ``note``, for fewer than two samples on
      either side or a pooled standard deviation of 0.
    """
    a, b = _sample(a), _sample(b)
    if a.size < 2 or b.size < 2:
        return math.nan, f"effect size needs n >= 2 on both sides (n = {a.size} vs {b.size})"
    df = a.size + b.size - 2
    pooled = ((a.size - 1) * _sample_var(a) + (b.size - 1) * _sample_var(b)) / df
    if pooled == 0.0:
        return math.nan, "effect size undefined: zero variance in both groups"
    d = (float(np.mean(a)) - float(np.mean(b))) / math.sqrt(pooled)
    return hedges_correction(df) * d, ""
