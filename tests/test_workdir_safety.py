"""One run per workdir, and graceful preemption, as a user meets them: real processes.

* Two commands on one workdir: exactly one trains; the other exits at once with one line
  naming the holder's PID and host and leaves every file untouched; ``--wait_for_lock``
  waits for the holder instead.
* SIGTERM mid-run: the command finishes its chunk, checkpoints, says where and exits with
  75 (EX_TEMPFAIL); the same command says "resumed from step N" and ends with the records
  of an uninterrupted run (times aside).

The subprocesses share a persistent compilation cache, so only the first one compiles.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from experiments.shared import resume

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--task=adding",
    "--length=6",
    "--variants=rnn",
    "--seeds=2",
    "--eval_every=20",
    "--hidden_size=8",
    "--batch_size=16",
    "--eval_batch_size=32",
]
TIMES = ("wall_time", "steps_per_second", "versions")

HOLD_LOCK = textwrap.dedent(
    """
    import sys
    from experiments.shared import resume
    with resume.lock_workdir(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()  # holds the lock until told to let go
    """
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


def _environment(cache):
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _start(cache, workdir, *extra, **popen):
    return subprocess.Popen(
        [sys.executable, "-m", "experiments.run", *FLAGS, *extra, f"--workdir={workdir}"],
        cwd=ROOT,
        env=_environment(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stdout, stderr


def _files(workdir):
    """Every file and directory under ``workdir`` with its mtime and content."""
    return {
        str(path.relative_to(workdir)): (
            path.stat().st_mtime_ns,
            path.read_bytes() if path.is_file() else None,
        )
        for path in sorted(workdir.rglob("*"))
    }


def _records(workdir):
    return {
        path.name: json.loads(path.read_text()) for path in (workdir / "records").glob("*.json")
    }


def _without_times(record):
    record = {key: value for key, value in record.items() if key not in TIMES}
    record["history"] = [{k: v for k, v in p.items() if k not in TIMES} for p in record["history"]]
    record["final"] = {k: v for k, v in record["final"].items() if k not in TIMES}
    return record


def test_two_runs_on_one_workdir_one_trains_the_other_is_refused(tmp_path, cache):
    workdir = tmp_path / "shared"
    first = _start(cache, workdir, "--steps=400")
    second = _start(cache, workdir, "--steps=400")
    outcomes = {first.pid: _finish(first), second.pid: _finish(second)}
    codes = sorted(code for code, _, _ in outcomes.values())
    assert codes == [0, 1], outcomes
    (winner,) = [pid for pid, (code, _, _) in outcomes.items() if code == 0]
    (loser,) = [outcome for outcome in outcomes.values() if outcome[0] == 1]
    _, stdout, stderr = loser
    assert stdout == "" and "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert f"is in use by another run (PID {winner} on host {socket.gethostname()}" in lines[0]
    assert "--wait_for_lock" in lines[0]
    assert "step    400/400" in outcomes[winner][1]
    assert len(_records(workdir)) == 2


def test_a_refused_run_touches_nothing_and_wait_for_lock_waits(tmp_path, cache):
    workdir = tmp_path / "w"
    code, _, stderr = _finish(_start(cache, workdir, "--steps=40"))
    assert code == 0, stderr
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workdir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _files(workdir)
        time.sleep(0.05)  # a write now would show in the mtimes
        code, stdout, stderr = _finish(_start(cache, workdir, "--steps=40"))
        assert code == 1 and stdout == ""
        assert f"(PID {holder.pid} on host {socket.gethostname()}" in stderr
        assert _files(workdir) == before
        waiting = _start(cache, workdir, "--steps=40", "--wait_for_lock")
        line = waiting.stdout.readline()
        assert line.startswith(f"waiting for {workdir}: in use by another run (PID {holder.pid}")
        assert waiting.poll() is None
    finally:
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=60)
    code, stdout, stderr = _finish(waiting)
    assert code == 0, stderr
    assert "adding T=6 rnn: all seeds finished, skipping." in stdout


def test_sigterm_checkpoints_exits_75_and_the_same_command_resumes(tmp_path, cache):
    steps = ["--steps=2000"]
    whole = tmp_path / "whole"
    code, _, stderr = _finish(_start(cache, whole, *steps))
    assert code == 0, stderr

    stopped = tmp_path / "stopped"
    process = _start(cache, stopped, *steps)
    deadline = time.monotonic() + 300
    checkpoints = stopped / "checkpoints"
    while not any(checkpoints.glob("*.msgpack")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.005)
    process.send_signal(signal.SIGTERM)
    code, stdout, stderr = _finish(process)
    assert code == resume.EXIT_PREEMPTED, stderr
    match = re.search(r"stopped by SIGTERM at step (\d+): checkpoint written to (\S+);", stdout)
    assert match, stdout
    step, where = int(match.group(1)), Path(match.group(2))
    assert 0 < step < 2000
    assert where == stopped / "checkpoints" / "adding_T6_rnn.msgpack" and where.exists()
    assert not (stopped / "records").exists()

    code, stdout, stderr = _finish(_start(cache, stopped, *steps))
    assert code == 0, stderr
    assert f"resumed from step {step} (adding_T6_rnn.msgpack)" in stdout
    expected, got = _records(whole), _records(stopped)
    assert sorted(got) == sorted(expected) and len(got) == 2
    for name in expected:
        assert _without_times(got[name]) == _without_times(expected[name]), name


@pytest.mark.parametrize(
    "module, flags",
    [
        ("experiments.benchmark", ["--shapes=2x3x2x4", "--peers=", "--variants=lstm"]),
        ("experiments.gradient_flow", ["--variants=rnn", "--length=5", "--train_steps=0"]),
        ("experiments.char_lm", ["--steps=2"]),
        ("experiments.forecast", ["--steps=2"]),
    ],
)
def test_every_script_that_writes_a_workdir_refuses_a_locked_one(tmp_path, module, flags):
    (tmp_path / "mine.txt").write_text("kept")
    with resume.lock_workdir(tmp_path):  # this process holds it; the script is another one
        before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
        result = subprocess.run(
            [sys.executable, "-m", module, f"--workdir={tmp_path}", *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines and "in use by another run" in lines[-1] and f"PID {os.getpid()}" in lines[-1]
    after = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert after == before


def test_a_lock_that_cannot_be_taken_is_named_in_one_line_before_anything_is_written(tmp_path):
    (tmp_path / resume.LOCK_NAME).mkdir()  # .lock is a directory: open() fails (EISDIR)
    refused = pytest.raises(resume.WriteError, match=r"could not take the workdir's lock .*\.lock")
    with refused, resume.lock_workdir(tmp_path):
        pytest.fail("the block ran without the lock")
    result = subprocess.run(
        [sys.executable, "-m", "experiments.run", f"--workdir={tmp_path}", "--variants=rnn",
         "--length=5", "--hidden_size=4", "--steps=2", "--eval_every=1", "--seeds=1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("experiments.run: error: could not take the workdir's lock")
    assert "Is a directory" in lines[0] and "summary" not in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [resume.LOCK_NAME]
