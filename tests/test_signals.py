"""Every stop signal in every phase of a run: one line, exit 75, nothing lost, and the same
command resumes to the uninterrupted run's records (checked after SIGTERM in each phase;
SIGINT and SIGHUP reach the same handler, and are checked for the exit and the lines).

The process sends itself the signal when it enters the phase (``LSTMX_SIGNAL_AT``,
:data:`experiments.shared.watchdog.SIGNAL_AT_VARIABLE`), so each case hits its phase every
time instead of racing a timer. Phases: compiling and initialising the first variant,
compiling its training step (the first chunk), a later chunk, between two variants,
between two seeds' record writes, and the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import run_module

from experiments.shared import resume, watchdog

FLAGS = ["--task=adding", "--length=4", "--variants=rnn,gru", "--seeds=2", "--steps=30",
         "--eval_every=10", "--hidden_size=3", "--batch_size=4", "--eval_batch_size=8",
         "--notensorboard"]  # fmt: skip
PHASES = {
    "compile_and_init": "compiling and initialising",
    "first_chunk": "compiling and training",
    "later_chunk": "training ",
    "between_variants": "between variants",
    "between_record_writes": "between record writes",
    "summary": "writing the summary",
}
SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


def _numbers(workdir: Path) -> dict[str, list]:
    """Every record's history without its wall times, by file name."""
    out = {}
    for path in sorted((workdir / "records").glob("*.json")):
        record = json.loads(path.read_text())
        out[path.name] = [
            {k: v for k, v in point.items() if k != "wall_time"} for point in record["history"]
        ]
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, list]:
    workdir = tmp_path_factory.mktemp("uninterrupted")
    result = run_module("experiments.run", *FLAGS, f"--workdir={workdir}")
    assert result.returncode == 0, result.stderr
    return _numbers(workdir)


@pytest.mark.parametrize("phase", list(PHASES))
@pytest.mark.parametrize("signal_name", SIGNALS)
def test_a_signal_in_any_phase_exits_75_and_the_same_command_resumes(
    signal_name, phase, tmp_path, uninterrupted
):
    workdir = tmp_path / "work"
    flags = [*FLAGS, f"--workdir={workdir}"]
    at = {watchdog.SIGNAL_AT_VARIABLE: f"{signal_name}@{PHASES[phase]}"}
    stopped = run_module("experiments.run", *flags, env=at)
    assert stopped.returncode == resume.EXIT_PREEMPTED, (stopped.stdout, stopped.stderr)
    assert stopped.stderr.count(f"{signal_name}: finishing the current chunk") == 1, stopped.stderr
    assert "Traceback" not in stopped.stderr and "Fatal" not in stopped.stderr
    assert f"stopped by {signal_name}" in stopped.stdout, stopped.stdout
    # Nothing half-written: no temporaries; every record present is a whole one.
    assert not list(workdir.rglob("*.tmp"))
    for path in (workdir / "records").glob("*.json"):
        json.loads(path.read_text())

    if signal_name != "SIGTERM":
        return  # the three signals share one handler; resuming is checked once per phase
    resumed = run_module("experiments.run", *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert _numbers(workdir) == uninterrupted
    assert (workdir / "summary.md").exists()
