"""Live training metrics for TensorBoard: ``tensorboard --logdir=WORKDIR/tensorboard``.

Written with tensorboardX, which writes TensorBoard's event files with protobuf alone (clu's
summary writer needs TensorFlow), through its synchronous ``EventsWriter`` rather than
``SummaryWriter``, whose queue and thread may still hold the last evaluation when a run
ends or is killed. One TensorBoard *run* per variant (its label, task and
length: ``WORKDIR/tensorboard/{task}_T{length}_{label}``), one series per seed and metric:
``held_out_loss/seed{S}``, ``accuracy/seed{S}``, ``train_loss/seed{S}``, at each
evaluation's step. The event files are flushed after every evaluation, so TensorBoard shows
a run while it trains.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["SERIES", "tensorboard_writer"]

SERIES = {"loss": "held_out_loss", "accuracy": "accuracy", "train_loss": "train_loss"}
"""The history point's field written, and its TensorBoard tag (before ``/seed{S}``)."""

# One writer per log directory for the life of the process: a resumed or repeated run in
# the same process appends to the same event file instead of opening another.
_writers: dict[str, object] = {}


def tensorboard_writer(logdir: str | os.PathLike) -> Callable[[int, Sequence[int], list], None]:
    """``write(step, seeds, points)``: each seed's point (a history dict) under ``logdir``."""
    logdir = str(Path(logdir))

    def write(step: int, seeds: Sequence[int], points: list) -> None:
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        if logdir not in _writers:
            Path(logdir).mkdir(parents=True, exist_ok=True)
            _writers[logdir] = EventsWriter(os.path.join(logdir, "events"))
        writer, now = _writers[logdir], time.time()
        for seed, point in zip(seeds, points, strict=True):
            for field, tag in SERIES.items():
                if point.get(field) is not None:
                    summary = scalar(f"{tag}/seed{seed}", float(point[field]))
                    writer.write_event(Event(wall_time=now, step=step, summary=summary))
        writer.flush()

    return write
