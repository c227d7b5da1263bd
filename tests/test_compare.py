"""Tests for experiments.compare (loading, stats, tables, plots, report) and its command line.

Tolerances: statistics computed here by hand or by the same SciPy call are compared with
rtol=1e-12; Welch's t and df against their closed forms with rtol=1e-10 (different
summation order); the Wilson interval against its formula with rtol=1e-9 (SciPy's normal
quantile against ours); Hedges' correction against its 1 - 3/(4 df - 1) approximation
with rtol=2e-3 (the approximation's own error at df = 2).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import chex
import numpy as np
import pytest
from _cli import run_module
from scipy import stats

from experiments.compare import plots
from experiments.compare import report as compare
from experiments.compare import stats as cstats

REPO_ROOT = Path(__file__).resolve().parents[1]
ADDING_BASELINE = 1.0 / 6.0


def copy_baseline(length: int) -> float:
    return 10.0 * math.log(8.0) / (length + 20)


def make_record(
    *,
    task: str = "adding",
    length: int = 100,
    variant: str = "lstm",
    seed: int = 0,
    final_loss: float = 0.1,
    accuracy: float | None = 0.5,
    history: list[tuple[int, float]] | None = None,
    status: str = "finished",
    baseline: float | None = None,
    num_params: int = 67201,
    steps_per_second: float = 25.0,
) -> dict:
    """A valid ``lstmx.record/1`` dict; the history defaults to two points ending at the final."""
    if baseline is None:
        baseline = ADDING_BASELINE if task == "adding" else copy_baseline(length)
    if history is None:
        history = [(100, baseline), (1000, final_loss)]
    final_step = history[-1][0] if history else 1000
    return {
        "format": "lstmx.record/1",
        "task": task,
        "length": length,
        "variant": variant,
        "seed": seed,
        "config": {
            "task": task,
            "variant": variant,
            "length": length,
            "steps": 1000,  # the same run however long its history (settings split rows)
            "batch_size": 128,
            "hidden_size": 128,
            "num_layers": 1,
            "optimizer": "rmsprop",
            "learning_rate": 1e-3,
            "clip": 1.0,
            "clip_mode": "global_norm",
            "init": "default",
            "eval_every": 100,
            "eval_batch_size": 1000,
            "seeds": [seed],
        },
        "baseline": baseline,
        "num_params": num_params,
        "history": [
            {"step": s, "loss": v, "accuracy": accuracy, "train_loss": v, "wall_time": 0.1 * s}
            for s, v in history
        ],
        "final": {"step": final_step, "loss": final_loss, "accuracy": accuracy, "train_loss": 0.2},
        "status": status,
        "diverged_step": 500 if status == "diverged" else None,
        "steps_per_second": steps_per_second,
        "wall_time": 60.0,
        "versions": {"jax": "0.10"},
    }


def write_record(workdir: Path, rec: dict, subdir: str = "") -> Path:
    folder = workdir / "records" / subdir
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{rec['task']}_T{rec['length']}_{rec['variant']}_seed{rec['seed']}.json"
    path = folder / name
    path.write_text(json.dumps(rec))
    return path


def row_for(rows, variant, task="adding", length=100):
    (row,) = [r for r in rows if (r["task"], r["length"], r["variant"]) == (task, length, variant)]
    return row


# --------------------------------------------------------------------------------------
# Loading.
# --------------------------------------------------------------------------------------


def test_load_records_reads_recursively_in_sorted_order(tmp_path):
    write_record(tmp_path, make_record(seed=1))
    write_record(tmp_path, make_record(seed=0), subdir="run2/nested")
    (tmp_path / "records" / "notes.txt").write_text("not a record")
    records, problems = compare.load_records(tmp_path)
    assert problems == []
    assert len(records) == 2
    assert [Path(r["_path"]).name for r in records] == [
        "adding_T100_lstm_seed1.json",
        "adding_T100_lstm_seed0.json",
    ]


def test_load_records_without_records_dir_is_empty(tmp_path):
    assert compare.load_records(tmp_path) == ([], [])


@pytest.mark.parametrize(
    ("corrupt", "expected"),
    [
        (lambda r: "{not json", "not valid JSON"),
        (lambda r: json.dumps({k: v for k, v in r.items() if k != "final"}), "'final'"),
        (lambda r: json.dumps({**r, "length": "100"}), "'length'"),
        (lambda r: json.dumps({**r, "seed": True}), "'seed'"),
        (lambda r: json.dumps({**r, "history": {"step": 1}}), "'history'"),
        (lambda r: json.dumps({**r, "history": [{"step": 1}]}), "history[0]"),
        (lambda r: json.dumps({**r, "final": {"step": 1, "loss": "low"}}), "final.loss"),
        (lambda r: json.dumps({**r, "status": "done"}), "'status'"),
        (lambda r: json.dumps({**r, "baseline": -1.0}), "'baseline'"),
        (lambda r: json.dumps({**r, "format": "other/2"}), "format"),
        (lambda r: json.dumps({**r, "task": "../etc"}), "'task'"),
        (lambda r: json.dumps([r]), "JSON object"),
    ],
)
def test_corrupt_records_are_reported_skipped_and_kept(tmp_path, corrupt, expected):
    good = write_record(tmp_path, make_record(seed=0))
    bad = tmp_path / "records" / "adding_T100_lstm_seed1.json"
    content = corrupt(make_record(seed=1))
    bad.write_text(content)
    records, problems = compare.load_records(tmp_path)
    assert [r["_path"] for r in records] == [str(good)]
    assert len(problems) == 1
    assert problems[0].startswith(str(bad))
    assert expected in problems[0]
    assert bad.read_text() == content  # Never deleted or rewritten.


def test_duplicate_record_is_reported_and_skipped(tmp_path):
    first = write_record(tmp_path, make_record(final_loss=0.1))
    second = write_record(tmp_path, make_record(final_loss=0.2), subdir="zz")
    records, problems = compare.load_records(tmp_path)
    assert [r["_path"] for r in records] == [str(first)]
    assert len(problems) == 1
    assert problems[0].startswith(str(second))
    assert "duplicate" in problems[0]


def test_non_finite_losses_and_nulls_load(tmp_path):
    rec = make_record(final_loss=float("nan"), accuracy=None, status="diverged")
    rec["history"][-1]["loss"] = None
    write_record(tmp_path, rec)
    records, problems = compare.load_records(tmp_path)
    assert problems == []
    assert len(records) == 1


# --------------------------------------------------------------------------------------
# Statistics.
# --------------------------------------------------------------------------------------


def test_summary_statistics_by_hand():
    losses = [0.1, 0.2, 0.3, 0.6]
    accs = [0.5, 0.7, 0.9, 0.3]
    records = [
        make_record(seed=s, final_loss=v, accuracy=a, num_params=1234, steps_per_second=sp)
        for s, (v, a, sp) in enumerate(zip(losses, accs, [10.0, 30.0, 20.0, 40.0]))
    ]
    (row,) = compare.summarise(records)
    assert (row["n_seeds"], row["n_diverged"], row["n_finite"]) == (4, 0, 4)
    np.testing.assert_allclose(row["loss_mean"], 0.3, rtol=1e-12)
    # Deviations from 0.3: -0.2, -0.1, 0, 0.3 -> squares sum 0.14, ddof=1 -> 0.14 / 3.
    np.testing.assert_allclose(row["loss_std"], math.sqrt(0.14 / 3), rtol=1e-12)
    np.testing.assert_allclose(row["loss_median"], 0.25, rtol=1e-12)
    np.testing.assert_allclose(row["accuracy_mean"], 0.6, rtol=1e-12)
    np.testing.assert_allclose(row["accuracy_std"], math.sqrt(0.2 / 3), rtol=1e-12)
    np.testing.assert_allclose(row["steps_per_second"], 25.0, rtol=1e-12)
    np.testing.assert_allclose(row["baseline"], ADDING_BASELINE, rtol=1e-12)
    assert row["num_params"] == 1234
    assert row["test_note"] == "reference variant"
    assert math.isnan(row["welch_p"]) and math.isnan(row["hedges_g"])
    assert math.isnan(row["welch_p_holm"]) and row["holm_family_size"] == 0
    ci = cstats.bootstrap_mean_ci(losses)
    assert (row["loss_ci_low"], row["loss_ci_high"]) == (ci.low, ci.high)
    assert row["loss_ci_low"] < 0.3 < row["loss_ci_high"]
    # Nothing solved (threshold 1/60): Wilson interval of 0/4 is [0, z^2 / (4 + z^2)].
    z2 = stats.norm.ppf(0.975) ** 2
    np.testing.assert_allclose(
        [row["solve_ci_low"], row["solve_ci_high"]], [0.0, z2 / (4 + z2)], rtol=1e-9, atol=1e-12
    )


def test_single_seed_has_nan_std_and_no_test():
    records = [make_record(seed=0, final_loss=0.1), make_record(variant="gru", final_loss=0.2)]
    rows = compare.summarise(records)
    gru = row_for(rows, "gru")
    np.testing.assert_allclose(gru["loss_mean"], 0.2, rtol=1e-12)
    assert math.isnan(gru["loss_std"])
    assert math.isnan(gru["loss_ci_low"]) and math.isnan(gru["loss_ci_high"])
    assert math.isnan(gru["welch_p"]) and math.isnan(gru["hedges_g"])
    assert math.isnan(gru["welch_p_holm"]) and gru["holm_family_size"] == 0
    assert "n >= 2" in gru["test_note"]
    # Wilson is defined at n = 1: 0/1 solved gives [0, z^2 / (1 + z^2)].
    assert gru["solve_ci_low"] == 0.0 and 0.0 < gru["solve_ci_high"] < 1.0
    text = compare.format_markdown(rows)
    assert "no comparison against `lstm` could be tested" in text
    gru_line = next(line for line in text.splitlines() if line.startswith("| `gru`"))
    assert "| 0.2 ± — | — |" in gru_line


# SciPy warns on a constant sample ([0.05] * 3 here).
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")
def test_zero_variance_groups():
    records = [make_record(seed=s, final_loss=0.05) for s in range(3)]
    records += [make_record(variant="gru", seed=s, final_loss=0.05) for s in range(3)]
    records += [make_record(variant="rnn", seed=s, final_loss=0.01 * (s + 1)) for s in range(3)]
    rows = compare.summarise(records)
    lstm, gru, rnn = (row_for(rows, v) for v in ("lstm", "gru", "rnn"))
    assert (lstm["loss_ci_low"], lstm["loss_ci_high"]) == (0.05, 0.05)
    assert lstm["loss_std"] == 0.0
    assert math.isnan(gru["welch_p"]) and math.isnan(gru["hedges_g"])
    assert "zero variance" in gru["test_note"]
    # rnn against a constant lstm: defined; the family has this one test, so no change.
    assert rnn["test_note"] == "" and rnn["holm_family_size"] == 1
    np.testing.assert_allclose(rnn["welch_p_holm"], rnn["welch_p"], rtol=0, atol=0)
    ref = stats.ttest_ind([0.01, 0.02, 0.03], [0.05] * 3, equal_var=False)
    np.testing.assert_allclose(rnn["welch_p"], ref.pvalue, rtol=1e-12, atol=0)


def test_solve_rate_and_steps_to_solve():
    # baseline 0.2 and fraction 0.5 give the exactly representable threshold 0.1.
    common = {"baseline": 0.2, "task": "adding"}
    records = [
        make_record(
            seed=0, final_loss=0.05, history=[(100, 0.3), (200, 0.1), (300, 0.05)], **common
        ),
        make_record(
            seed=1, final_loss=0.02, history=[(100, 0.3), (200, 0.2), (400, 0.02)], **common
        ),
        # Dipped below the threshold, but the final loss decides: unsolved.
        make_record(seed=2, final_loss=0.15, history=[(100, 0.05), (200, 0.15)], **common),
        make_record(seed=3, final_loss=0.1 + 1e-9, **common),
    ]
    (row,) = compare.summarise(records, solve_fraction=0.5)
    np.testing.assert_allclose(row["solve_threshold"], 0.1, rtol=1e-12)
    assert row["n_solved"] == 2
    np.testing.assert_allclose(row["solve_rate"], 0.5, rtol=1e-12)
    # First steps at or below 0.1 (inclusive): 200 and 400.
    np.testing.assert_allclose(row["steps_to_solve_median"], 300.0, rtol=1e-12)


def test_nothing_solved_gives_nan_steps():
    (row,) = compare.summarise([make_record(seed=s, final_loss=0.15) for s in range(3)])
    assert row["n_solved"] == 0
    assert math.isnan(row["steps_to_solve_median"])
    assert "| 0/3 (0%, 0–56%) | — |" in compare.format_markdown([row])


def test_diverged_seeds_are_excluded_and_unsolved():
    records = [
        make_record(seed=0, final_loss=0.001),
        make_record(seed=1, final_loss=0.003),
        make_record(seed=2, final_loss=float("nan"), status="diverged"),
        # Diverged by status although its last loss is finite and tiny.
        make_record(seed=3, final_loss=1e-6, status="diverged"),
        # Status says finished, but the loss is infinite: diverged all the same.
        make_record(seed=4, final_loss=float("inf")),
    ]
    (row,) = compare.summarise(records)
    assert (row["n_seeds"], row["n_diverged"], row["n_finite"]) == (5, 3, 2)
    np.testing.assert_allclose(row["loss_mean"], 0.002, rtol=1e-12)
    assert row["n_solved"] == 2
    np.testing.assert_allclose(row["solve_rate"], 0.4, rtol=1e-12)


def test_all_seeds_diverged():
    records = [make_record(seed=s, final_loss=float("nan"), status="diverged") for s in range(2)]
    (row,) = compare.summarise(records)
    assert row["n_diverged"] == 2
    assert math.isnan(row["loss_mean"]) and math.isnan(row["loss_median"])
    assert row["solve_rate"] == 0.0


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_summarise_rejects_bad_solve_fraction(fraction):
    with pytest.raises(ValueError, match="solve_fraction"):
        compare.summarise([make_record()], solve_fraction=fraction)


# --------------------------------------------------------------------------------------
# The statistics of experiments.compare.stats.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.1, 0.2, 0.3, 0.6], [0.15, 0.25, 0.2, 0.3]),
        ([1.0, 2.0], [1.5, 2.5, 3.5, 0.5, 2.0, 9.0]),  # Unequal n and variance.
        ([0.01, 0.012, 0.011], [0.17, 0.16, 0.165, 0.168, 0.171]),  # Tiny p.
        ([5.0, 5.0, 5.0], [4.0, 6.0, 5.5]),  # Zero variance on one side.
        ([0.2, 0.21, 0.19, 0.2], [0.2, 0.22, 0.18, 0.2]),  # t = 0, p = 1.
    ],
)
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # SciPy, [5, 5, 5]
def test_welch_is_scipys_and_matches_the_formula(a, b):
    ours = cstats.welch_test(a, b)
    assert ours.note == ""
    ref = stats.ttest_ind(a, b, equal_var=False)
    np.testing.assert_allclose(ours.p, ref.pvalue, rtol=1e-12, atol=0)
    # t and the Welch-Satterthwaite df from their definitions.
    a, b = np.asarray(a), np.asarray(b)
    va, vb = np.var(a, ddof=1) / a.size, np.var(b, ddof=1) / b.size
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    np.testing.assert_allclose(ours.t, t, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(ours.df, df, rtol=1e-10, atol=0)


def test_welch_degenerate_cases_return_nan_with_a_note():
    one = cstats.welch_test([0.1], [0.1, 0.2, 0.3])
    assert math.isnan(one.p) and "n >= 2" in one.note
    flat = cstats.welch_test([0.1, 0.1], [0.2, 0.2, 0.2])
    assert math.isnan(flat.t) and math.isnan(flat.p) and "zero variance" in flat.note


def test_no_hand_written_student_t_is_left():
    source = (REPO_ROOT / "experiments" / "compare").rglob("*.py")
    text = "\n".join(path.read_text() for path in source)
    for name in ("betacf", "betainc", "student_t_two_sided_p", "lgamma(a + b)"):
        assert name not in text


def test_holm_against_a_hand_worked_example():
    # m = 4. Sorted: 0.005, 0.01, 0.03, 0.04 -> times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04;
    # running maximum: 0.02, 0.03, 0.06, 0.06. At alpha = 0.05 Holm rejects the two
    # smallest and stops at 0.03 (0.03 > 0.05 / 2), as the step-down procedure does.
    adjusted = cstats.holm_adjust([0.01, 0.04, 0.03, 0.005])
    chex.assert_trees_all_close(adjusted, np.array([0.03, 0.06, 0.06, 0.02]), rtol=1e-12, atol=0)
    assert list(adjusted <= 0.05) == [True, False, False, True]


def test_holm_caps_at_one_skips_nan_and_keeps_a_single_test():
    # NaN is not in the family: m = 3. Sorted 0.2, 0.4, 0.5 -> 0.6, 0.8, 0.5 -> max 0.6, 0.8, 0.8.
    adjusted = cstats.holm_adjust([0.4, math.nan, 0.2, 0.5])
    chex.assert_trees_all_close(adjusted, np.array([0.8, math.nan, 0.6, 0.8]), rtol=1e-12, atol=0)
    chex.assert_trees_all_close(cstats.holm_adjust([0.7, 0.9]), np.ones(2), rtol=0, atol=0)
    chex.assert_trees_all_close(cstats.holm_adjust([0.03]), np.array([0.03]), rtol=0, atol=0)
    assert cstats.holm_adjust([]).shape == (0,)
    assert np.isnan(cstats.holm_adjust([math.nan])).all()


def test_hedges_g_against_a_hand_computed_value():
    # a = [1, 2, 3]: mean 2, s^2 = 1. b = [2, 4, 6, 8]: mean 5, s^2 = 20/3.
    # Pooled s^2 = (2 * 1 + 3 * 20/3) / 5 = 4.4; d = (2 - 5) / sqrt(4.4).
    # J(5) = Gamma(5/2) / (sqrt(5/2) Gamma(2)) = (3/4) sqrt(pi) / sqrt(2.5).
    g, note = cstats.hedges_g([1.0, 2.0, 3.0], [2.0, 4.0, 6.0, 8.0])
    expected = -3.0 / math.sqrt(4.4) * 0.75 * math.sqrt(math.pi) / math.sqrt(2.5)
    assert note == ""
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=0)
    np.testing.assert_allclose(expected, -1.2024, rtol=0, atol=5e-5)  # the number by hand
    g_reverse, _ = cstats.hedges_g([2.0, 4.0, 6.0, 8.0], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(g_reverse, -expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("df", [5, 10, 40])
def test_hedges_correction_is_close_to_the_usual_approximation(df):
    np.testing.assert_allclose(
        cstats.hedges_correction(df), 1.0 - 3.0 / (4.0 * df - 1.0), rtol=2e-3, atol=0
    )


def test_hedges_correction_exact_values():
    # J(2) = Gamma(1) / (1 * Gamma(1/2)) = 1 / sqrt(pi); J(3) = Gamma(3/2) / sqrt(3/2).
    np.testing.assert_allclose(
        cstats.hedges_correction(2), 1 / math.sqrt(math.pi), rtol=1e-12, atol=0
    )
    np.testing.assert_allclose(
        cstats.hedges_correction(3), 0.5 * math.sqrt(math.pi) / math.sqrt(1.5), rtol=1e-12, atol=0
    )


def test_hedges_g_degenerate_cases():
    g, note = cstats.hedges_g([0.1], [0.2, 0.3])
    assert math.isnan(g) and "n >= 2" in note
    g, note = cstats.hedges_g([0.1, 0.1], [0.2, 0.2])
    assert math.isnan(g) and "zero variance" in note
    g, note = cstats.hedges_g([0.1, 0.1], [0.2, 0.3])  # One side constant: defined.
    assert note == "" and g < 0


def test_bootstrap_ci_is_scipys_bca_with_a_fixed_seed():
    x = [0.1, 0.2, 0.3, 0.6, 0.25]
    ci = cstats.bootstrap_mean_ci(x)
    assert ci.note == "" and cstats.BOOTSTRAP_METHOD == "BCa"
    again = cstats.bootstrap_mean_ci(x)
    assert (ci.low, ci.high) == (again.low, again.high)  # Deterministic.
    ref = stats.bootstrap(
        (np.asarray(x),), np.mean, n_resamples=9999, confidence_level=0.95, method="BCa",
        random_state=np.random.default_rng(0),
    ).confidence_interval  # fmt: skip
    np.testing.assert_allclose([ci.low, ci.high], [ref.low, ref.high], rtol=1e-12, atol=0)
    assert min(x) <= ci.low < np.mean(x) < ci.high <= max(x)
    percentile = cstats.bootstrap_mean_ci(x, method="percentile")
    assert (percentile.low, percentile.high) != (ci.low, ci.high)


def test_bootstrap_ci_degenerate_cases():
    one = cstats.bootstrap_mean_ci([0.3])
    assert math.isnan(one.low) and math.isnan(one.high) and "n >= 2" in one.note
    flat = cstats.bootstrap_mean_ci([0.2, 0.2, 0.2])
    assert (flat.low, flat.high) == (0.2, 0.2) and "equal" in flat.note


@pytest.mark.parametrize(("k", "n"), [(0, 5), (2, 3), (5, 5), (1, 1), (7, 20)])
def test_wilson_interval_matches_the_formula(k, n):
    # Wilson (1927): (k + z^2/2) / (n + z^2) -+ z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4).
    z = stats.norm.ppf(0.975)
    centre = (k + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(k * (n - k) / n + z * z / 4)
    ci = cstats.wilson_ci(k, n)
    np.testing.assert_allclose(
        [ci.low, ci.high], [centre - half, centre + half], rtol=1e-9, atol=1e-12
    )
    assert math.isnan(cstats.wilson_ci(0, 0).low)


def test_summary_tests_each_variant_against_lstm_in_its_own_group():
    lstm = [0.1, 0.12, 0.09, 0.11]
    gru = [0.05, 0.07, 0.06]
    records = [make_record(seed=s, final_loss=v) for s, v in enumerate(lstm)]
    records += [make_record(variant="gru", seed=s, final_loss=v) for s, v in enumerate(gru)]
    # The same variant at another length, without an lstm to compare with.
    records += [make_record(variant="gru", length=200, seed=s, final_loss=0.1) for s in range(2)]
    # A diverged gru seed must not enter the test.
    records.append(make_record(variant="gru", seed=9, final_loss=float("nan"), status="diverged"))
    rows = compare.summarise(records)
    assert [(r["length"], r["variant"]) for r in rows] == [
        (100, "lstm"),
        (100, "gru"),
        (200, "gru"),
    ]
    ref = stats.ttest_ind(gru, lstm, equal_var=False)
    gru_row = row_for(rows, "gru")
    np.testing.assert_allclose(gru_row["welch_t"], ref.statistic, rtol=1e-12, atol=0)
    np.testing.assert_allclose(gru_row["welch_p"], ref.pvalue, rtol=1e-12, atol=0)
    np.testing.assert_allclose(gru_row["welch_p_holm"], ref.pvalue, rtol=1e-12, atol=0)
    g, _ = cstats.hedges_g(gru, lstm)
    np.testing.assert_allclose(gru_row["hedges_g"], g, rtol=1e-12, atol=0)
    assert gru_row["hedges_g"] < 0  # gru has the lower loss
    lonely = row_for(rows, "gru", length=200)
    assert math.isnan(lonely["welch_p"])
    assert "no 'lstm' records" in lonely["test_note"]


def _family_records():
    """lstm and three variants at adding T=100, four seeds each."""
    losses = {
        "lstm": [0.10, 0.12, 0.09, 0.11],
        "gru": [0.05, 0.07, 0.06, 0.05],
        "peephole": [0.10, 0.13, 0.08, 0.12],
        "rnn": [0.16, 0.17, 0.15, 0.165],
    }
    return losses, [
        make_record(variant=v, seed=s, final_loss=x)
        for v, values in losses.items()
        for s, x in enumerate(values)
    ]


def test_holm_is_applied_over_the_groups_comparisons():
    losses, records = _family_records()
    rows = compare.summarise(records)
    others = ["gru", "peephole", "rnn"]
    raw = [stats.ttest_ind(losses[v], losses["lstm"], equal_var=False).pvalue for v in others]
    expected = cstats.holm_adjust(raw)
    for v, p, p_holm in zip(others, raw, expected):
        row = row_for(rows, v)
        assert row["holm_family_size"] == 3
        np.testing.assert_allclose(row["welch_p"], p, rtol=1e-12, atol=0)
        np.testing.assert_allclose(row["welch_p_holm"], p_holm, rtol=1e-12, atol=0)
        assert row["welch_p_holm"] >= row["welch_p"]
    smallest = int(np.argmin(raw))  # The smallest p is multiplied by m = 3.
    np.testing.assert_allclose(expected[smallest], 3 * raw[smallest], rtol=1e-12, atol=0)
    text = compare.format_markdown(rows)
    assert "Holm–Bonferroni correction over the 3 comparisons against `lstm`" in text


def test_another_reference_variant():
    losses, records = _family_records()
    rows = compare.summarise(records, reference="gru")
    assert [r["variant"] for r in rows] == ["gru", "lstm", "peephole", "rnn"]
    assert {r["reference"] for r in rows} == {"gru"}
    lstm = row_for(rows, "lstm")
    ref = stats.ttest_ind(losses["lstm"], losses["gru"], equal_var=False)
    np.testing.assert_allclose(lstm["welch_p"], ref.pvalue, rtol=1e-12, atol=0)
    assert lstm["hedges_g"] > 0
    assert row_for(rows, "gru")["test_note"] == "reference variant"
    assert "| Hedges' g vs gru | t vs gru | p vs gru | p Holm |" in compare.format_markdown(rows)


# --------------------------------------------------------------------------------------
# Markdown and CSV.
# --------------------------------------------------------------------------------------


def _two_group_records():
    records = [
        make_record(task="copy", length=100, variant=v, seed=s, final_loss=loss, accuracy=acc)
        for v, losses in [("lstm", [0.15, 0.17, 0.16]), ("peephole", [0.01, 0.02, 0.3])]
        for s, (loss, acc) in enumerate(zip(losses, [0.2, 0.4, 0.6]))
    ]
    records += [make_record(variant="gru", seed=s, final_loss=0.01 * (s + 1)) for s in range(2)]
    return records


def test_markdown_states_baseline_threshold_and_test():
    rows = compare.summarise(_two_group_records(), solve_fraction=0.1)
    text = compare.format_markdown(rows, 0.1)
    assert "## adding, T=100" in text and "## copy, T=100" in text
    assert f"Memoryless baseline loss {copy_baseline(100):.4g}" in text
    assert f"≤ 0.1 × baseline = {0.1 * copy_baseline(100):.4g}" in text
    assert "Welch's unequal-variance t-test" in text and "two-sided" in text
    assert "| variant | seeds | diverged | final loss mean ± std | 95% CI of mean |" in text
    # lstm copy losses: mean 0.16, std 0.01; accuracy 0.4 ± 0.2; 0/3 solved, Wilson upper
    # end z^2 / (3 + z^2) = 56 %.
    ci = cstats.bootstrap_mean_ci([0.15, 0.17, 0.16])
    assert (
        f"| `lstm` | 3 | 0 | 0.16 ± 0.01 | [{ci.low:.4g}, {ci.high:.4g}] | 0.16 | 0.400 ± 0.200 "
        "| 0/3 (0%, 0–56%) | — |"
    ) in text
    # gru has no lstm in the adding group: the test cells are "—" and a note says why.
    gru_line = next(line for line in text.splitlines() if line.startswith("| `gru`"))
    assert gru_line.endswith("| — | — | — | — |")
    assert "`gru`: no 'lstm' records" in text
    # The line under each table names the corrections and the interval methods.
    corrections = [line for line in text.splitlines() if line.startswith("Corrections:")]
    assert len(corrections) == 2
    assert "Holm–Bonferroni correction over the 1 comparison against `lstm`" in corrections[1]
    assert "BCa bootstrap (9,999 resamples, seed 0)" in corrections[1]
    assert "Wilson score interval" in corrections[1] and "Hedges' g" in corrections[1]


def test_markdown_rejects_a_solve_fraction_the_rows_do_not_have():
    rows = compare.summarise(_two_group_records(), solve_fraction=0.1)
    with pytest.raises(ValueError, match="solve_fraction"):
        compare.format_markdown(rows, 0.2)


def test_csv_contents(tmp_path):
    rows = compare.summarise(_two_group_records(), solve_fraction=0.25)
    path = tmp_path / "summary.csv"
    compare.write_csv(rows, path)
    with open(path, newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 3
    header = list(table[0])
    assert header[:3] == ["task", "length", "variant"]
    assert "solve_rate_loss_le_0.25x_baseline" in header
    assert {"welch_t_vs_lstm", "welch_p_vs_lstm", "loss_std", "steps_per_second"} <= set(header)
    assert {"loss_ci_low", "loss_ci_high", "solve_ci_low", "solve_ci_high"} <= set(header)
    assert {"welch_p_holm_vs_lstm", "hedges_g_vs_lstm", "holm_family_size"} <= set(header)
    peephole = next(r for r in table if r["variant"] == "peephole")
    np.testing.assert_allclose(float(peephole["loss_mean"]), 0.11, rtol=1e-12)
    np.testing.assert_allclose(
        float(peephole["welch_p_vs_lstm"]),
        stats.ttest_ind([0.01, 0.02, 0.3], [0.15, 0.17, 0.16], equal_var=False).pvalue,
        rtol=1e-12,
        atol=0,
    )
    g, _ = cstats.hedges_g([0.01, 0.02, 0.3], [0.15, 0.17, 0.16])
    np.testing.assert_allclose(float(peephole["hedges_g_vs_lstm"]), g, rtol=1e-12, atol=0)
    assert peephole["reference"] == "lstm"
    assert peephole["solve_rate_loss_le_0.25x_baseline"] == repr(2 / 3)
    lstm = next(r for r in table if r["variant"] == "lstm" and r["task"] == "copy")
    assert lstm["welch_p_vs_lstm"] == ""  # Undefined values are empty cells.
    assert [p.name for p in tmp_path.iterdir()] == ["summary.csv"]  # No temporary left.


# --------------------------------------------------------------------------------------
# Plots.
# --------------------------------------------------------------------------------------


def test_plots_are_written_as_png_per_group(tmp_path):
    records = _two_group_records()
    # Enough seeds for the interquartile band, one diverged, and a longer history.
    records += [
        make_record(
            task="copy",
            variant="gru",
            seed=s,
            final_loss=0.01 / (s + 1),
            history=[(k * 100, 0.2 / (k * (s + 1))) for k in range(1, 11)],
        )
        for s in range(5)
    ]
    records.append(
        make_record(task="copy", variant="gru", seed=7, final_loss=math.nan, status="diverged")
    )
    paths = compare.plot_learning_curves(records, tmp_path / "learning_curves_", solve_fraction=0.1)
    assert [Path(p).name for p in paths] == [
        "learning_curves_adding_T100.png",
        "learning_curves_copy_T100.png",
    ]
    for p in paths:
        data = Path(p).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(p).name for p in paths)


def test_learning_curve_is_median_and_quartiles_per_step():
    recs = [
        make_record(seed=s, history=[(100, v), (200, v / 10)])
        for s, v in enumerate([0.1, 0.2, 0.3, 0.4, 0.5])
    ]
    recs[0]["history"].append({"step": 300, "loss": None})  # left out
    steps, median, q25, q75 = plots.learning_curve(recs)
    chex.assert_trees_all_close(
        (steps, median, q25, q75),
        (np.array([100.0, 200.0]), np.array([0.3, 0.03]), np.array([0.2, 0.02]),
         np.array([0.4, 0.04])),
        rtol=1e-12, atol=0,
    )  # fmt: skip


def test_forest_plot_per_group(tmp_path):
    records = _two_group_records()
    records.append(make_record(task="copy", variant="nig", final_loss=0.12))  # n = 1: no CI
    rows = compare.summarise(records)
    paths = compare.plot_forest(rows, tmp_path / "forest_")
    assert [Path(p).name for p in paths] == ["forest_adding_T100.png", "forest_copy_T100.png"]
    for p in paths:
        data = Path(p).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000


# --------------------------------------------------------------------------------------
# Command line, end to end.
# --------------------------------------------------------------------------------------


def run_cli(*args: str):
    return run_module("experiments.compare", *args, timeout=120)


def test_cli_end_to_end(tmp_path):
    for rec in _two_group_records():
        write_record(tmp_path, rec)
    bad = tmp_path / "records" / "copy_T100_lstm_seed9.json"
    bad.write_text("{truncated")
    out = tmp_path / "out"
    result = run_cli(f"--workdir={tmp_path}", f"--output_dir={out}", "--solve_fraction=0.2")
    assert result.returncode == 0, result.stderr
    for name in [
        "summary.md",
        "summary.csv",
        "learning_curves_copy_T100.png",
        "learning_curves_adding_T100.png",
        "forest_copy_T100.png",
        "forest_adding_T100.png",
    ]:
        assert (out / name).stat().st_size > 0, name
    assert "## copy, T=100" in result.stdout
    assert "| `peephole` | 3 |" in result.stdout  # The Markdown table is printed.
    assert "Corrections: Holm–Bonferroni" in result.stdout
    assert "≤ 0.2 × baseline" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(bad) in warnings[0]
    assert bad.exists()
    summary = (out / "summary.md").read_text()
    assert "## Skipped records" in summary and "![learning_curves_copy_T100]" in summary
    assert "![forest_copy_T100](forest_copy_T100.png)" in summary
    assert "solve_rate_loss_le_0.2x_baseline" in (out / "summary.csv").read_text()


def test_cli_defaults_output_dir_to_workdir(tmp_path):
    write_record(tmp_path, make_record())
    result = run_cli(f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "summary.md").exists() and (tmp_path / "summary.csv").exists()
    assert (tmp_path / "learning_curves_adding_T100.png").exists()


def test_cli_reference_flag(tmp_path):
    for rec in _family_records()[1]:
        write_record(tmp_path, rec)
    result = run_cli(f"--workdir={tmp_path}", "--reference=gru")
    assert result.returncode == 0, result.stderr
    assert "| Hedges' g vs gru |" in result.stdout
    assert "over the 3 comparisons against `gru`" in result.stdout
    assert "hedges_g_vs_gru" in (tmp_path / "summary.csv").read_text()
    missing = run_cli(f"--workdir={tmp_path}", "--reference=lstn")
    assert missing.returncode == 1
    assert (
        "--reference='lstn' has no records; the labels are: gru, lstm, peephole, rnn"
        in missing.stderr
    )
    assert "summary" not in missing.stdout


def _assert_one_line_error(result, needle):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]


def test_cli_missing_workdir(tmp_path):
    _assert_one_line_error(run_cli(f"--workdir={tmp_path / 'nope'}"), "--workdir")


@pytest.mark.parametrize("value", ["0", "1.5", "abc"])
def test_cli_bad_solve_fraction(tmp_path, value):
    write_record(tmp_path, make_record())
    _assert_one_line_error(
        run_cli(f"--workdir={tmp_path}", f"--solve_fraction={value}"), "solve_fraction"
    )
    assert not (tmp_path / "summary.md").exists()


def test_cli_without_valid_records(tmp_path):
    _assert_one_line_error(run_cli(f"--workdir={tmp_path}"), "no valid records")


def test_cli_empty_reference(tmp_path):
    write_record(tmp_path, make_record())
    _assert_one_line_error(run_cli(f"--workdir={tmp_path}", "--reference="), "reference")


def test_study_json_names_the_reference_and_bad_ones_are_refused(tmp_path):
    from experiments.compare import loading

    assert loading.study_reference(tmp_path) == "lstm"
    (tmp_path / "study.json").write_text('{"reference": "peephole"}')
    assert loading.study_reference(tmp_path) == "peephole"
    for bad in ("[1]", '{"reference": ""}', "{not json", '{"reference": 3}'):
        (tmp_path / "study.json").write_text(bad)
        with pytest.raises(ValueError, match="study.json"):
            loading.study_reference(tmp_path)


def test_cli_takes_the_reference_from_study_json_unless_flagged(tmp_path):
    study = Path(__file__).resolve().parents[1] / "docs" / "results" / "greff_copy_T100"
    result = run_module(
        "experiments.compare", f"--workdir={study}", f"--output_dir={tmp_path / 'a'}"
    )
    assert result.returncode == 0, result.stderr
    assert "Hedges' g vs peephole" in result.stdout
    result = run_module(
        "experiments.compare",
        f"--workdir={study}",
        f"--output_dir={tmp_path / 'b'}",
        "--reference=gru",
    )
    assert result.returncode == 0, result.stderr
    assert "Hedges' g vs gru" in result.stdout


def test_the_first_ten_rows_get_ten_different_hues():
    import colorsys

    from experiments.compare.plots import row_colors

    colours = list(row_colors([f"v{i}" for i in range(12)]).values())
    hues = [colorsys.rgb_to_hls(*c[:3]) for c in colours[:10]]
    assert len({c[:3] for c in colours[:10]}) == 10
    # lstm and gru, the first two rows of most groups, were two blues of one hue.
    assert abs(hues[0][0] - hues[1][0]) > 0.05
    assert colours[10] != colours[0]


def test_a_variant_keeps_its_colour_in_every_group_and_many_rows_get_panels(tmp_path):
    import matplotlib.image

    names = ["lstm", "gru", "cifg", "nfg", "nig", "nog", "rnn", "mgu"]
    history = [(k * 100, 0.2 / k) for k in range(1, 6)]
    records = [
        make_record(task="adding", length=length, variant=name, seed=seed, history=history)
        for length, members in ((100, names), (200, names[2:]))
        for name in members
        for seed in range(3)
    ]
    colours = plots.study_colors(records, "lstm")
    # The T=200 group lacks lstm and gru; by group order cifg would be its first colour.
    assert colours["lstm"] == plots.row_colors(["lstm"])["lstm"]
    assert colours["cifg"] != colours["lstm"]
    assert len({c[:3] for c in colours.values()}) == len(names)
    paths = plots.plot_learning_curves(records, tmp_path / "lc_", reference="lstm")
    wide, narrow = (matplotlib.image.imread(p).shape for p in paths)
    # 8 rows: 4 columns of small panels (3.1 in each at 120 dpi); 6 rows: one axis (7.5 in).
    assert wide[1] == round(4 * 3.1 * 120) and narrow[1] == round(7.5 * 120)
