"""One variant of the synthetic-task comparison through the shared resumable loop.

:func:`run_variant` is what ``python -m experiments.run`` calls once per variant: it
describes the run (:class:`TaskExperiment`, an :class:`experiments.shared.resume.Experiment`)
and hands it to
:func:`experiments.shared.resume.run`, which locks the workdir, skips finished seeds,
resumes from a checkpoint, stops gracefully on SIGTERM/SIGINT and writes the records
(format in :mod:`experiments.shared.records`).

A state-tracking record also holds ``chance`` (1 / classes) and ``test``: ``lengths``,
``accuracy`` (one per length, after training), ``score`` (their mean, Delétang et al.'s
score) and ``batch_size`` (strings per length).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from experiments.run.model import (
    Config,
    make_tester,
    make_trainer,
    parse_test_lengths,
    task_baseline,
    task_chance,
)
from experiments.shared import metrics, records, resume
from experiments.shared.resume import ConfigMismatchError

__all__ = ["ConfigMismatchError", "TaskExperiment", "run_variant"]


def _history_points(chunk: resume.Chunk, wall_time: float) -> list[dict]:
    return [
        {
            "step": chunk.step,
            "loss": float(chunk.metrics["loss"][s]),
            "accuracy": float(chunk.metrics["accuracy"][s]),
            "train_loss": float(np.mean(chunk.train_losses[:, s])),
            "wall_time": round(wall_time, 3),
        }
        for s in range(chunk.train_losses.shape[1])
    ]


def _clock(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS`` (``?`` when unknown)."""
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _progress(
    config: Config, position: tuple[int, int] | None, step: int, points: list[dict], rate: float
) -> str:
    """One line per evaluation: which variant of how many, the step, the median training and
    held-out loss over seeds (held-out: with its range), accuracy, the chunk's steps/s,
    training time so far and the time left at that rate."""
    losses = np.array([p["loss"] for p in points])
    accuracy = np.array([p["accuracy"] for p in points])
    train = np.array([p["train_loss"] for p in points])
    elapsed = points[0]["wall_time"]
    left = (config.steps - step) / rate if rate > 0 else float("nan")
    where = f"[{position[0]}/{position[1]}] " if position else ""
    return (
        f"{where}{config.task} T={config.length} {config.label:>8} step {step:>6}/{config.steps}  "
        f"train {np.nanmedian(train):.4f}  "
        f"loss {np.nanmedian(losses):.4f} [{np.nanmin(losses):.4f}, {np.nanmax(losses):.4f}]  "
        f"acc {np.nanmedian(accuracy):.3f}  {rate:.1f} steps/s  "
        f"{_clock(elapsed)} elapsed, {_clock(left)} left"
    )


def _record(config: Config, outcome: resume.Outcome, index: int) -> dict:
    """The record of seed ``outcome.seeds[index]`` (format in :mod:`experiments.shared.records`)."""
    trained = dataclasses.replace(config, seeds=outcome.seeds)
    diverged_step = int(outcome.state.diverged_step[index])
    history = [point[index] for point in outcome.history]
    record = {
        "format": records.RECORD_FORMAT,
        "task": config.task,
        "length": config.length,
        "variant": config.variant,
        "label": config.label,
        "seed": outcome.seeds[index],
        "config": trained.to_dict(),
        "baseline": task_baseline(config.task, config.length, config.modulus),
        "num_params": outcome.num_params,
        "history": history,
        "final": history[-1],
        "status": "diverged" if diverged_step >= 0 else "finished",
        "diverged_step": diverged_step if diverged_step >= 0 else None,
        "steps_per_second": outcome.steps_per_second,
        "wall_time": outcome.wall_time,
        "versions": records.software_versions(),
    }
    if config.state_tracking:
        accuracy = [float(a) for a in outcome.test["accuracy"][index]]
        record["chance"] = task_chance(config.task, config.modulus)
        record["test"] = {
            "lengths": list(parse_test_lengths(config.test_lengths)),
            "accuracy": accuracy,
            "score": float(np.mean(accuracy)),
            "batch_size": config.test_batch_size,
        }
    return record


def _test(config: Config, state, seeds: tuple[int, ...]) -> dict:
    """Accuracy ``[S, lengths]`` of every seed on every test length (state tracking)."""
    test = make_tester(dataclasses.replace(config, seeds=seeds))
    return {"accuracy": test(state.params)}


@dataclasses.dataclass
class TaskExperiment(resume.Experiment):
    """The resumable loop's view of one variant's run (all its seeds) in ``workdir``.

    Attributes:
      config: the run's settings.
      workdir: where records and checkpoints live.
      tensorboard: also write each evaluation to ``workdir/tensorboard``
        (:mod:`experiments.shared.metrics`).
      position: ``(k, n)``: this is variant k of n (shown in the progress lines).
      advance: ``advance(name, step, steps)`` after each evaluation moves a progress bar
        (:mod:`experiments.shared.progress`).
    """

    config: Config
    workdir: Path
    tensorboard: bool = True
    position: tuple[int, int] | None = None
    advance: Callable[[str, int, int], None] | None = None

    def __post_init__(self):
        config = self.config
        self.workdir = Path(self.workdir)
        self.name = f"{config.task} T={config.length} {config.label}"
        self.settings = config.to_dict()
        self.seeds = config.seeds
        self.steps = config.steps
        self.eval_every = config.eval_every
        self.checkpoint = records.checkpoint_path(
            self.workdir, config.task, config.length, config.label
        )
        self.tests_after_training = config.state_tracking
        self._writer = None
        if self.tensorboard:
            tensorboard_dir = self.workdir / "tensorboard" / self.checkpoint.stem
            self._writer = metrics.tensorboard_writer(tensorboard_dir)

    def record_path(self, seed: int) -> Path:
        config = self.config
        return records.record_path(self.workdir, config.task, config.length, config.label, seed)

    def make_trainer(self, seeds: tuple[int, ...]):
        return make_trainer(dataclasses.replace(self.config, seeds=seeds))

    def history_points(self, chunk: resume.Chunk, wall_time: float) -> list[dict]:
        return _history_points(chunk, wall_time)

    def progress(self, step: int, points: list[dict], steps_per_second: float) -> str:
        return _progress(self.config, self.position, step, points, steps_per_second)

    def make_record(self, outcome: resume.Outcome, index: int) -> dict:
        return _record(self.config, outcome, index)

    def test(self, state, seeds: tuple[int, ...]) -> dict:
        return _test(self.config, state, seeds)

    def observe(self, step: int, seeds: tuple[int, ...], points: list[dict]) -> None:
        if self._writer is not None:
            self._writer(step, seeds, points)
        if self.advance is not None:
            where = f"[{self.position[0]}/{self.position[1]}] " if self.position else ""
            self.advance(where + self.name, step, self.config.steps)


def run_variant(
    config: Config,
    workdir: str | os.PathLike,
    *,
    checkpoint_every: int = 1,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    tensorboard: bool = True,
    position: tuple[int, int] | None = None,
    advance: Callable[[str, int, int], None] | None = None,
) -> list[dict]:
    """Trains the seeds of ``config`` that have no record yet and writes their records.

    Args:
      config: the run's settings.
      workdir: where records and checkpoints live.
      checkpoint_every: evaluations between checkpoints.
      log: receives one progress line per evaluation.
      stop_after: stop (as if killed) after this many steps of this call; for tests.
      tensorboard: also write each evaluation for TensorBoard (``workdir/tensorboard``).
      position: ``(k, n)`` when this is variant k of n, for the progress lines.
      advance: ``advance(name, step, steps)`` after each evaluation, for a progress bar.

    Returns:
      The records written by this call (empty if every seed was already finished).

    Raises:
      ConfigMismatchError, WorkdirLockedError, PreemptedError, WriteError: see
        :func:`experiments.shared.resume.run`.
    """
    result = resume.run(
        TaskExperiment(config, workdir, tensorboard, position, advance),
        checkpoint_every=checkpoint_every,
        log=log,
        stop_after=stop_after,
    )
    return result.records
