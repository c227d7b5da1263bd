"""The experiment loop: records, resume after interruption, determinism, corrupt files."""

import dataclasses
import errno
import json

import numpy as np
import pytest

import lstmx
from experiments.run import loop as experiment
from experiments.run import model
from experiments.shared import records as results
from experiments.shared import resume
from experiments.shared.regularization import Rates, nest_rates

CONFIG = model.Config(
    task="adding",
    variant="gru",
    length=8,
    steps=60,
    batch_size=16,
    hidden_size=8,
    optimizer="adam",
    learning_rate=1e-2,
    eval_every=20,
    eval_batch_size=64,
    seeds=(0, 1),
)


def _quiet(_line):
    pass


def _records(workdir, config=CONFIG):
    paths = [
        results.record_path(workdir, config.task, config.length, config.variant, seed)
        for seed in config.seeds
    ]
    return [json.loads(path.read_text()) for path in paths]


def _without_times(record):
    record = dict(record)
    for key in ("wall_time", "steps_per_second", "versions"):
        record.pop(key)
    record["history"] = [
        {k: v for k, v in p.items() if k != "wall_time"} for p in record["history"]
    ]
    record["final"] = {k: v for k, v in record["final"].items() if k != "wall_time"}
    return record


def test_record_format(tmp_path):
    written = experiment.run_variant(CONFIG, tmp_path, log=_quiet)
    assert len(written) == 2
    record = _records(tmp_path)[0]
    assert record["format"] == results.RECORD_FORMAT
    assert (record["task"], record["variant"], record["seed"], record["length"]) == (
        "adding",
        "gru",
        0,
        8,
    )
    assert record["config"] == {**CONFIG.to_dict()}
    assert record["status"] == "finished" and record["diverged_step"] is None
    assert [p["step"] for p in record["history"]] == [20, 40, 60]
    assert set(record["history"][0]) == {"step", "loss", "accuracy", "train_loss", "wall_time"}
    assert record["final"] == record["history"][-1]
    assert record["baseline"] == pytest.approx(1 / 6)
    assert record["num_params"] == 3 * 8 * (2 + 8) + 6 * 8 + 9
    assert record["steps_per_second"] > 0 and record["wall_time"] > 0
    assert {"jax", "flax", "optax", "lstmx", "python"} <= set(record["versions"])
    # The checkpoint is removed once the records are written.
    assert not results.checkpoint_path(tmp_path, "adding", 8, "gru").exists()


def test_same_flags_same_records(tmp_path):
    experiment.run_variant(CONFIG, tmp_path / "a", log=_quiet)
    experiment.run_variant(CONFIG, tmp_path / "b", log=_quiet)
    first, second = _records(tmp_path / "a"), _records(tmp_path / "b")
    assert [_without_times(r) for r in first] == [_without_times(r) for r in second]


def test_interrupted_run_resumes_to_the_same_records(tmp_path):
    experiment.run_variant(CONFIG, tmp_path / "whole", log=_quiet)
    interrupted = tmp_path / "interrupted"
    assert experiment.run_variant(CONFIG, interrupted, log=_quiet, stop_after=20) == []
    assert results.checkpoint_path(interrupted, "adding", 8, "gru").exists()
    lines = []
    experiment.run_variant(CONFIG, interrupted, log=lines.append)
    assert lines[0] == "resumed from step 20 (adding_T8_gru.msgpack)"
    assert [_without_times(r) for r in _records(interrupted)] == [
        _without_times(r) for r in _records(tmp_path / "whole")
    ]


def test_finished_seeds_are_skipped_untouched(tmp_path):
    experiment.run_variant(CONFIG, tmp_path, log=_quiet)
    path = results.record_path(tmp_path, "adding", 8, "gru", 0)
    before = path.stat().st_mtime_ns, path.read_bytes()
    lines = []
    assert experiment.run_variant(CONFIG, tmp_path, log=lines.append) == []
    assert "all seeds finished, skipping" in lines[0]
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before
    # A third seed added later trains alone and leaves the first two alone.
    more = dataclasses.replace(CONFIG, seeds=(0, 1, 2))
    written = experiment.run_variant(more, tmp_path, log=_quiet)
    assert [r["seed"] for r in written] == [2]
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_other_settings_in_the_same_workdir_are_refused(tmp_path):
    experiment.run_variant(CONFIG, tmp_path, log=_quiet)
    with pytest.raises(resume.ConfigMismatchError, match=r"hidden_size: 8 on disk vs 16 now"):
        experiment.run_variant(dataclasses.replace(CONFIG, hidden_size=16), tmp_path, log=_quiet)


def test_corrupt_record_and_checkpoint_are_set_aside_not_lost(tmp_path):
    experiment.run_variant(CONFIG, tmp_path, log=_quiet, stop_after=20)
    checkpoint = results.checkpoint_path(tmp_path, "adding", 8, "gru")
    checkpoint.write_bytes(b"\x00garbage")
    record = results.record_path(tmp_path, "adding", 8, "gru", 1)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text('{"format": "lstmx.record/1", "task": ')
    lines = []
    written = experiment.run_variant(CONFIG, tmp_path, log=lines.append)
    assert len(written) == 2
    assert any("not a readable JSON record" in line and "Set aside" in line for line in lines)
    assert any("unusable checkpoint" in line for line in lines)
    set_aside = sorted(p.name for p in tmp_path.rglob("*.corrupt-*"))
    assert len(set_aside) == 2
    assert (tmp_path / "records" / set_aside[1]).read_text().startswith('{"format"')


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    results.write_json_atomic(tmp_path / "x.json", {"a": 1})
    results.write_json_atomic(tmp_path / "x.json", {"a": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 2}


def test_killed_between_two_record_writes_resumes_from_the_final_checkpoint(tmp_path, monkeypatch):
    experiment.run_variant(CONFIG, tmp_path / "whole", log=_quiet)
    interrupted = tmp_path / "interrupted"
    real_write = results.write_json_atomic
    writes = []

    def write_then_die(path, obj):
        if writes:
            raise KeyboardInterrupt  # killed before the second seed's record
        writes.append(path)
        real_write(path, obj)

    monkeypatch.setattr(results, "write_json_atomic", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_variant(CONFIG, interrupted, log=_quiet)
    monkeypatch.setattr(results, "write_json_atomic", real_write)
    first = results.record_path(interrupted, "adding", 8, "gru", 0)
    before = first.stat().st_mtime_ns
    lines = []
    written = experiment.run_variant(CONFIG, interrupted, log=lines.append)
    assert [r["seed"] for r in written] == [1]
    assert lines == ["resumed from step 60 (adding_T8_gru.msgpack)"]
    assert first.stat().st_mtime_ns == before
    assert not list(interrupted.rglob("*.corrupt-*"))
    resumed = _records(interrupted)
    assert all(r["steps_per_second"] > 0 for r in resumed)
    assert [_without_times(r) for r in resumed] == [
        _without_times(r) for r in _records(tmp_path / "whole")
    ]


@pytest.mark.parametrize(
    "failing, code",
    [("checkpoints", errno.ENOSPC), ("records", errno.EACCES)],
    ids=["checkpoint_disk_full", "record_permission_denied"],
)
def test_a_failed_write_keeps_what_was_on_disk_and_the_next_run_resumes(
    tmp_path, monkeypatch, failing, code
):
    experiment.run_variant(CONFIG, tmp_path / "whole", log=_quiet)
    workdir = tmp_path / "faulty"
    # A checkpoint at step 20 from an earlier, interrupted run.
    experiment.run_variant(CONFIG, workdir, log=_quiet, stop_after=20)
    checkpoint = results.checkpoint_path(workdir, "adding", 8, "gru")
    checkpoint_before = checkpoint.read_bytes()
    real_write = results.write_atomic

    def failing_write(path, data):
        if path.parent.name == failing:
            raise OSError(code, f"[Errno {code}] simulated")
        real_write(path, data)

    monkeypatch.setattr(results, "write_atomic", failing_write)
    with pytest.raises(resume.WriteError) as caught:
        experiment.run_variant(CONFIG, workdir, log=_quiet)
    message = str(caught.value)
    assert "\n" not in message and f"could not write {workdir / failing}" in message
    assert "run the same command to resume" in message
    assert "intact" in message
    assert not list(workdir.rglob("*.tmp"))  # the temporary file is gone
    if failing == "checkpoints":
        assert checkpoint.read_bytes() == checkpoint_before  # the step-20 checkpoint is intact
        assert not (workdir / "records").exists()
    else:
        assert results.read_checkpoint_extra(checkpoint)["history"][-1][0]["step"] == 60
    monkeypatch.setattr(results, "write_atomic", real_write)
    lines = []
    experiment.run_variant(CONFIG, workdir, log=lines.append)
    resumed_at = 20 if failing == "checkpoints" else 60
    assert lines[0] == f"resumed from step {resumed_at} (adding_T8_gru.msgpack)"
    assert [_without_times(r) for r in _records(workdir)] == [
        _without_times(r) for r in _records(tmp_path / "whole")
    ]


# Recurrent regularisers (zoneout, variational dropout) ---------------------------------

RATES = ("zoneout_h", "zoneout_c", "input_dropout", "recurrent_dropout")
# Recurrent dropout on CONFIG: its expectation is the plain cell; the plain trainer is
# CONFIG's, compiled once for the whole module.
REGULARIZED = dataclasses.replace(CONFIG, rates=Rates(recurrent_dropout=0.5))


def test_zero_rates_are_the_plain_run():
    zeros = dataclasses.replace(CONFIG, rates=Rates(**dict.fromkeys(RATES, 0.0)))
    assert zeros == CONFIG and zeros.label == "gru" and not zeros.regularized
    assert not set(RATES) & set(zeros.to_dict())  # records as before the rates existed
    assert "rates" not in zeros.to_dict()
    assert not isinstance(model.make_cell(zeros).options, lstmx.RegularizedOptions)
    assert isinstance(model.make_cell(REGULARIZED).options, lstmx.RegularizedOptions)
    assert REGULARIZED.label == "gru+recdrop0.5"
    assert REGULARIZED.to_dict()["recurrent_dropout"] == 0.5  # a flat record key, as before
    some = dataclasses.replace(
        CONFIG, variant="lstm", rates=Rates(zoneout_h=0.1, recurrent_dropout=0.1)
    )
    assert some.label == "lstm+zoneout_h0.1+recdrop0.1"
    every = dataclasses.replace(
        some,
        init="chrono",
        rates={"zoneout_h": 0.1, "zoneout_c": 0.1, "input_dropout": 0.2, "recurrent_dropout": 0.1},
    )
    assert every.rates == Rates(0.1, 0.1, 0.2, 0.1)  # a dict (e.g. from JSON) is converted
    assert every.label == "lstm+chrono+zoneout0.1+indrop0.2+recdrop0.1"
    # A record's flat settings make the same Config again.
    assert model.Config(**nest_rates(every.to_dict())) == every
    with pytest.raises(TypeError, match="rates has no zoneout; the rates are zoneout_h"):
        dataclasses.replace(CONFIG, rates={"zoneout": 0.1})


def test_training_draws_masks_and_evaluation_runs_the_expectation():
    # Variational dropout's expectation is the plain cell: same evaluation, other training.
    # (20 steps: the loop's chunk, so the other tests reuse these compiled trainers.)
    plain_trainer, dropped_trainer = model.make_trainer(CONFIG), model.make_trainer(REGULARIZED)
    evaluations = [t.evaluate(t.init()) for t in (plain_trainer, dropped_trainer)]
    np.testing.assert_allclose(evaluations[0]["loss"], evaluations[1]["loss"], rtol=1e-6, atol=1e-7)
    _, plain_losses = plain_trainer.train(plain_trainer.init(), 20)
    _, dropped_losses = dropped_trainer.train(dropped_trainer.init(), 20)
    _, again = dropped_trainer.train(dropped_trainer.init(), 20)
    assert not np.allclose(plain_losses[0], dropped_losses[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(dropped_losses, again)  # a pure function of (seed, step)


def test_regularized_run_is_filed_under_its_label_and_resumes_to_the_same_records(tmp_path):
    label = REGULARIZED.label
    experiment.run_variant(REGULARIZED, tmp_path / "whole", log=_quiet)
    interrupted = tmp_path / "interrupted"
    experiment.run_variant(REGULARIZED, interrupted, log=_quiet, stop_after=20)
    assert results.checkpoint_path(interrupted, "adding", 8, label).exists()
    experiment.run_variant(REGULARIZED, interrupted, log=_quiet)
    paths = [results.record_path(tmp_path / "whole", "adding", 8, label, s) for s in (0, 1)]
    whole = [json.loads(path.read_text()) for path in paths]
    resumed = [json.loads(path.read_text()) for path in (interrupted / "records").glob("*.json")]
    assert sorted(map(json.dumps, map(_without_times, resumed))) == sorted(
        map(json.dumps, map(_without_times, whole))
    )
    record = whole[0]
    assert record["label"] == label and record["variant"] == "gru"
    assert record["config"]["recurrent_dropout"] == 0.5
    assert "zoneout_h" not in record["config"]  # rates of 0 are left out
    # The plain run shares the workdir: its own files, no mismatch.
    experiment.run_variant(CONFIG, tmp_path / "whole", log=_quiet)
    assert results.record_path(tmp_path / "whole", "adding", 8, "gru", 0).exists()
