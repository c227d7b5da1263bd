"""One definition of a valid record: what compare would skip, run does not count as finished.

Each corruption of a finished record (as a hand edit or a bad tool would make it) is set
aside by experiments.run, which trains that seed again; compare skips it with a reason.
"""

import dataclasses
import json

import chex
import jax
import numpy as np
import pytest

from experiments.compare import report
from experiments.run import loop, model
from experiments.shared import records

CORRUPTIONS = {
    "final_loss_a_string": lambda r: r["final"].update(loss="0.5"),
    "final_empty": lambda r: r.update(final={}),
    "length_a_string": lambda r: r.update(length="10"),
    "config_a_string": lambda r: r.update(config="lr=0.001"),
    "history_not_a_list": lambda r: r.update(history={}),
    "format_unknown": lambda r: r.update(format="other/1"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = model.Config(task="adding", variant="rnn", length=4, steps=4, eval_every=2,
                          batch_size=4, eval_batch_size=8, hidden_size=3, seeds=(0, 1))  # fmt: skip
    workdir = tmp_path_factory.mktemp("trained")
    loop.run_variant(config, workdir, log=lambda line: None)
    return config, workdir


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_a_record_compare_skips_is_set_aside_and_retrained_by_run(trained, corruption, tmp_path):
    config, source = trained
    for path in (source / "records").iterdir():
        (tmp_path / "records").mkdir(exist_ok=True)
        (tmp_path / "records" / path.name).write_bytes(path.read_bytes())
    target = tmp_path / "records" / "adding_T4_rnn_seed1.json"
    good = json.loads(target.read_text())
    bad = json.loads(target.read_text())
    CORRUPTIONS[corruption](bad)
    target.write_text(json.dumps(bad))
    untouched = (tmp_path / "records" / "adding_T4_rnn_seed0.json").read_bytes()

    records, problems = report.load_records(tmp_path)
    assert len(records) == 1 and len(problems) == 1 and "seed1" in problems[0]

    lines = []
    written = loop.run_variant(config, tmp_path, log=lines.append)
    assert [r["seed"] for r in written] == [1]
    assert any("not a valid lstmx record" in line and "rerunning" in line for line in lines)
    assert list((tmp_path / "records").glob("adding_T4_rnn_seed1.json.corrupt-*"))
    again = json.loads(target.read_text())

    def numbers(record):  # every evaluation, without its wall time
        return [{k: v for k, v in p.items() if k != "wall_time"} for p in record["history"]]

    # The retrained seed trains alone, a program of one seed where the original had two:
    # XLA may round its batched products differently (1 ulp of the held-out loss seen on a
    # 2-core AMD EPYC), so equal to float32 rounding, not bit for bit.
    again_numbers, good_numbers = numbers(again), numbers(good)
    assert [sorted(p) for p in again_numbers] == [sorted(p) for p in good_numbers]
    chex.assert_trees_all_close(again_numbers, good_numbers, rtol=1e-6, atol=0)
    assert (tmp_path / "records" / "adding_T4_rnn_seed0.json").read_bytes() == untouched
    records, problems = report.load_records(tmp_path)
    assert len(records) == 2 and not problems


def test_a_checkpoint_with_one_flipped_byte_is_set_aside_and_the_seeds_start_again(
    trained, tmp_path
):
    config, reference = trained
    loop.run_variant(config, tmp_path, log=lambda line: None, stop_after=2)
    (checkpoint,) = (tmp_path / "checkpoints").iterdir()
    # Flip the lowest bit of one weight, inside an array's raw bytes: the file still
    # decodes, to slightly different parameters.
    data = bytearray(checkpoint.read_bytes())
    state = model.make_trainer(config).init()
    restored = records.load_checkpoint(checkpoint, jax.device_get(state))[0]
    at = data.find(np.asarray(restored.params.cell.w_h).tobytes())
    assert at > 0
    data[at] ^= 0x01
    checkpoint.write_bytes(bytes(data))

    lines = []
    loop.run_variant(config, tmp_path, log=lines.append)
    assert any("unusable checkpoint" in line and "Set aside" in line for line in lines), lines
    assert not any("resumed from step" in line for line in lines)
    assert list((tmp_path / "checkpoints").glob("*.corrupt-*"))
    for seed in (0, 1):
        name = f"adding_T4_rnn_seed{seed}.json"
        got = json.loads((tmp_path / "records" / name).read_text())
        want = json.loads((reference / "records" / name).read_text())
        assert [p["loss"] for p in got["history"]] == [p["loss"] for p in want["history"]]


def test_a_checkpoint_of_other_seeds_is_set_aside_not_overwritten(trained, tmp_path):
    config, _ = trained
    loop.run_variant(config, tmp_path, log=lambda line: None, stop_after=2)
    (checkpoint,) = (tmp_path / "checkpoints").iterdir()
    saved = checkpoint.read_bytes()
    lines = []
    other = dataclasses.replace(config, seeds=(0,))
    loop.run_variant(other, tmp_path, log=lines.append, stop_after=2)
    assert any("holds other seeds ([0, 1]); set aside as" in line for line in lines), lines
    (kept,) = (tmp_path / "checkpoints").glob("*.other-seeds-*")
    assert kept.read_bytes() == saved


def test_temporaries_of_a_killed_write_are_removed_once_the_lock_is_held(trained, tmp_path):
    config, _ = trained
    orphans = [
        tmp_path / "checkpoints" / ".adding_T4_rnn.msgpack.x1y2z3.tmp",
        tmp_path / "records" / ".adding_T4_rnn_seed0.json.a1b2c3.tmp",
    ]
    for path in orphans:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a file")
    lines = []
    loop.run_variant(config, tmp_path, log=lines.append, stop_after=2)
    assert not any(path.exists() for path in orphans)
    assert "removed 2 temporary file(s) left by an interrupted write" in lines
