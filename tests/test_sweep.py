"""The sweep engine: grids into cells, tuning by a fixed rule, one study workdir shared by
any number of sweeps, failures retried, signals forwarded, and bad input refused.

The end-to-end cases run the real command (``python -m experiments.sweep``) on cells so
small that a cell is mostly JAX's start-up; the subprocesses share a compilation cache.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments.shared import resume
from experiments.sweep import backends, engine, grid, study

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
TIMES = ("wall_time", "steps_per_second", "versions")


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _sweep(environment, *flags, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "experiments.sweep", *flags],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _records(workdir: Path) -> dict:
    """Every cell's records, times left out, by path under the workdir."""
    out = {}
    for path in sorted(workdir.glob("cells/*/records/*.json")):
        record = json.loads(path.read_text())
        for key in TIMES:
            record.pop(key)
        for point in [*record["history"], record["final"]]:
            point.pop("wall_time")
        out[str(path.relative_to(workdir))] = record
    return out


# ------------------------------------------------------------------------------ grid


def test_a_grid_expands_into_one_cell_per_combination_named_by_what_varies():
    spec = grid.normalise_spec(
        {"grid": {"variant": ["lstm", "gru"], "learning_rate": [1e-3, 3e-3], "length": [100]}}
    )
    cells = grid.expand(spec)
    assert [cell.id for cell in cells] == [
        "adding_T100_lstm_lr0.001",
        "adding_T100_lstm_lr0.003",
        "adding_T100_gru_lr0.001",
        "adding_T100_gru_lr0.003",
    ]
    assert {cell.role for cell in cells} == {"eval"}
    assert cells[0].config.seeds == (0, 1, 2, 3, 4)
    assert cells[0].config.steps == 1000 and cells[0].config.batch_size == 50  # run's defaults


def test_grids_join_and_a_tuned_study_starts_with_tuning_cells_on_their_own_seeds():
    spec = grid.normalise_spec(
        {
            "grid": [
                {"variant": ["indrnn"], "init": ["li"], "learning_rate": [2e-4, 1e-3]},
                {"variant": ["lstm"], "learning_rate": [1e-3, 2e-3]},
            ],
            "tune": "learning_rate",
            "tuning_seeds": 2,
        }
    )
    cells = grid.expand(spec)
    assert [(cell.id, cell.group) for cell in cells] == [
        ("tune-adding_T50_indrnn+li_lr0.0002", "adding_T50_indrnn+li"),
        ("tune-adding_T50_indrnn+li_lr0.001", "adding_T50_indrnn+li"),
        ("tune-adding_T50_lstm_lr0.001", "adding_T50_lstm"),
        ("tune-adding_T50_lstm_lr0.002", "adding_T50_lstm"),
    ]
    assert all(cell.role == "tune" and cell.config.seeds == (1000, 1001) for cell in cells)
    group = grid.tuning_groups(cells)["adding_T50_lstm"]
    evaluation = grid.eval_cell(spec, group, 2e-3)
    assert evaluation.id == "adding_T50_lstm_lr0.002" and evaluation.role == "eval"
    assert evaluation.config.learning_rate == 2e-3 and evaluation.config.seeds == tuple(range(5))


def _record(final_loss, history, status="finished"):
    return {
        "final": {"step": history[-1][0], "loss": final_loss},
        "history": [{"step": s, "loss": loss} for s, loss in history],
        "status": status,
        "baseline": 1.0,
    }


def test_the_pick_is_the_lowest_median_loss_then_the_fastest_then_the_first():
    spec = grid.normalise_spec(
        {"grid": {"learning_rate": [1e-3, 3e-3, 1e-2]}, "tune": "learning_rate"}
    )
    cells = grid.expand(spec)
    slow, fast = [(100, 0.5), (200, 0.05)], [(100, 0.05), (200, 0.05)]
    records = {
        cells[0].id: [_record(0.05, slow)] * 3,
        cells[1].id: [_record(0.05, fast)] * 3,  # same median loss, solved sooner
        cells[2].id: [_record(0.01, fast), _record(math.nan, fast, "diverged"), _record(9, fast)],
    }
    chosen = grid.pick("learning_rate", cells, records)
    assert chosen.value == 3e-3  # 1e-2's median counts the diverged seed as +inf: 9
    assert chosen.scores[2] == (9.0, 100)
    records[cells[1].id] = [_record(0.05, slow)] * 3
    assert grid.pick("learning_rate", cells, records).value == 1e-3  # a full tie: the first


def test_cell_flags_give_experiments_run_exactly_the_cell(environment):
    config = grid.expand(
        grid.normalise_spec(
            {
                "grid": {
                    "variant": ["lstm"],
                    "init": ["chrono"],
                    "zoneout_h": [0.1],
                    "learning_rate": [3e-3],
                    "task": ["copy"],
                },
                "first_seed": 7,
                "seeds": 2,
            }
        )  # fmt: skip
    )[0].config
    script = (
        "import sys; from absl import flags; from experiments.run import __main__ as run; "
        "flags.FLAGS(['run', *sys.argv[1:]]); print(run.configs_from_flags()[0].to_dict())"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *grid.cell_flags(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=environment,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(config.to_dict())


def test_the_lock_name_is_the_runs():
    assert study.LOCK_NAME == resume.LOCK_NAME


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"grid": {"variant": []}}, "grid axis 'variant' is empty"),
        ({"grid": {"hidden": [4]}}, "unknown grid setting(s) hidden"),
        ({"grid": {"learning_rate": [1e-3]}, "tune": "learning_rate"}, "at least two values"),
        ({"grid": {"learning_rate": [1, 2]}, "tune": "lr"}, "--tune must name a grid setting"),
        (
            {
                "grid": {"learning_rate": [1e-3, 2e-3]},
                "tune": "learning_rate",
                "first_tuning_seed": 3,
            },
            "tuning seeds must be apart",
        ),  # fmt: skip
        ({"grid": []}, "grid list is empty"),
    ],
)
def test_bad_specs_are_refused(spec, message):
    with pytest.raises(grid.GridError, match=message.replace("(", r"\(").replace(")", r"\)")):
        grid.expand(grid.normalise_spec(spec))


def test_a_cell_experiments_run_refuses_is_named():
    spec = grid.normalise_spec({"grid": {"variant": ["lstm", "gru"], "zoneout_c": [0.1]}})
    with pytest.raises(grid.GridError, match="experiments.run would refuse the cell .*'gru'"):
        grid.expand(spec)


def test_every_study_file_expands(tmp_path):
    import importlib.util

    from ml_collections import config_flags  # noqa: F401  (the study files use it)

    files = sorted((ROOT / "experiments" / "studies").glob("[a-z]*.py"))
    assert len(files) >= 6
    for path in files:
        loader = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
        spec = grid.spec_from_study_file(module.get_config().to_dict())
        assert spec["name"] == path.stem
        assert grid.expand(spec), path.name


# ------------------------------------------------------------------------- the engine


class _FlakyBackend:
    """A local backend whose cells named in ``fail`` fail their first ``times`` attempts."""

    def __init__(self, fail, times):
        self._local = backends.LocalBackend(2, stall_timeout=600)
        self.capacity, self.fail, self.times, self.calls = 2, fail, times, []

    def submit(self, flags, directory):
        name = Path(directory).name
        self.calls.append(name)
        if name in self.fail and self.calls.count(name) <= self.times:
            import concurrent.futures

            future = concurrent.futures.Future()
            future.set_result(backends.CellResult(1, "RESOURCE_EXHAUSTED: out of memory", 0.0))
            return future
        return self._local.submit(flags, directory)

    def stop(self):
        self._local.stop()

    def close(self):
        self._local.close()


def _tiny_spec(**changes):
    base = {"grid": {"variant": ["rnn", "gru"], "length": [5], "steps": [20], "eval_every": [10],
                     "hidden_size": [4], "batch_size": [4], "eval_batch_size": [8]},
            "seeds": 2}  # fmt: skip
    return grid.normalise_spec({**base, **changes})


def test_a_failed_cell_is_recorded_and_retried_once_and_the_others_go_on(tmp_path, environment):
    os.environ.update(environment)  # the cells' processes share the compilation cache
    spec = _tiny_spec()
    study.open_study(tmp_path, spec)
    backend = _FlakyBackend(fail={"adding_T5_rnn"}, times=2)  # fails its retry too
    lines = []
    try:
        outcome = engine.run_study(
            tmp_path, spec, backend, stop_requested=lambda: False, log=lines.append
        )
    finally:
        backend.close()
    assert outcome.done == ["adding_T5_gru"] and outcome.failed == ["adding_T5_rnn"]
    assert backend.calls.count("adding_T5_rnn") == 2 and backend.calls.count("adding_T5_gru") == 1
    assert "FAILED adding_T5_rnn (exit status 1): RESOURCE_EXHAUSTED: out of memory; retrying" in (
        lines
    )
    failure = study.read_failure(tmp_path, grid.expand(spec)[0])
    assert failure["exit_status"] == 1 and "out of memory" in failure["message"]
    rows, summary = engine.status_rows(tmp_path)
    assert (
        "failed",
        "adding_T5_rnn",
        "0/2",
        "exit status 1: RESOURCE_EXHAUSTED: out of memory",
    ) in (rows)
    assert summary == "2 cells: 1 done, 0 running, 0 pending, 1 failed, 0 waiting for tuning"

    # Running again is the retry: the failed cell trains, the done one is left alone.
    backend = _FlakyBackend(fail=set(), times=0)
    try:
        outcome = engine.run_study(tmp_path, spec, backend, stop_requested=lambda: False,
                                   log=lines.append)  # fmt: skip
    finally:
        backend.close()
    assert backend.calls == ["adding_T5_rnn"] and not outcome.failed
    assert study.read_failure(tmp_path, grid.expand(spec)[0]) is None


def test_a_tuned_sweep_picks_by_the_rule_and_resumes_without_retraining(tmp_path, environment):
    flags = [*TINY, "--variants=rnn", "--learning_rates=1e-3,3e-2", "--tune=learning_rate",
             "--tuning_seeds=2", "--seeds=2", f"--workdir={tmp_path}"]  # fmt: skip
    result = _sweep(environment, *flags)
    assert result.returncode == 0, result.stderr
    picks = json.loads((tmp_path / "tuning.json").read_text())["picks"]["adding_T5_rnn"]
    medians = [score[0] for score in picks["scores"]]
    assert picks["picked"] == picks["candidates"][medians.index(min(medians))]
    evaluation = f"adding_T5_rnn_lr{picks['picked']:g}"
    cell = json.loads((tmp_path / "cells" / evaluation / "cell.json").read_text())
    assert cell["role"] == "eval" and cell["tuning"]["picked"] == picks["picked"]
    assert cell["config"]["seeds"] == [0, 1] and picks["tuning_seeds"] == [1000, 1001]
    records = _records(tmp_path)
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


def test_two_sweeps_on_one_workdir_train_each_cell_once(tmp_path, environment):
    flags = [*TINY, "--variants=rnn,gru,mgu,lstm", "--seeds=2", "--workers=1",
             f"--workdir={tmp_path}"]  # fmt: skip
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
    logs = [path.read_text() for path in sorted(tmp_path.glob("cells/*/log.txt"))]
    assert len(logs) == 4
    for log in logs:  # one training per cell, whichever sweep ran it
        assert log.count("step     20/20") == 1, log
    assert len(_records(tmp_path)) == 8


def test_sigterm_to_the_sweep_reaches_every_cell_and_the_same_command_resumes(
    tmp_path, environment
):
    flags = ["--task=adding", "--lengths=5", "--steps=3000", "--eval_every=20",
             "--hidden_size=4", "--batch_size=4", "--eval_batch_size=8", "--nocompare",
             "--variants=rnn,gru", "--seeds=1", "--workers=2", f"--workdir={tmp_path}"]  # fmt: skip
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
    for name in ("adding_T5_rnn", "adding_T5_gru"):
        log = (tmp_path / "cells" / name / "log.txt").read_text()
        assert "stopped by SIGTERM at step" in log, log
        assert f"stopped {name}:" in stdout
    again = _sweep(environment, *flags)
    assert again.returncode == 0, again.stderr
    for name in ("adding_T5_rnn", "adding_T5_gru"):
        assert "resumed from step" in (tmp_path / "cells" / name / "log.txt").read_text()


# ------------------------------------------------------------------------ bad input


def _nothing_written(workdir: Path) -> bool:
    return not workdir.exists() or not any(workdir.iterdir())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--backend=kubernetes"], "--backend"),
        (["--variants=lstm,gur"], "Unknown variant 'gur'"),
        (["--variants=gru", "--zoneout_c=0.1"], "experiments.run would refuse the cell"),
        (["--variants="], "grid axis 'variant' is empty"),
        (["--hidden_size=big"], "--hidden_size takes int values"),
        (["--study=experiments/studies/no_such_study.py"], "no_such_study.py"),
        (["--study=experiments/studies/__init__.py"], "get_config"),
        (
            ["--study=experiments/studies/default_adding_T50.py", "--variants=gru", "--steps=2"],
            "not both",
        ),
        (["--backend=ray", "--ray_address=127.0.0.1:1"], "does not answer as a Ray cluster"),
        (["--tune=learning_rate"], "needs at least two values"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, environment, flags, message):
    workdir = tmp_path / "study"
    grid_flags = [] if any(f.startswith("--study=") for f in flags) else TINY
    result = _sweep(environment, *grid_flags, f"--workdir={workdir}", *flags, timeout=180)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert any(message in line for line in lines[-2:]), result.stderr
    assert _nothing_written(workdir)


def test_a_workdir_of_another_study_is_refused(tmp_path, environment):
    study.open_study(tmp_path, _tiny_spec())
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _sweep(environment, *TINY, "--variants=lstm", f"--workdir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"experiments.sweep: error: {tmp_path} holds another")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
