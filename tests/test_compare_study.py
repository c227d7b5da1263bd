"""Tests for experiments.compare never mixing settings, for study workdirs and several workdirs.

Rows split by settings and named by what differs, notes on settings that differ between
labels, the fewer-than-3-seeds warning, the ambiguous reference, ``--workdir=A,B``, the
study layout (tuning cells in their own table, the picked value named) and the command
line's errors.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from _cli import run_module
from test_compare import make_record, write_record

from experiments.compare import loading
from experiments.compare import report as compare


def at(rec: dict, **settings) -> dict:
    """``rec`` with some of its config's settings changed."""
    rec["config"] |= settings
    return rec


def run_cli(*args: str):
    return run_module("experiments.compare", *args, timeout=120)


def one_line_error(result) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _two_rates(variant="gru", seeds=3):
    return [
        at(make_record(variant=variant, seed=s, final_loss=loss * (1 + 0.1 * s)), learning_rate=lr)
        for lr, loss in ((1e-3, 0.05), (1e-2, 0.12))
        for s in range(seeds)
    ]


# --------------------------------------------------------------------------------------
# Rows never mix settings.
# --------------------------------------------------------------------------------------


def test_a_label_at_two_learning_rates_is_two_rows_named_by_lr():
    records = [make_record(seed=s, final_loss=0.1 + 0.01 * s) for s in range(3)] + _two_rates()
    rows = compare.summarise(records)
    assert [r["variant"] for r in rows] == ["lstm", "gru lr=0.001", "gru lr=0.01"]
    slow = next(r for r in rows if r["variant"] == "gru lr=0.001")
    assert slow["label"] == "gru" and slow["n_seeds"] == 3
    assert math.isclose(slow["loss_mean"], 0.05 * 1.1)  # only its own three seeds
    assert slow["settings"] == "learning_rate=0.001"
    text = compare.format_markdown(rows)
    assert "| `gru lr=0.001` | 3 |" in text and "| `gru lr=0.01` | 3 |" in text
    assert "Rows differ in: learning_rate (0.001: `lstm`, `gru lr=0.001`; 0.01: `gru lr=0.01`)" in (
        text
    )
    # Not duplicates: same label and seed, other settings.
    assert (
        len({(r["config"]["learning_rate"], r["seed"]) for r in records if r["variant"] == "gru"})
        == 6
    )


def test_settings_that_differ_between_labels_are_noted_and_common_ones_stated_once():
    records = [at(make_record(seed=s), hidden_size=64) for s in range(3)]
    records += [at(make_record(variant="gru", seed=s), hidden_size=128) for s in range(3)]
    rows = compare.summarise(records)
    assert [r["variant"] for r in rows] == ["lstm", "gru"]  # one setting each: not split
    text = compare.format_markdown(rows)
    assert "Rows differ in: hidden_size (64: `lstm`; 128: `gru`)." in text
    (common,) = [line for line in text.splitlines() if line.startswith("Settings of every row:")]
    assert "learning_rate=0.001" in common and "batch_size=128" in common
    assert "hidden_size" not in common and "variant" not in common
    assert [r["settings"] for r in rows] == ["hidden_size=64", "hidden_size=128"]


def test_rows_with_fewer_than_three_seeds_are_marked_and_noted():
    records = [make_record(seed=s) for s in range(3)]
    records += [make_record(variant="gru", seed=s) for s in range(2)]
    rows = compare.summarise(records)
    gru = next(r for r in rows if r["variant"] == "gru")
    assert "fewer than 3 seeds (2)" in gru["notes"]
    text = compare.format_markdown(rows)
    assert "| `gru` ⚠ | 2 |" in text and "| `lstm` | 3 |" in text
    assert "⚠ marks rows of fewer than 3 seeds" in text
    assert "`gru`: fewer than 3 seeds (2)" in text
    assert "⚠" not in compare.format_markdown(compare.summarise(records[:3]))


def test_a_reference_split_by_settings_is_ambiguous_and_its_full_row_name_accepted():
    records = _two_rates("lstm") + [make_record(variant="gru", seed=s) for s in range(3)]
    with pytest.raises(ValueError) as error:
        compare.summarise(records, reference="lstm")
    message = str(error.value)
    assert "\n" not in message and "ambiguous" in message
    assert "'lstm lr=0.001', 'lstm lr=0.01'" in message
    rows = compare.summarise(records, reference="lstm lr=0.001")
    assert rows[0]["variant"] == "lstm lr=0.001" and rows[0]["test_note"] == "reference variant"
    assert {r["reference_row"] for r in rows} == {"lstm lr=0.001"}
    other = next(r for r in rows if r["variant"] == "lstm lr=0.01")
    assert math.isfinite(other["welch_p"]) and other["holm_family_size"] == 2
    # A label and a setting name the row too (short or full name).
    again = compare.summarise(records, reference="lstm learning_rate=0.001")
    assert again[0]["variant"] == "lstm lr=0.001"
    assert "| Hedges' g vs lstm lr=0.001 |" in compare.format_markdown(rows)


def test_records_without_config_are_their_own_row():
    plain = make_record(seed=5)
    del plain["config"]
    rows = compare.summarise([make_record(seed=s) for s in range(3)] + [plain], reference="gru")
    assert sorted(r["variant"] for r in rows) == ["lstm", "lstm (no config)"]


# --------------------------------------------------------------------------------------
# Loading: duplicates by settings, several workdirs.
# --------------------------------------------------------------------------------------


def test_duplicates_key_on_settings_and_seed(tmp_path):
    for rec in _two_rates():
        name = f"gru_lr{rec['config']['learning_rate']}_seed{rec['seed']}.json"
        (tmp_path / "records").mkdir(exist_ok=True)
        (tmp_path / "records" / name).write_text(json.dumps(rec))
    again = at(make_record(variant="gru", seed=0, final_loss=0.9), learning_rate=1e-2)
    write_record(tmp_path, again, subdir="zz")
    records, problems = compare.load_records(tmp_path)
    assert len(records) == 6
    assert len(problems) == 1 and "duplicate" in problems[0] and "zz" in problems[0]


def test_several_workdirs_are_compared_together_and_cross_duplicates_skipped(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for s in range(3):
        write_record(a, make_record(seed=s))
        write_record(b, make_record(variant="gru", seed=s))
    write_record(b, make_record(seed=0, final_loss=0.5))  # the same run as a's seed 0
    records, problems = compare.load_workdirs([a, b])
    assert len(records) == 6
    assert len(problems) == 1 and problems[0].startswith(str(b)) and str(a) in problems[0]
    out = tmp_path / "out"
    result = run_cli(f"--workdir={a},{b}", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr
    assert "| `lstm` | 3 |" in result.stdout and "| `gru` | 3 |" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "duplicate" in warnings[0]
    assert (out / "summary.md").exists() and (out / "survival_adding_T100.png").exists()
    # Several workdirs need --output_dir; a missing one is named.
    line = one_line_error(run_cli(f"--workdir={a},{b}"))
    assert line.startswith("experiments.compare: error:") and "--output_dir" in line
    missing = tmp_path / "nope"
    line = one_line_error(run_cli(f"--workdir={a},{missing}", f"--output_dir={out}"))
    assert line == (
        f"experiments.compare: error: --workdir {missing} must be an existing directory "
        "(no such directory)"
    )


def test_cli_missing_workdir_names_the_program_and_the_directory(tmp_path):
    missing = tmp_path / "nope"
    line = one_line_error(run_cli(f"--workdir={missing}"))
    assert line.startswith("experiments.compare: error: ")
    assert str(missing) in line and "must be an existing directory" in line


def test_cli_ambiguous_reference_is_one_error_line_and_the_row_name_works(tmp_path):
    for i, rec in enumerate(_two_rates("lstm") + [make_record(variant="gru", seed=0)]):
        write_record(tmp_path, rec, subdir=str(i))
    line = one_line_error(run_cli(f"--workdir={tmp_path}"))
    assert line.startswith("experiments.compare: error: reference 'lstm' is ambiguous")
    assert "'lstm lr=0.001', 'lstm lr=0.01'" in line
    assert not (tmp_path / "summary.md").exists()
    result = run_cli(f"--workdir={tmp_path}", "--reference=lstm lr=0.01")
    assert result.returncode == 0, result.stderr
    assert "| Hedges' g vs lstm lr=0.01 |" in result.stdout
    assert "welch_p_vs_lstm_lr=0.01" in (tmp_path / "summary.csv").read_text()


# --------------------------------------------------------------------------------------
# A study workdir: cells, roles, the tuning table.
# --------------------------------------------------------------------------------------

CANDIDATES = [3e-4, 1e-3, 3e-3]


def write_cell(workdir: Path, cell_id: str, role: str, records: list, tuning=None) -> None:
    folder = workdir / "cells" / cell_id
    (folder / "records").mkdir(parents=True)
    cell = {"format": "lstmx.cell/1", "id": cell_id, "role": role,
            "config": records[0]["config"], "tuning": tuning}  # fmt: skip
    (folder / "cell.json").write_text(json.dumps(cell))
    for rec in records:
        (folder / "records" / f"seed{rec['seed']}.json").write_text(json.dumps(rec))


def make_study(workdir: Path) -> None:
    """lstm and gru, each: three tuning cells (one per lr, seeds 0-2), an eval cell (10-14)."""
    (workdir / "study.json").write_text(json.dumps(
        {"format": "lstmx.study/1", "name": "lr", "reference": "lstm", "spec": {}}
    ))  # fmt: skip
    for variant, best in (("lstm", 3e-3), ("gru", 1e-3)):
        cells = []
        for lr in CANDIDATES:
            loss = 0.01 if lr == best else 0.1
            recs = [
                at(make_record(variant=variant, seed=s, final_loss=loss), learning_rate=lr)
                for s in range(3)
            ]
            cells.append(f"{variant}_tune_{lr:g}")
            write_cell(workdir, cells[-1], "tune", recs)
        tuning = {"setting": "learning_rate", "candidates": CANDIDATES, "picked": best,
                  "rule": "lowest median final loss", "tuning_cells": cells}  # fmt: skip
        recs = [
            at(
                make_record(variant=variant, seed=s, final_loss=0.01 + 0.001 * s),
                learning_rate=best,
            )
            for s in range(10, 15)
        ]
        write_cell(workdir, f"{variant}_eval", "eval", recs, tuning)


def test_study_layout_is_read_with_roles_and_tuning(tmp_path):
    make_study(tmp_path)
    records, problems = compare.load_records(tmp_path)
    assert problems == [] and len(records) == 2 * (3 * 3 + 5)
    tune = [r for r in records if r["_role"] == "tune"]
    assert len(tune) == 18 and all(r["_tuning"] is None for r in tune)
    evals = [r for r in records if r["_role"] == "eval"]
    assert {r["_tuning"]["picked"] for r in evals} == {3e-3, 1e-3}
    assert {r["_cell"] for r in evals} == {"lstm_eval", "gru_eval"}
    assert loading.study_reference(tmp_path) == "lstm"


def test_tuning_records_are_left_out_and_shown_in_the_tuning_table(tmp_path):
    make_study(tmp_path)
    records, problems = compare.load_records(tmp_path)
    rows = compare.summarise(records)
    assert [r["variant"] for r in rows] == ["lstm lr=0.003 (tuned)", "gru lr=0.001 (tuned)"]
    assert all(r["n_seeds"] == 5 for r in rows)  # the eval seeds only
    assert rows[1]["tuned_setting"] == "learning_rate" and rows[1]["tuned_value"] == "0.001"
    tuning = compare.summarise_tuning(records)
    assert [(r["variant"], r["value"], r["n_seeds"], r["picked"]) for r in tuning] == [
        ("gru", "0.0003", 3, False), ("gru", "0.001", 3, True), ("gru", "0.003", 3, False),
        ("lstm", "0.0003", 3, False), ("lstm", "0.001", 3, False), ("lstm", "0.003", 3, True),
    ]  # fmt: skip
    assert tuning[1]["loss_median"] == 0.01 and tuning[1]["n_solved"] == 3
    assert tuning[1]["km_median_steps_to_solve"] == 1000.0
    assert math.isnan(tuning[0]["km_median_steps_to_solve"])  # 0.1 > 1/60: never solved

    out = tmp_path / "out"
    text, written = compare.write_summary(records, problems, out, reference="lstm")
    assert out / "tuning.csv" in written
    assert "## Tuning" in text and "### adding, T=100" in text
    assert "| `gru` | learning_rate | 0.001 | 3 | 0 | 0.01 | 3/3 | 1000 | ✓ |" in text
    assert "Picked by the rule: `gru`, `lstm`: lowest median final loss." in text
    assert "| `lstm lr=0.003 (tuned)` | 5 |" in text
    assert "learning_rate picked from 0.0003, 0.001, 0.003 by the rule" in text
    summary = (out / "summary.md").read_text()
    assert "28 records (18 of them from tuning cells, in the Tuning section)" in summary
    with open(out / "tuning.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and sum(r["picked"] == "True" for r in table) == 2
    with open(out / "summary.csv", newline="") as f:
        assert [r["variant"] for r in csv.DictReader(f)] == [r["variant"] for r in rows]


def test_no_tuning_table_without_tuning_records(tmp_path):
    records = [make_record(seed=s) for s in range(3)]
    text, written = compare.write_summary(records, [], tmp_path)
    assert "## Tuning" not in text and not (tmp_path / "tuning.csv").exists()
    assert compare.summarise_tuning(records) == []


def test_a_bad_cell_json_is_reported_once_and_read_as_eval(tmp_path):
    write_cell(tmp_path, "c1", "tune", [make_record(seed=s) for s in range(2)])
    (tmp_path / "cells" / "c1" / "cell.json").write_text("{broken")
    write_cell(tmp_path, "c2", "sideways", [make_record(variant="gru", seed=0)])
    (tmp_path / "cells" / "c3" / "records").mkdir(parents=True)  # no cell.json
    (tmp_path / "cells" / "c3" / "records" / "r.json").write_text(
        json.dumps(make_record(variant="rnn"))
    )
    records, problems = compare.load_records(tmp_path)
    assert len(records) == 4 and {r["_role"] for r in records} == {"eval"}
    assert len(problems) == 2
    assert "c1" in problems[0] and "not valid JSON" in problems[0] and "'eval'" in problems[0]
    assert "c2" in problems[1] and "'role'" in problems[1]


def test_cli_on_a_study_workdir(tmp_path):
    make_study(tmp_path)
    result = run_cli(f"--workdir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert "| `lstm lr=0.003 (tuned)` | 5 |" in result.stdout and "## Tuning" in result.stdout
    assert (tmp_path / "tuning.csv").exists()
    assert "Hedges' g vs lstm lr=0.003 (tuned)" in result.stdout


def test_tuning_cells_without_an_eval_cell_infer_the_setting_and_pick_nothing(tmp_path):
    for lr in CANDIDATES[:2]:
        recs = [at(make_record(seed=s, final_loss=0.01), learning_rate=lr) for s in range(2)]
        write_cell(tmp_path, f"tune_{lr:g}", "tune", recs)
    records, _ = compare.load_records(tmp_path)
    assert compare.summarise(records) == []  # nothing to compare yet
    tuning = compare.summarise_tuning(records)
    assert [(r["setting"], r["value"], r["picked"]) for r in tuning] == [
        ("learning_rate", "0.0003", False),
        ("learning_rate", "0.001", False),
    ]
    text = compare.format_tuning_markdown(tuning)
    assert "No eval cell names a picked value for `lstm`." in text
