"""Tests for experiments.compare's statistics of censored outcomes: time to solve.

Kaplan–Meier, the log-rank test, Fisher's exact test and the detectable effect, each
against SciPy called directly on the same numbers and against a value worked out by hand
(in the comments), then as columns of the summary.

Tolerances: our wrappers against the same SciPy call, rtol=1e-12; hand-worked values
with fractions, rtol=1e-12; the log-rank p against the normal tail of the hand-worked z,
rtol=1e-9 (SciPy's chi-squared against our normal); the detectable effect against the
literature's two-decimal values, atol=0.05 (as the brief asks: the tables' rounding).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_compare import make_record

from experiments.compare import report as compare
from experiments.compare import stats as cstats
from experiments.compare import tables


def test_kaplan_meier_against_a_hand_computed_example():
    # Solved at 200, 400, 400; censored at 600 and 1000 (unsolved at their last evaluation).
    # At 200: 5 at risk, 1 solves -> 4/5 = 0.8. At 400: 4 at risk, 2 solve -> 0.8 * 2/4
    # = 0.4. Censorings do not change the estimate: 0.4 at 600 and at 1000.
    times, solved = [200, 400, 400, 600, 1000], [True, True, True, False, False]
    curve = cstats.kaplan_meier(times, solved)
    np.testing.assert_allclose(curve.steps, [200, 400, 600, 1000], rtol=0, atol=0)
    np.testing.assert_allclose(curve.unsolved, [0.8, 0.4, 0.4, 0.4], rtol=1e-12, atol=0)
    # The first step with at most half unsolved.
    assert cstats.km_median(times, solved) == 400.0
    # SciPy called directly on the same numbers.
    sf = stats.ecdf(stats.CensoredData(uncensored=[200, 400, 400], right=[600, 1000])).sf
    np.testing.assert_allclose(curve.unsolved, sf.probabilities, rtol=1e-12, atol=0)


def test_kaplan_meier_censoring_before_events_lowers_the_risk_set():
    # Censored at 100; then 3 at risk at 300, 1 solves -> 2/3; 2 at risk at 500, 1 -> 1/3.
    curve = cstats.kaplan_meier([100, 300, 500, 800], [False, True, True, False])
    np.testing.assert_allclose(curve.unsolved, [1.0, 2 / 3, 1 / 3, 1 / 3], rtol=1e-12, atol=0)
    assert cstats.km_median([100, 300, 500, 800], [False, True, True, False]) == 500.0


def test_km_median_not_reached_and_empty():
    assert math.isnan(cstats.km_median([100, 900, 900], [True, False, False]))
    assert math.isnan(cstats.km_median([900, 900], [False, False]))
    empty = cstats.kaplan_meier([], [])
    assert empty.steps.shape == (0,) and empty.unsolved.shape == (0,)
    assert math.isnan(cstats.km_median([], []))


def test_logrank_against_scipy_and_a_hand_computed_value():
    # a solves at 2 and 4; b solves at 3 and is censored at 5. At each solve step,
    # expected solves of a = d n_a / n, variance d (n_a / n)(1 - n_a / n)(n - d) / (n - 1):
    #   t=2: n_a=2, n=4: E=1/2, V=1/4;  t=3: n_a=1, n=3: E=1/3, V=2/9;
    #   t=4: n_a=1, n=2: E=1/2, V=1/4.  O - E = 2 - 4/3 = 2/3, V = 13/18.
    result = cstats.logrank_test([2, 4], [True, True], [3, 5], [True, False])
    z = (2 / 3) / math.sqrt(13 / 18)
    assert result.note == ""
    np.testing.assert_allclose(result.statistic, z, rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.p, 2 * stats.norm.sf(z), rtol=1e-9, atol=0)
    np.testing.assert_allclose(result.p, 0.4328, rtol=0, atol=5e-5)  # the number by hand
    ref = stats.logrank(
        stats.CensoredData(uncensored=[2, 4]), stats.CensoredData(uncensored=[3], right=[5])
    )
    np.testing.assert_allclose([result.statistic, result.p], [ref.statistic, ref.pvalue],
                               rtol=1e-12, atol=0)  # fmt: skip


def test_logrank_undefined_cases_have_a_note():
    nothing = cstats.logrank_test([900, 900], [False, False], [900, 900, 900], [False] * 3)
    assert math.isnan(nothing.p) and "no seed solved in either row" in nothing.note
    together = cstats.logrank_test([500, 500], [True, True], [500, 500], [True, True])
    assert math.isnan(together.p) and "zero variance" in together.note
    empty = cstats.logrank_test([], [], [500], [True])
    assert math.isnan(empty.p) and "both sides" in empty.note


def test_fisher_against_scipy_and_a_hand_computed_value():
    # 3/5 solved against 0/5. Margins: 3 solved, 7 unsolved of 10. P(X = k solved in the
    # first row) = C(5, k) C(5, 3 - k) / C(10, 3): 10, 50, 50, 10 (/120) for k = 0..3.
    # Two-sided: the tables no likelier than the observed (k = 3): k = 0, 3 -> 20/120.
    result = cstats.fisher_test(3, 5, 0, 5)
    np.testing.assert_allclose(result.p, 1 / 6, rtol=1e-12, atol=0)
    ref = stats.fisher_exact([[3, 2], [0, 5]])
    np.testing.assert_allclose(result.p, ref.pvalue, rtol=1e-12, atol=0)
    assert result.odds_ratio == math.inf
    both_none = cstats.fisher_test(0, 5, 0, 4)
    assert both_none.p == 1.0 and both_none.note == ""
    assert math.isnan(cstats.fisher_test(0, 0, 1, 3).p)


@pytest.mark.parametrize(("n", "expected"), [(5, 3.35), (10, 1.95), (20, 1.29)])
def test_detectable_effect_at_holms_strictest_level_matches_the_literature(n, expected):
    # m = 17 comparisons: alpha = 0.05 / 17 = 0.00294, two-sided, 80 % power.
    d = cstats.detectable_effect(n, n, 0.05 / 17)
    np.testing.assert_allclose(d, expected, rtol=0, atol=0.05)
    # The power at d is 0.8, from the noncentral t directly.
    df, ncp = 2 * n - 2, d * math.sqrt(n / 2)
    critical = stats.t.ppf(1 - 0.05 / 17 / 2, df)
    power = stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp)
    np.testing.assert_allclose(power, 0.8, rtol=0, atol=1e-6)


def test_detectable_effect_other_cases():
    # Cohen's classic table: n = 20 per group, alpha = 0.05, 80 % power -> d = 0.91.
    np.testing.assert_allclose(cstats.detectable_effect(20, 20, 0.05), 0.91, rtol=0, atol=0.01)
    assert cstats.detectable_effect(3, 5, 0.05) > cstats.detectable_effect(5, 5, 0.05)
    assert math.isnan(cstats.detectable_effect(1, 5, 0.05))


# --------------------------------------------------------------------------------------
# The columns of the summary.
# --------------------------------------------------------------------------------------

THRESHOLD = 0.1  # baseline 0.2, solve fraction 0.5


def _run(variant, seed, solve_at):
    """A record solved at step ``solve_at`` (None: never, censored at 1000)."""
    if solve_at is None:
        history = [(250, 0.3), (500, 0.2), (1000, 0.15)]
    else:
        history = [(s, 0.3 if s < solve_at else 0.05) for s in (250, 500, 750, 1000)]
    return make_record(variant=variant, seed=seed, baseline=0.2, history=history,
                       final_loss=history[-1][1])  # fmt: skip


def _censored_records():
    solves = {
        "lstm": [1000, 750, None, None, None],
        "gru": [250, 250, 500, 500, 750],
        "rnn": [None] * 5,
    }
    records = [_run(v, s, at) for v, ats in solves.items() for s, at in enumerate(ats)]
    return solves, records


def _times(ats):
    return [1000 if at is None else at for at in ats], [at is not None for at in ats]


def test_summary_logrank_and_fisher_columns_are_scipys_holm_adjusted():
    solves, records = _censored_records()
    rows = compare.summarise(records, solve_fraction=0.5)
    by = {r["variant"]: r for r in rows}
    ref_t, ref_s = _times(solves["lstm"])
    raw = {}
    for v in ("gru", "rnn"):
        t, s = _times(solves[v])
        x = stats.CensoredData(uncensored=[a for a, b in zip(t, s) if b],
                               right=[a for a, b in zip(t, s) if not b])  # fmt: skip
        y = stats.CensoredData(uncensored=[1000, 750], right=[1000] * 3)
        raw[v] = stats.logrank(x, y).pvalue
        np.testing.assert_allclose(by[v]["logrank_p"], raw[v], rtol=1e-12, atol=0)
        fisher = stats.fisher_exact([[sum(s), 5 - sum(s)], [2, 3]]).pvalue
        np.testing.assert_allclose(by[v]["fisher_p"], fisher, rtol=1e-12, atol=0)
    adjusted = cstats.holm_adjust([raw["gru"], raw["rnn"]])
    np.testing.assert_allclose(
        [by["gru"]["logrank_p_holm"], by["rnn"]["logrank_p_holm"]], adjusted, rtol=1e-12, atol=0
    )
    assert by["gru"]["logrank_family_size"] == 2 and by["gru"]["fisher_family_size"] == 2
    assert by["gru"]["logrank_statistic"] > 0  # gru solves sooner than lstm
    # KM medians: gru 500 (3/5 solved by 500); lstm never falls to 1/2 (2/5 solve).
    assert by["gru"]["km_median_steps_to_solve"] == 500.0
    assert math.isnan(by["lstm"]["km_median_steps_to_solve"])
    assert by["lstm"]["test_note"] == "reference variant" and math.isnan(by["lstm"]["logrank_p"])
    text = compare.format_markdown(rows)
    assert "| log-rank p | log-rank p Holm | Fisher p | Fisher p Holm |" in text
    assert "| KM median steps to solve |" in text
    gru_line = next(line for line in text.splitlines() if line.startswith("| `gru`"))
    assert f"| {by['gru']['logrank_p']:.2g} | {by['gru']['logrank_p_holm']:.2g} |" in gru_line
    assert "over the 2 log-rank tests (log-rank p Holm)" in text


def test_solve_times_censor_unsolved_and_diverged_seeds_at_their_last_evaluation():
    recs = [
        _run("lstm", 0, 500),
        _run("lstm", 1, None),
        make_record(
            seed=2,
            final_loss=math.nan,
            status="diverged",
            baseline=0.2,
            history=[(250, 0.3), (400, math.nan)],
        ),  # fmt: skip
    ]
    times, solved = tables.solve_times(recs, THRESHOLD)
    np.testing.assert_array_equal(times, [500, 1000, 400])
    np.testing.assert_array_equal(solved, [True, False, False])


def test_nothing_solved_anywhere_is_noted_not_tested():
    records = [_run(v, s, None) for v in ("lstm", "gru") for s in range(3)]
    rows = compare.summarise(records, solve_fraction=0.5)
    gru = next(r for r in rows if r["variant"] == "gru")
    assert math.isnan(gru["logrank_p"]) and math.isnan(gru["logrank_p_holm"])
    assert gru["logrank_family_size"] == 0
    assert "no seed solved in either row: nothing to test" in gru["survival_note"]
    assert gru["fisher_p"] == 1.0  # 0/3 against 0/3
    text = compare.format_markdown(rows)
    assert "`gru`: no seed solved in either row: nothing to test (log-rank)" in text


def test_one_row_only_and_absent_reference():
    (only,) = compare.summarise([_run("gru", s, 500) for s in range(3)], solve_fraction=0.5)
    assert only["reference_row"] == "" and math.isnan(only["logrank_p"])
    assert only["survival_note"] == "no 'lstm' records" and math.isnan(only["detectable_g"])
    text = compare.format_markdown([only])
    assert "Power:" not in text  # nothing tested, no power statement
    (ref,) = compare.summarise([_run("lstm", s, 500) for s in range(3)], solve_fraction=0.5)
    assert ref["survival_note"] == "" and math.isnan(ref["fisher_p"])


def test_power_line_under_the_table_names_the_seed_counts():
    _, records = _censored_records()
    records += [_run("peephole", s, 500) for s in range(3)]
    rows = compare.summarise(records, solve_fraction=0.5)
    text = compare.format_markdown(rows)
    # Welch family: gru, peephole, rnn against lstm -> m = 3; fewest tested n = 3 vs 5.
    g = cstats.detectable_effect(3, 5, 0.05 / 3)
    assert (
        f"Power: at α = 0.05/3 = {0.05 / 3:.2g}, the strictest level of Holm's procedure "
        f"over this table's 3 Welch tests, a two-sided two-sample t-test of n = 3 (the fewest "
        f"tested) vs 5 (`lstm`) seeds detects g ≥ {g:.2f} with 80 % power"
    ) in text
    peephole = next(r for r in rows if r["variant"] == "peephole")
    np.testing.assert_allclose(peephole["detectable_g"], g, rtol=1e-12, atol=0)


def test_csv_has_the_censored_columns(tmp_path):
    _, records = _censored_records()
    rows = compare.summarise(records, solve_fraction=0.5)
    compare.write_csv(rows, tmp_path / "summary.csv")
    header = (tmp_path / "summary.csv").read_text().splitlines()[0].split(",")
    assert {
        "km_median_steps_to_solve", "logrank_p_vs_lstm", "logrank_p_holm_vs_lstm",
        "fisher_p_vs_lstm", "fisher_p_holm_vs_lstm", "logrank_family_size",
        "fisher_family_size", "detectable_g", "survival_note", "label", "settings",
    } <= set(header)  # fmt: skip
    assert tables.CSV_FIELDS.index("logrank_p") > tables.CSV_FIELDS.index("welch_p")


def test_survival_plot_per_group(tmp_path):
    _, records = _censored_records()
    paths = compare.plot_survival(records, tmp_path / "survival_", solve_fraction=0.5)
    assert [Path(p).name for p in paths] == ["survival_adding_T100.png"]
    data = Path(paths[0]).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    # Many rows: one panel each.
    many = [_run(f"v{i:02d}", s, 250 * (1 + i % 4)) for i in range(9) for s in range(2)]
    (path,) = compare.plot_survival(many, tmp_path / "many_", solve_fraction=0.5)
    assert Path(path).stat().st_size > 10_000
