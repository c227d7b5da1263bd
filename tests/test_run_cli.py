"""experiments.run from the command line: bad flags exit with one clear line, no traceback."""

import json
from pathlib import Path

import pytest
from _cli import run_module

ROOT = Path(__file__).resolve().parents[1]


def _run(*flags, cwd=ROOT):
    return run_module("experiments.run", *flags, cwd=cwd)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--task=sorting"], "--task"),
        (["--variants=lstm,lstn"], "--variants must be a non-empty list of: rnn, lstm"),
        (["--variants=lstm,gur"], "; unknown: 'gur'."),
        (["--steps=0"], "--steps"),
        (["--hidden_size=-4"], "--hidden_size"),
        (["--batch_size=0"], "--batch_size"),
        (["--seeds=0"], "--seeds"),
        (["--learning_rate=-0.001"], "--learning_rate must be > 0"),
        (["--clip=0"], "--clip must be > 0"),
        (["--optimizer=lbfgs"], "--optimizer"),
        (["--init=glorot"], "--init"),
        (["--task=adding", "--length=1"], "length must be an int >= 2"),
        (["--init=chrono", "--variants=nfg"], "needs forget_gate=True"),
        (["--init=li", "--variants=indrnn,gru"], "is for the indrnn variant only"),
    ],
)
def test_bad_flags_exit_with_one_line(flags, message, tmp_path):
    result = _run(*flags, f"--workdir={tmp_path / 'w'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(error_lines) == 1, result.stderr


def test_workdir_that_is_a_file_is_refused(tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("keep me")
    result = _run(f"--workdir={not_a_dir}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--workdir must be a directory path, not an existing file" in result.stderr
    assert not_a_dir.read_text() == "keep me"


def test_tiny_run_writes_records_and_summary_and_resumes(tmp_path):
    flags = [
        "--task=adding",
        "--length=6",
        "--variants=lstm,rnn",
        "--seeds=2",
        "--steps=20",
        "--eval_every=10",
        "--hidden_size=8",
        "--eval_batch_size=32",
        f"--workdir={tmp_path}",
    ]
    first = _run(*flags)
    assert first.returncode == 0, first.stderr
    assert "step     10/20" in first.stdout  # a progress line per evaluation
    assert "| `lstm` ⚠ |" in first.stdout  # the printed table (⚠: fewer than 3 seeds)
    assert len(list((tmp_path / "records").glob("*.json"))) == 4
    assert (tmp_path / "summary.md").exists() and (tmp_path / "summary.csv").exists()
    again = _run(*flags)
    assert again.returncode == 0
    assert again.stdout.count("all seeds finished, skipping") == 2
    mismatch = _run(*flags[:-2], "--hidden_size=16", f"--workdir={tmp_path}")
    assert mismatch.returncode != 0 and "Traceback" not in mismatch.stderr
    assert "hidden_size: 8 on disk vs 16 now" in mismatch.stderr


def test_tiny_regularized_run_is_labelled(tmp_path):
    result = _run(
        "--task=adding",
        "--length=4",
        "--variants=lstm",
        "--seeds=1",
        "--steps=2",
        "--eval_every=2",
        "--hidden_size=4",
        "--batch_size=4",
        "--eval_batch_size=8",
        "--zoneout_h=0.1",
        "--recurrent_dropout=0.1",
        f"--workdir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    assert "adding T=4 lstm+zoneout_h0.1+recdrop0.1 step      2/2" in result.stdout
    assert "| `lstm+zoneout_h0.1+recdrop0.1` ⚠ |" in result.stdout  # the printed table
    path = tmp_path / "records" / "adding_T4_lstm+zoneout_h0.1+recdrop0.1_seed0.json"
    record = json.loads(path.read_text())
    assert record["label"] == "lstm+zoneout_h0.1+recdrop0.1"
    assert record["status"] == "finished"
    assert (record["config"]["zoneout_h"], record["config"]["recurrent_dropout"]) == (0.1, 0.1)


def test_the_launcher_runs_a_command_as_python_dash_m_does(tmp_path):
    """run_module forks from a launcher (tests/_cli.py); a real ``python -m`` agrees."""
    import subprocess
    import sys

    flags = ["--optimizer=lbfgs", f"--workdir={tmp_path}"]
    real = subprocess.run(
        [sys.executable, "-m", "experiments.run", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    forked = _run(*flags)
    assert real.returncode != 0
    assert (forked.returncode, forked.stdout, forked.stderr) == (
        real.returncode,
        real.stdout,
        real.stderr,
    )
