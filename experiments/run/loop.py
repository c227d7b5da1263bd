"""The experiment loop: train one variant's seeds, evaluate, checkpoint, write records.

:func:`run_variant` is what ``python -m experiments.run`` calls once per variant. It is
safe to kill at any moment and start again with the same settings: finished seeds are
skipped without touching their records, an unfinished run continues from its last
checkpoint, and the records end up as they would have without the interruption
(training is a pure function of seed and step, see :mod:`lstmx.training`).

Under ``jax.distributed`` (several processes training one program together) every
process runs this same loop on the same work directory, which must be a filesystem all of
them see; only process 0 writes records and checkpoints and sets corrupt files aside.
Arrays come to the host through ``process_allgather``, a collective every process joins.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from experiments.shared import records
from experiments.shared.training import Config, make_trainer, task_baseline

__all__ = ["ConfigMismatchError", "run_variant", "settings_that_differ"]

# Settings that may change between an interrupted run and its resumption without
# changing the numbers.
_NEUTRAL_SETTINGS = ("seeds",)


class ConfigMismatchError(ValueError):
    """The work directory holds results of the same run name with other settings."""


def settings_that_differ(recorded: dict, config: Config) -> list[str]:
    """Names the settings (but the neutral ones) in which ``recorded`` differs from ``config``."""
    wanted = config.to_dict()
    return [
        f"{name}: {recorded.get(name)!r} on disk vs {wanted[name]!r} now"
        for name in wanted
        if name not in _NEUTRAL_SETTINGS and recorded.get(name) != wanted[name]
    ]


def _check_same_settings(where: Path, recorded: dict, config: Config) -> None:
    differences = settings_that_differ(recorded, config)
    if differences:
        raise ConfigMismatchError(
            f"{where} was made with other settings ({'; '.join(differences)}); "
            "use another --workdir or the same settings."
        )


def _writes_files() -> bool:
    """Whether this process writes: the only one, or process 0 of several."""
    return jax.process_index() == 0


def _to_host(tree):
    """A numpy copy of a pytree of arrays; with several processes, a collective gather."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.device_get(tree)


def _set_aside(path: Path) -> str:
    if not _writes_files():
        return "(by process 0)"
    return records.set_aside(path).name


def _finished_seeds(workdir: Path, config: Config, log: Callable[[str], None]) -> set[int]:
    """Seeds with a valid record made with the same settings; corrupt ones are set aside."""
    finished = set()
    for seed in config.seeds:
        path = records.record_path(workdir, config.task, config.length, config.label, seed)
        if not path.exists():
            continue
        try:
            record = records.read_record(path)
        except ValueError as error:
            log(f"warning: {error} Set aside as {_set_aside(path)}; rerunning.")
            continue
        _check_same_settings(path, record["config"], config)
        finished.add(seed)
    return finished


def _record(config, seed, index, history, final, diverged_step, steps_per_second, wall_time):
    return {
        "format": records.RECORD_FORMAT,
        "task": config.task,
        "length": config.length,
        "variant": config.variant,
        "label": config.label,
        "seed": seed,
        "config": config.to_dict(),
        "baseline": task_baseline(config.task, config.length),
        "num_params": None,  # filled by the caller
        "history": [point[index] for point in history],
        "final": final[index],
        "status": "diverged" if diverged_step[index] >= 0 else "finished",
        "diverged_step": int(diverged_step[index]) if diverged_step[index] >= 0 else None,
        "steps_per_second": steps_per_second,
        "wall_time": wall_time,
        "versions": records.software_versions(),
    }


def _format_progress(config: Config, step: int, point: list[dict], rate: float) -> str:
    losses = np.array([p["loss"] for p in point])
    accuracy = np.array([p["accuracy"] for p in point])
    return (
        f"{config.task} T={config.length} {config.label:>8} step {step:>6}/{config.steps}  "
        f"loss {np.nanmedian(losses):.4f} [{np.nanmin(losses):.4f}, {np.nanmax(losses):.4f}]  "
        f"acc {np.nanmedian(accuracy):.3f}  {rate:.1f} steps/s"
    )


def run_variant(
    config: Config,
    workdir: str | os.PathLike,
    *,
    checkpoint_every: int = 1,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> list[dict]:
    """Trains the seeds of ``config`` that have no record yet and writes their records.

    Args:
      config: the run's settings.
      workdir: where records and checkpoints live.
      checkpoint_every: evaluations between checkpoints.
      log: receives one progress line per evaluation.
      stop_after: stop (as if killed) after this many steps of this call; for tests.

    Returns:
      The records written by this call (empty if every seed was already finished).

    Raises:
      ConfigMismatchError: the work directory holds this run name with other settings.
    """
    workdir = Path(workdir)
    finished = _finished_seeds(workdir, config, log)
    todo = tuple(seed for seed in config.seeds if seed not in finished)
    if not todo:
        log(f"{config.task} T={config.length} {config.label}: all seeds finished, skipping.")
        return []
    checkpoint = records.checkpoint_path(workdir, config.task, config.length, config.label)
    # A checkpoint holds the seeds it was made for. A run killed between two of its record
    # writes resumes all of them and writes only the records still missing.
    saved_seeds = records.checkpoint_seeds(checkpoint)
    train_seeds = todo
    if saved_seeds is not None and set(todo) <= set(saved_seeds) <= set(config.seeds):
        train_seeds = tuple(saved_seeds)
    config = dataclasses.replace(config, seeds=train_seeds)
    trainer = make_trainer(config)

    # chunk_rates: [steps/s, whether the chunk was the first of a call (compiling)].
    state, history, wall_time, chunk_rates = trainer.init(), [], 0.0, []
    if checkpoint.exists():
        try:
            state, extra = records.load_checkpoint(checkpoint, state)
        except ValueError as error:
            log(f"warning: {error} Set aside as {_set_aside(checkpoint)}.")
        else:
            _check_same_settings(checkpoint, extra["config"], config)
            if extra["config"]["seeds"] != list(config.seeds):
                log(f"warning: {checkpoint} holds other seeds; starting afresh.")
                state = trainer.init()
            else:
                history, wall_time = extra["history"], extra["wall_time"]
                chunk_rates = extra.get("chunk_rates", [])
                log(f"resuming {checkpoint.name} at step {int(state.step)}")

    steps_done_here = 0
    while int(state.step) < config.steps:
        if stop_after is not None and steps_done_here >= stop_after:
            return []
        chunk = min(config.eval_every, config.steps - int(state.step))
        started = time.perf_counter()
        state, train_losses = trainer.train(state, chunk)
        train_losses = np.asarray(_to_host(train_losses))
        elapsed = time.perf_counter() - started
        wall_time += elapsed
        steps_done_here += chunk
        metrics = _to_host(trainer.evaluate(state))
        step = int(state.step)
        point = [
            {
                "step": step,
                "loss": float(metrics["loss"][s]),
                "accuracy": float(metrics["accuracy"][s]),
                "train_loss": float(np.mean(train_losses[:, s])),
                "wall_time": round(wall_time, 3),
            }
            for s in range(len(config.seeds))
        ]
        history.append(point)
        chunk_rates.append([chunk / elapsed, steps_done_here == chunk])
        log(_format_progress(config, step, point, chunk / elapsed))
        if len(history) % checkpoint_every == 0 or step == config.steps:
            extra = {
                "config": config.to_dict(),
                "history": history,
                "wall_time": wall_time,
                "chunk_rates": chunk_rates,
            }
            host_state = _to_host(state)
            if _writes_files():
                records.save_checkpoint(checkpoint, host_state, extra)

    # The first chunk of each call includes compilation; leave those out when there are others.
    warm = [rate for rate, compiling in chunk_rates if not compiling]
    steps_per_second = float(np.median(warm or [rate for rate, _ in chunk_rates]))
    diverged_step = np.asarray(_to_host(state.diverged_step))
    written = []
    for index, seed in enumerate(config.seeds):
        if seed not in todo:
            continue  # finished before this call; its record stays untouched
        record = _record(
            config, seed, index, history, history[-1], diverged_step, steps_per_second, wall_time
        )
        record["num_params"] = trainer.num_params
        if _writes_files():
            path = records.record_path(workdir, config.task, config.length, config.label, seed)
            records.write_json_atomic(path, record)
        written.append(record)
    if _writes_files():
        checkpoint.unlink(missing_ok=True)
    return written
