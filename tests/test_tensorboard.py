"""experiments.run writes TensorBoard event files that read back as the records' numbers.

The event files are read with a TFRecord reader written from the format (length, CRC,
payload, CRC) and tensorboardX's own ``Event`` protobuf, not with anything of lstmx's.
"""

import json
import struct

import pytest

from experiments.run import loop, model


def _events(path):
    from tensorboardX.proto import event_pb2

    data, at, events = path.read_bytes(), 0, []
    while at < len(data):
        (length,) = struct.unpack("<Q", data[at : at + 8])
        payload = data[at + 12 : at + 12 + length]  # after the length and its CRC
        events.append(event_pb2.Event.FromString(payload))
        at += 12 + length + 4
    return events


def _scalars(logdir):
    values = {}
    for path in sorted(logdir.glob("events.out.tfevents.*")):
        for event in _events(path):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append((event.step, value.simple_value))
    return values


def test_every_evaluation_of_every_seed_is_in_the_event_files(tmp_path):
    config = model.Config(task="adding", variant="gru", length=4, steps=6, eval_every=2,
                          batch_size=4, eval_batch_size=8, hidden_size=3, seeds=(0, 1))  # fmt: skip
    loop.run_variant(config, tmp_path, log=lambda line: None)
    scalars = _scalars(tmp_path / "tensorboard" / "adding_T4_gru")
    assert set(scalars) == {
        f"{tag}/seed{seed}"
        for tag in ("held_out_loss", "accuracy", "train_loss")
        for seed in (0, 1)
    }
    for seed in (0, 1):
        record = json.loads((tmp_path / "records" / f"adding_T4_gru_seed{seed}.json").read_text())
        want = [(p["step"], p["loss"]) for p in record["history"]]
        got = scalars[f"held_out_loss/seed{seed}"]
        assert [step for step, _ in got] == [step for step, _ in want] == [2, 4, 6]
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)


def test_no_event_files_without_tensorboard(tmp_path):
    config = model.Config(task="adding", variant="gru", length=4, steps=6, eval_every=2,
                          batch_size=4, eval_batch_size=8, hidden_size=3, seeds=(0, 1))  # fmt: skip
    loop.run_variant(config, tmp_path, log=lambda line: None, tensorboard=False)
    assert not (tmp_path / "tensorboard").exists()
