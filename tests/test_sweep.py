"""The sweep engine: grids into cells, tuning by a fixed rule, one study workdir shared by
any number of sweeps, failures retried, signals forwarded, and bad input refused.

The end-to-end cases run the real command (``python -m experiments.sweep``) on cells so
small that a cell is mostly JAX's start-up; the subprocesses share a compilation cache.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _sweep_helpers import cached_environment

from experiments.shared import resume
from experiments.shared.regularization import Rates
from experiments.sweep import backends, engine, grid, study

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    return cached_environment(tmp_path_factory.mktemp("jax_cache"))


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


def test_seeds_per_cell_splits_each_combination_into_cells_of_consecutive_seeds():
    spec = grid.normalise_spec(
        {"grid": {"variant": ["lstm", "gru"], "length": [100]}, "seeds": 5, "seeds_per_cell": 2}
    )
    cells = grid.expand(spec)
    assert [(cell.id, cell.config.seeds) for cell in cells] == [
        ("adding_T100_lstm_s0-1", (0, 1)),
        ("adding_T100_lstm_s2-3", (2, 3)),
        ("adding_T100_lstm_s4", (4,)),
        ("adding_T100_gru_s0-1", (0, 1)),
        ("adding_T100_gru_s2-3", (2, 3)),
        ("adding_T100_gru_s4", (4,)),
    ]
    assert all(grid.cell_flags(cell.config)[-2:][0].startswith("--first_seed=") for cell in cells)
    whole = grid.expand({**spec, "seeds_per_cell": 5})
    assert [cell.id for cell in whole] == ["adding_T100_lstm", "adding_T100_gru"]


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_seeds_per_cell_must_be_a_whole_number_of_at_least_one(value):
    with pytest.raises(grid.GridError, match="seeds_per_cell must be a whole number"):
        grid.normalise_spec({"grid": {}, "seeds_per_cell": value})


def test_seeds_per_cell_is_refused_in_a_tuned_study():
    with pytest.raises(grid.GridError, match="untuned study"):
        grid.normalise_spec(
            {"grid": {"learning_rate": [1e-3, 3e-3]}, "tune": "learning_rate", "seeds_per_cell": 1}
        )


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


def test_a_regulariser_rate_is_a_grid_axis_and_can_be_tuned():
    spec = grid.normalise_spec(
        {
            "grid": {"variant": ["lstm"], "recurrent_dropout": [0.0, 0.25], "zoneout_c": [0.1]},
            "tune": "recurrent_dropout",
        }
    )
    cells = grid.expand(spec)
    assert [cell.id for cell in cells] == [
        "tune-adding_T50_lstm+zoneout_c0.1",
        "tune-adding_T50_lstm+zoneout_c0.1+recdrop0.25",
    ]
    assert [cell.config.rates.recurrent_dropout for cell in cells] == [0.0, 0.25]
    group = grid.tuning_groups(cells)[cells[0].group]
    evaluation = grid.eval_cell(spec, group, 0.25)
    assert evaluation.config.rates == Rates(zoneout_c=0.1, recurrent_dropout=0.25)
    assert "--recurrent_dropout=0.25" in grid.cell_flags(evaluation.config)


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


STALL = "experiments.run: error: no progress for 601 s while training adding T=5 rnn, steps 1-10"


class _FlakyBackend:
    """A local backend whose cells named in ``fail`` stall (exit 70, the watchdog's line) in
    their first ``times`` attempts."""

    def __init__(self, fail, times):
        self._local = backends.LocalBackend(2, stall_timeout=600)
        self.capacity, self.fail, self.times, self.calls = 2, fail, times, []

    def submit(self, flags, directory):
        name = Path(directory).name
        self.calls.append(name)
        if name in self.fail and self.calls.count(name) <= self.times:
            import concurrent.futures

            future = concurrent.futures.Future()
            future.set_result(backends.CellResult(70, STALL, 0.0))
            return future
        return self._local.submit(flags, directory)

    def stop(self):
        self._local.stop()

    def close(self):
        self._local.close()


TINY_GRID = {"variant": ["rnn", "gru"], "length": [5], "steps": [20], "eval_every": [10],
             "hidden_size": [4], "batch_size": [4], "eval_batch_size": [8]}  # fmt: skip


def _tiny_spec(**changes):
    return grid.normalise_spec({"grid": TINY_GRID, "seeds": 2, **changes})


class _SubmitOnly:
    """A backend that records what it is given and runs nothing (each cell fails)."""

    capacity = 1

    def __init__(self):
        self.calls = []

    def submit(self, flags, directory):
        import concurrent.futures

        self.calls.append(Path(directory).name)
        future = concurrent.futures.Future()
        future.set_result(backends.CellResult(1, "not run", 0.0))
        return future

    def stop(self):
        pass

    def close(self):
        pass


def _tuned(**grid_changes):
    spec = {"grid": {**TINY_GRID, "learning_rate": [1e-3, 3e-3], **grid_changes}, "seeds": 2,
            "tune": "learning_rate"}  # fmt: skip
    return grid.normalise_spec(spec)


@pytest.mark.parametrize(
    "wanted, added",
    [
        (_tuned(variant=["rnn", "gru", "lstm"]), ["variant + lstm"]),
        (_tuned(length=[5, 10], variant=["rnn", "gru", "lstm"]), ["variant + lstm", "length + 10"]),
        (_tuned(variant=["gru", "rnn"]), None),  # reordered: not an addition
        (_tuned(variant=["rnn"]), None),  # a value removed
        (_tuned(learning_rate=[1e-3, 3e-3, 1e-2]), None),  # the tuned axis: its picks are made
        (_tuned(hidden_size=[8]), None),
        (_tuned(hidden_size=[4, 8]), None),  # would join every cell's id: no old cell kept
        (_tuned(clip=[1.0]), None),  # a new axis changes every cell's settings
        ({**_tuned(), "seeds": 3}, None),
    ],
)
def test_a_study_may_grow_only_by_values_appended_to_untuned_axes(wanted, added):
    found = study.additions(_tuned(), wanted)
    assert found is None if added is None else sorted(found) == sorted(added)


def test_a_tuned_groups_evaluation_cell_goes_before_the_pending_tuning_cells(tmp_path, monkeypatch):
    spec = _tuned()
    cells = grid.expand(spec)  # rnn's two tuning cells, then gru's
    rnn_tuned = [c for c in cells if c.group == cells[0].group]
    evaluation = grid.eval_cell(spec, rnn_tuned, 1e-3)
    pending = [c for c in cells if c.group != cells[0].group]
    monkeypatch.setattr(engine, "current_cells", lambda *_: ([*pending, evaluation], {}, []))
    monkeypatch.setattr(study, "cell_state", lambda *_: "pending")
    backend = _SubmitOnly()
    engine.run_study(tmp_path, spec, backend, stop_requested=lambda: False, retries=0,
                     log=lambda line: None)  # fmt: skip
    assert backend.calls == [evaluation.id, *(c.id for c in pending)]


def test_picks_of_groups_a_sweep_does_not_know_are_kept(tmp_path):
    study.write_picks(tmp_path, {"a": {"picked": 1}})
    study.write_picks(tmp_path, {"b": {"picked": 2}, "a": {"picked": 3}})
    picks = json.loads((tmp_path / "tuning.json").read_text())["picks"]
    assert picks == {"a": {"picked": 3}, "b": {"picked": 2}}


def test_a_stalled_cell_is_failed_and_retried_once_and_the_others_go_on(tmp_path, environment):
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
    assert f"FAILED adding_T5_rnn (exit status 70): {STALL}; retrying" in lines
    assert f"FAILED adding_T5_rnn (exit status 70): {STALL} (giving up for this run)" in lines
    failure = study.read_failure(tmp_path, grid.expand(spec)[0])
    assert failure["exit_status"] == 70 and failure["message"] == STALL
    rows, summary = engine.status_rows(tmp_path)
    assert ("failed", "adding_T5_rnn", "0/2", f"exit status 70: {STALL}") in rows
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

    # A snapshot holds the records and nothing else, and a sweep on it has nothing to do.
    copy = tmp_path.parent / f"{tmp_path.name}-snapshot"
    assert study.snapshot(tmp_path, copy) == (2, 4)
    kept = sorted(str(p.relative_to(copy)) for p in copy.rglob("*") if p.is_file())
    assert all(p.endswith(".json") and "checkpoint" not in p for p in kept), kept
    assert not any(p.endswith("failure.json") for p in kept)
    assert engine.status_rows(copy)[1].startswith("2 cells: 2 done")
    backend = _FlakyBackend(fail=set(), times=0)
    try:
        outcome = engine.run_study(copy, spec, backend, stop_requested=lambda: False,
                                   log=lines.append)  # fmt: skip
    finally:
        backend.close()
    assert backend.calls == [] and outcome.done == ["adding_T5_rnn", "adding_T5_gru"]
    other = tmp_path.parent / f"{tmp_path.name}-other"
    study.open_study(other, _tiny_spec(seeds=3))
    with pytest.raises(study.StudyMismatchError):
        study.snapshot(tmp_path, other)

    # The study grows by a variant (--grow): only the new cell is submitted, the finished
    # ones keep their records, and a snapshot of the grown study refreshes the old one.
    grown = _tiny_spec(grid={**TINY_GRID, "variant": ["rnn", "gru", "lstm"]})
    with pytest.raises(study.StudyMismatchError, match="or --grow to add them"):
        study.open_study(tmp_path, grown)
    assert study.open_study(tmp_path, grown, grow=True) == ["variant + lstm"]
    assert study.read_spec(tmp_path) == grown
    backend = _SubmitOnly()
    engine.run_study(tmp_path, grown, backend, stop_requested=lambda: False, retries=0,
                     log=lines.append)  # fmt: skip
    assert backend.calls == ["adding_T5_lstm"]
    assert study.snapshot(tmp_path, copy) == (3, 4)  # the new cell: its cell.json, no records
    assert study.read_spec(copy) == grown
