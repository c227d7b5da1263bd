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

Censored outcomes (time to solve; a seed that never solves is right-censored at its last
evaluation step):

* :func:`kaplan_meier` — the Kaplan–Meier estimate of the fraction of seeds not yet solved
  against step, ``scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=..., right=...)).sf``,
  and :func:`km_median`, the first step where it is at most 1/2.
* :func:`logrank_test` — the log-rank test of two samples of censored times, two-sided,
  ``scipy.stats.logrank(x, y)``.
* :func:`fisher_test` — Fisher's exact test of two solve counts, two-sided,
  ``scipy.stats.fisher_exact``.
* :func:`detectable_effect` — the smallest standardised effect a two-sided two-sample
  t-test detects with a given power at a given level, from the noncentral t distribution
  (``scipy.stats.nct``) and ``scipy.optimize.brentq``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import optimize as _scipy_optimize
from scipy import stats as _scipy_stats

__all__ = [
    "BOOTSTRAP_METHOD",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "POWER",
    "FisherResult",
    "Interval",
    "LogRankResult",
    "Survival",
    "TestResult",
    "bootstrap_mean_ci",
    "detectable_effect",
    "fisher_test",
    "hedges_correction",
    "hedges_g",
    "holm_adjust",
    "kaplan_meier",
    "km_median",
    "logrank_test",
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

POWER = 0.8
"""The power at which :func:`detectable_effect` states the smallest detectable effect."""


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


# --------------------------------------------------------------------------------------
# Censored outcomes: time to solve.
# --------------------------------------------------------------------------------------


class Survival(NamedTuple):
    """A Kaplan–Meier curve: the fraction of seeds not yet solved, a right-continuous step.

    Attributes:
      steps: [K] ascending steps at which the estimate changes (solve or censoring steps).
      unsolved: [K] the estimated fraction unsolved from each step on (before the first
        step it is 1).
    """

    steps: np.ndarray
    unsolved: np.ndarray


class LogRankResult(NamedTuple):
    """Result of :func:`logrank_test`.

    Attributes:
      statistic: SciPy's ``(observed - expected solves of a) / sqrt(variance)``; > 0 when
        ``a`` solves sooner than ``b``. Its square is the usual chi-squared statistic.
      p: two-sided p-value.
      note: empty, or why ``statistic`` and ``p`` are NaN.
    """

    statistic: float
    p: float
    note: str = ""


class FisherResult(NamedTuple):
    """Result of :func:`fisher_test`.

    Attributes:
      odds_ratio: ``k_a (n_b - k_b) / ((n_a - k_a) k_b)`` (SciPy's sample odds ratio; inf
        or NaN where a count is 0).
      p: two-sided p-value.
      note: empty, or why ``p`` is NaN.
    """

    odds_ratio: float
    p: float
    note: str = ""


def _censored(times: Sequence[float], solved: Sequence[bool]) -> _scipy_stats.CensoredData:
    t = _sample(times)
    event = np.asarray(solved, dtype=bool).reshape(-1)
    if t.shape != event.shape:
        raise ValueError(f"times [{t.size}] and solved [{event.size}] differ in length")
    return _scipy_stats.CensoredData(uncensored=t[event], right=t[~event])


def kaplan_meier(times: Sequence[float], solved: Sequence[bool]) -> Survival:
    """Kaplan–Meier estimate of the fraction of seeds not yet solved, against step.

    ``scipy.stats.ecdf(scipy.stats.CensoredData(uncensored=times[solved],
    right=times[~solved])).sf``: at each step where seeds solve, the fraction unsolved is
    multiplied by ``1 - solved there / still at risk there``; a censored seed leaves the
    risk set after its step.

    Args:
      times: [n] per seed: the step it solved at, or the last step it was seen unsolved.
      solved: [n] True where the seed solved (an event), False where it is censored.

    Returns:
      A :class:`Survival`; empty arrays for n = 0.
    """
    data = _censored(times, solved)
    if len(data) == 0:
        empty = np.zeros((0,), dtype=np.float64)
        return Survival(empty, empty)
    sf = _scipy_stats.ecdf(data).sf
    return Survival(np.asarray(sf.quantiles, np.float64), np.asarray(sf.probabilities, np.float64))


def km_median(times: Sequence[float], solved: Sequence[bool]) -> float:
    """The Kaplan–Meier median time to solve: the first step where at most 1/2 is unsolved.

    Returns:
      That step, or NaN when the estimate never falls to 1/2 (fewer than half the seeds
      are seen to solve; the median is not reached).
    """
    curve = kaplan_meier(times, solved)
    reached = np.flatnonzero(curve.unsolved <= 0.5)
    return float(curve.steps[reached[0]]) if reached.size else math.nan


def logrank_test(
    times_a: Sequence[float],
    solved_a: Sequence[bool],
    times_b: Sequence[float],
    solved_b: Sequence[bool],
) -> LogRankResult:
    """The log-rank test of time to solve, ``a`` against ``b``, two-sided.

    ``scipy.stats.logrank(x, y)`` on the two samples as :class:`scipy.stats.CensoredData`,
    after checking the cases where it is undefined.

    Args:
      times_a: [n_a] solve or censoring steps of ``a``'s seeds.
      solved_a: [n_a] True where the seed solved.
      times_b: [n_b] the same for ``b`` (e.g. the reference row).
      solved_b: [n_b].

    Returns:
      A :class:`LogRankResult`; NaNs with a note when a side has no seeds, when no seed
      solved on either side, or when the statistic's variance is 0 (e.g. every seed of
      both rows solved at one and the same step).
    """
    x, y = _censored(times_a, solved_a), _censored(times_b, solved_b)
    n_a, n_b = len(_sample(times_a)), len(_sample(times_b))
    if n_a == 0 or n_b == 0:
        return LogRankResult(
            math.nan, math.nan, f"log-rank needs seeds on both sides ({n_a} vs {n_b})"
        )
    if not (np.any(solved_a) or np.any(solved_b)):
        return LogRankResult(
            math.nan, math.nan, "no seed solved in either row: nothing to test (log-rank)"
        )
    with warnings.catch_warnings():
        # 0/0 when the variance vanishes; checked below.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        result = _scipy_stats.logrank(x, y, alternative="two-sided")
    statistic, p = float(result.statistic), float(result.pvalue)
    if not (math.isfinite(statistic) and math.isfinite(p)):
        return LogRankResult(
            math.nan, math.nan, "log-rank undefined: zero variance (the seeds solve together)"
        )
    return LogRankResult(statistic, p)


def fisher_test(solved_a: int, n_a: int, solved_b: int, n_b: int) -> FisherResult:
    """Fisher's exact test of solve counts, ``a`` against ``b``, two-sided.

    ``scipy.stats.fisher_exact([[solved_a, n_a - solved_a], [solved_b, n_b - solved_b]])``.

    Args:
      solved_a: seeds of ``a`` that solved, in [0, n_a].
      n_a: seeds of ``a``.
      solved_b: seeds of ``b`` that solved, in [0, n_b].
      n_b: seeds of ``b``.

    Returns:
      A :class:`FisherResult`; NaN with a note when a side has no seeds. Both sides all
      solved or all unsolved give p = 1 (the counts cannot differ less).
    """
    if n_a == 0 or n_b == 0:
        return FisherResult(
            math.nan, math.nan, f"Fisher's test needs seeds on both sides ({n_a} vs {n_b})"
        )
    if not (0 <= solved_a <= n_a and 0 <= solved_b <= n_b):
        raise ValueError(f"solve counts {solved_a}/{n_a}, {solved_b}/{n_b} are not counts")
    with warnings.catch_warnings():
        # SciPy divides 0 by 0 for the odds ratio when a column is all zero.
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        result = _scipy_stats.fisher_exact(
            [[solved_a, n_a - solved_a], [solved_b, n_b - solved_b]], alternative="two-sided"
        )
    return FisherResult(float(result.statistic), float(result.pvalue))


def _t_test_power(d: float, n_a: int, n_b: int, alpha: float) -> float:
    """Power of the two-sided two-sample t-test (pooled variance) at effect ``d``."""
    df = n_a + n_b - 2
    ncp = d * math.sqrt(n_a * n_b / (n_a + n_b))
    critical = _scipy_stats.t.ppf(1.0 - alpha / 2.0, df)
    nct = _scipy_stats.nct(df, ncp)
    # The far tail below -critical (< alpha / 2 for d >= 0, and far smaller once d matters)
    # comes back NaN from SciPy's nct at some noncentralities; it then counts as 0.
    lower = float(nct.cdf(-critical))
    return float(nct.sf(critical)) + (0.0 if math.isnan(lower) else lower)


def detectable_effect(n_a: int, n_b: int, alpha: float, power: float = POWER) -> float:
    r"""The smallest effect a two-sided two-sample t-test detects with ``power`` at ``alpha``.

    The test's power at standardised effect :math:`d` is
    :math:`P(|T| > t_{1-\alpha/2,\,\nu})` for :math:`T` noncentral t with
    :math:`\nu = n_a + n_b - 2` degrees of freedom and noncentrality
    :math:`d\sqrt{n_a n_b / (n_a + n_b)}` (``scipy.stats.nct``); the returned :math:`d`
    solves power = ``power`` (``scipy.optimize.brentq``). It is the effect in the units of
    Hedges' g: an effect below it is likely to go unflagged.

    Args:
      n_a: seeds on one side, >= 2.
      n_b: seeds on the other, >= 2.
      alpha: the test's level in (0, 1), e.g. ``0.05 / m`` for the strictest step of Holm
        over m tests.
      power: the power to reach, in (alpha, 1).

    Returns:
      :math:`d > 0`; NaN when either side has fewer than two seeds or the root cannot be
      bracketed (so few seeds that no effect reaches the power).
    """
    if n_a < 2 or n_b < 2 or not (0.0 < alpha < 1.0) or not (alpha < power < 1.0):
        return math.nan
    gap = lambda d: _t_test_power(d, n_a, n_b, alpha) - power  # noqa: E731
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)  # nct far in its tail
        high = 1.0
        while gap(high) < 0.0:
            high *= 2.0
            if high > 1e3:  # the noncentral t loses precision long before
                return math.nan
        try:
            return float(_scipy_optimize.brentq(gap, 0.0, high, xtol=1e-10))
        except ValueError:  # NaN power inside the bracket
            return math.nan
