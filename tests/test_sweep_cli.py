"""The sweep's command end to end: two sweeps sharing one tuned study's workdir and its
resumption, SIGTERM forwarded to every cell, a workdir of another study refused.

The cells are so small that each is mostly JAX's start-up; the subprocesses share a
compilation cache. The sweep's bad flags are in tests/test_bad_input_table.py.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _sweep_helpers import cached_environment, records_without_times

from experiments.shared import resume
from experiments.sweep import grid, study

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--task=adding",
    "--lengths=5",
    "--steps=20",
    "--eval_every=10",
    "--hidden_size=4",
    "--batch_size=4",
    "--eval_batch_size=8",
    "--nocompare",
]


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    return cached_environment(tmp_path_factory.mktemp("jax_cache"))


def _sweep(environment, *flags, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "experiments.sweep", *flags],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_tuned_sweeps_share_one_workdir_pick_by_the_rule_and_resume(tmp_path, environment):
    flags = [*TINY, "--variants=rnn", "--learning_rates=1e-3,3e-2", "--tune=learning_rate",
             "--tuning_seeds=2", "--seeds=2", "--workers=1", f"--workdir={tmp_path}"]  # fmt: skip
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "experiments.sweep", *flags],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    logs = {path.parent.name: path.read_text() for path in tmp_path.glob("cells/*/log.txt")}
    assert len(logs) == 3  # two tuning cells and the evaluation cell
    for name, log in logs.items():  # one training per cell, whichever sweep ran it
        assert log.count("step     20/20") == 1, (name, log)

    picks = json.loads((tmp_path / "tuning.json").read_text())["picks"]["adding_T5_rnn"]
    medians = [score[0] for score in picks["scores"]]
    assert picks["picked"] == picks["candidates"][medians.index(min(medians))]
    evaluation = f"adding_T5_rnn_lr{picks['picked']:g}"
    cell = json.loads((tmp_path / "cells" / evaluation / "cell.json").read_text())
    assert cell["role"] == "eval" and cell["tuning"]["picked"] == picks["picked"]
    assert cell["config"]["seeds"] == [0, 1] and picks["tuning_seeds"] == [1000, 1001]
    records = records_without_times(tmp_path)
    assert len(records) == 6
    assert {r["config"]["learning_rate"] for p, r in records.items() if evaluation in p} == {
        picks["picked"]
    }

    before = {p: p.stat().st_mtime_ns for p in tmp_path.glob("cells/*/records/*.json")}
    again = _sweep(environment, *flags)
    assert again.returncode == 0, again.stderr
    assert "start" not in again.stdout and "3 cells done" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in before} == before

    status = _sweep(environment, "--status", f"--workdir={tmp_path}")
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip().splitlines()[-1] == (
        "3 cells: 3 done, 0 running, 0 pending, 0 failed, 0 waiting for tuning"
    )


def test_sigterm_to_the_sweep_reaches_every_cell_and_the_same_command_resumes(
    tmp_path, environment
):
    # Two cells of one variant, so that they train at one speed: with rnn beside gru the
    # rnn cell could finish before the gru cell had its first checkpoint (seen on a 2-core
    # AMD EPYC), and the signal then reached one cell only.
    flags = ["--task=adding", "--lengths=5", "--steps=3000", "--eval_every=10",
             "--hidden_size=4", "--batch_size=4", "--eval_batch_size=8", "--nocompare",
             "--variants=gru", "--learning_rates=0.01,0.02", "--seeds=1", "--workers=2",
             f"--workdir={tmp_path}"]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.sweep", *flags], cwd=ROOT, env=environment,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while len(list(tmp_path.glob("cells/*/checkpoints/*.msgpack"))) < 2:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == resume.EXIT_PREEMPTED, stderr
    names = ("adding_T5_gru_lr0.01", "adding_T5_gru_lr0.02")
    for name in names:
        log = (tmp_path / "cells" / name / "log.txt").read_text()
        assert "stopped by SIGTERM at step" in log, log
        assert f"stopped {name}:" in stdout
    again = _sweep(environment, *flags)
    assert again.returncode == 0, again.stderr
    for name in names:
        assert "resumed from step" in (tmp_path / "cells" / name / "log.txt").read_text()


def test_a_workdir_of_another_study_is_refused(tmp_path, environment):
    study.open_study(tmp_path, grid.normalise_spec({"grid": {"variant": ["rnn"]}}))
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _sweep(environment, *TINY, "--variants=lstm", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"experiments.sweep: error: {tmp_path} holds another")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
