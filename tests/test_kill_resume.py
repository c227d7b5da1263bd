"""`kill -9` at any moment, the same command again: the records of an uninterrupted run.

Three commands run in one work directory: the first is killed (SIGKILL, no chance to
clean up) as soon as a checkpoint or record appears, the second once the first variant's
records and a checkpoint of the second variant exist (so it dies in the second variant),
the third runs to the end. The second and third must say they resumed from a checkpoint
step > 0 (and SIGKILL leaves no stale workdir lock behind). The records must equal, but
for times and versions, those of one uninterrupted command in another work directory,
and the finished variant's records must be left untouched.

The subprocesses share a persistent compilation cache, so only the first one compiles.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("rnn", "gru")
FLAGS = [
    "--task=adding",
    "--length=6",
    f"--variants={','.join(VARIANTS)}",
    "--seeds=2",
    "--steps=400",
    "--eval_every=20",
    "--checkpoint_every=1",
    "--hidden_size=8",
    "--batch_size=16",
    "--eval_batch_size=32",
]
TIMES = ("wall_time", "steps_per_second", "versions")


def _environment(cache):
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _command(workdir):
    return [sys.executable, "-m", "experiments.run", *FLAGS, f"--workdir={workdir}"]


def _run(workdir, cache):
    result = subprocess.run(
        _command(workdir),
        cwd=ROOT,
        env=_environment(cache),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _kill_when(workdir, cache, ready):
    """Starts the command, SIGKILLs it as soon as ``ready()`` holds, returns its stdout."""
    process = subprocess.Popen(
        _command(workdir),
        cwd=ROOT,
        env=_environment(cache),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    os.kill(process.pid, signal.SIGKILL)
    stdout, _ = process.communicate()
    assert process.returncode == -signal.SIGKILL, "the command ended before it could be killed"
    return stdout


def _resumed_step(output, variant):
    """The step the output says the variant resumed from (0 if it does not say so)."""
    match = re.search(rf"resumed from step (\d+) \(adding_T6_{variant}\.msgpack\)", output)
    return int(match.group(1)) if match else 0


def _records(workdir):
    return {
        path.name: json.loads(path.read_text()) for path in (workdir / "records").glob("*.json")
    }


def _without_times(record):
    record = {key: value for key, value in record.items() if key not in TIMES}
    record["history"] = [{k: v for k, v in p.items() if k not in TIMES} for p in record["history"]]
    record["final"] = {k: v for k, v in record["final"].items() if k not in TIMES}
    return record


def test_killed_twice_and_restarted_ends_with_the_uninterrupted_records(tmp_path):
    cache = tmp_path / "jax_cache"
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    _run(whole, cache)  # compiles and fills the cache for the others
    expected = _records(whole)
    assert len(expected) == 4

    def first_file():
        return any((killed / "checkpoints").glob("*.msgpack")) or any(
            (killed / "records").glob("*.json")
        )

    out = _kill_when(killed, cache, first_file)
    assert "400/400" not in out

    # The second command resumes the first variant from the checkpoint the first left
    # (records come only after a checkpoint), and is killed once the second variant has
    # a checkpoint of its own.
    first_variant = [killed / "records" / f"adding_T6_{VARIANTS[0]}_seed{s}.json" for s in (0, 1)]
    second_checkpoint = killed / "checkpoints" / f"adding_T6_{VARIANTS[1]}.msgpack"
    out = _kill_when(
        killed,
        cache,
        lambda: all(path.exists() for path in first_variant) and second_checkpoint.exists(),
    )
    assert _resumed_step(out, VARIANTS[0]) > 0, out
    assert not (killed / "records" / f"adding_T6_{VARIANTS[1]}_seed1.json").exists()
    before = [(path.stat().st_mtime_ns, path.read_bytes()) for path in first_variant]

    out = _run(killed, cache)
    assert f"adding T=6 {VARIANTS[0]}: all seeds finished, skipping." in out
    assert _resumed_step(out, VARIANTS[1]) > 0, out
    assert [(path.stat().st_mtime_ns, path.read_bytes()) for path in first_variant] == before
    got = _records(killed)
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert _without_times(got[name]) == _without_times(expected[name]), name
    assert not any((killed / "checkpoints").glob("*.msgpack"))  # removed once recorded
