"""Tests for lstmx.compare and the experiments.compare command line.

Tolerances: statistics computed here by hand are compared with rtol=1e-12; Welch's t and
df against SciPy with rtol=1e-10 and the p-values with rtol=1e-9 (over 20,000 random
(t, df) pairs the worst relative difference seen was 3e-11); p-values also get atol=1e-15
for the ones near 1.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from _cli import run_module
from scipy import special, stats

from experiments.compare import report as compare

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
            "steps": final_step,
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
    assert math.isnan(row["welch_p"])


def test_single_seed_has_nan_std_and_no_test():
    records = [make_record(seed=0, final_loss=0.1), make_record(variant="gru", final_loss=0.2)]
    rows = compare.summarise(records)
    gru = row_for(rows, "gru")
    np.testing.assert_allclose(gru["loss_mean"], 0.2, rtol=1e-12)
    assert math.isnan(gru["loss_std"])
    assert math.isnan(gru["welch_p"])
    assert "n >= 2" in gru["test_note"]


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
    assert "| 0/3 (0%) | — |" in compare.format_markdown([row])


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
# Welch's t-test against SciPy.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.1, 0.2, 0.3, 0.6], [0.15, 0.25, 0.2, 0.3]),
        ([1.0, 2.0], [1.5, 2.5, 3.5, 0.5, 2.0, 9.0]),  # Unequal n and variance.
        ([0.01, 0.012, 0.011], [0.17, 0.16, 0.165, 0.168, 0.171]),  # Tiny p.
        ([5.0, 5.0, 5.0], [4.0, 6.0, 5.5]),  # Zero variance on one side.
        ([0.2, 0.21, 0.19, 0.2], [0.2, 0.22, 0.18, 0.2]),  # t = 0, p = 1.
        (list(np.linspace(0.0, 1.0, 30)), list(np.linspace(0.05, 1.2, 7) ** 2)),
    ],
)
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # SciPy, on [5, 5, 5].
def test_welch_matches_scipy(a, b):
    ours = compare.welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert ours.note == ""
    np.testing.assert_allclose(ours.t, ref.statistic, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(ours.df, ref.df, rtol=1e-10)
    np.testing.assert_allclose(ours.p, ref.pvalue, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("df", [0.7, 1.0, 2.5, 3.0, 9.3, 57.0, 1234.5])
@pytest.mark.parametrize("t", [0.0, 0.01, 0.5, -1.3, 2.0, 4.5, 12.0, -40.0])
def test_student_t_tail_matches_scipy(t, df):
    expected = 2.0 * stats.t.sf(abs(t), df)
    np.testing.assert_allclose(
        compare.student_t_two_sided_p(t, df), expected, rtol=1e-9, atol=1e-15
    )


def test_betainc_matches_scipy_on_a_grid():
    for a in [0.3, 0.5, 1.0, 4.5, 30.0]:
        for b in [0.5, 1.0, 2.0, 7.0]:
            for x in [1e-6, 0.01, 0.3, 0.5, 0.77, 0.999]:
                np.testing.assert_allclose(
                    compare._betainc(a, b, x, 1.0 - x), special.betainc(a, b, x), rtol=1e-11
                )


def test_student_t_edge_cases():
    assert compare.student_t_two_sided_p(math.inf, 3.0) == 0.0
    assert math.isnan(compare.student_t_two_sided_p(1.0, 0.0))
    assert math.isnan(compare.student_t_two_sided_p(math.nan, 3.0))


def test_welch_degenerate_cases_return_nan_with_a_note():
    one = compare.welch_t_test([0.1], [0.1, 0.2, 0.3])
    assert math.isnan(one.p) and "n >= 2" in one.note
    flat = compare.welch_t_test([0.1, 0.1], [0.2, 0.2, 0.2])
    assert math.isnan(flat.t) and math.isnan(flat.p) and "zero variance" in flat.note


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
    np.testing.assert_allclose(gru_row["welch_t"], ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(gru_row["welch_p"], ref.pvalue, rtol=1e-9)
    lonely = row_for(rows, "gru", length=200)
    assert math.isnan(lonely["welch_p"])
    assert "no 'lstm' records" in lonely["test_note"]


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
    assert "| variant | seeds | diverged | final loss mean ± std |" in text
    # lstm copy losses: mean 0.16, std 0.01; accuracy 0.4 ± 0.2.
    assert "| `lstm` | 3 | 0 | 0.16 ± 0.01 | 0.16 | 0.400 ± 0.200 | 0/3 (0%) | — |" in text
    # gru has no lstm in the adding group: the test cells are "—" and a note says why.
    gru_line = next(line for line in text.splitlines() if line.startswith("| `gru`"))
    assert gru_line.endswith("| — | — |")
    assert "`gru`: no 'lstm' records" in text


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
    peephole = next(r for r in table if r["variant"] == "peephole")
    np.testing.assert_allclose(float(peephole["loss_mean"]), 0.11, rtol=1e-12)
    np.testing.assert_allclose(
        float(peephole["welch_p_vs_lstm"]),
        stats.ttest_ind([0.01, 0.02, 0.3], [0.15, 0.17, 0.16], equal_var=False).pvalue,
        rtol=1e-9,
    )
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
    ]:
        assert (out / name).stat().st_size > 0, name
    assert "## copy, T=100" in result.stdout
    assert "≤ 0.2 × baseline" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(bad) in warnings[0]
    assert bad.exists()
    summary = (out / "summary.md").read_text()
    assert "## Skipped records" in summary and "![learning_curves_copy_T100]" in summary
    assert "solve_rate_loss_le_0.2x_baseline" in (out / "summary.csv").read_text()


def test_cli_defaults_output_dir_to_workdir(tmp_path):
    write_record(tmp_path, make_record())
    result = run_cli(f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "summary.md").exists() and (tmp_path / "summary.csv").exists()
    assert (tmp_path / "learning_curves_adding_T100.png").exists()


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
