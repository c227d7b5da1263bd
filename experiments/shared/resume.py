"""The resumable training loop every experiment runs, and what keeps a workdir safe.

:func:`run` trains one :class:`Experiment` (all its seeds) in chunks of ``eval_every``
steps: train, evaluate, checkpoint atomically, and at the end write one record per seed
atomically. It is safe to stop at any moment and start again with the same settings:

* **One run per workdir.** :func:`lock_workdir` takes ``fcntl.flock`` on
  ``WORKDIR/.lock`` before anything is read or written and writes the holder's PID and
  host into it. The OS releases the lock when the process dies, so ``kill -9`` leaves no
  stale lock. A second run on a locked workdir raises :class:`WorkdirLockedError` (the
  scripts exit with one line naming the holder) and writes nothing; ``wait=True``
  (``--wait_for_lock``) waits instead.
* **Resume.** Finished seeds (a valid record made with the same settings) are skipped
  untouched; an unfinished run continues from its checkpoint and says "resumed from step
  N"; the records end up as they would have without the interruption, because training
  is a pure function of seed and step (:mod:`experiments.shared.training`). A workdir
  holding this run with other settings raises :class:`ConfigMismatchError`; a corrupt
  record or checkpoint is set aside (renamed ``*.corrupt-TIME``), never deleted.
* **Graceful preemption.** On SIGTERM, SIGINT or SIGHUP the run finishes its current
  chunk, writes a checkpoint, says where, and raises :class:`PreemptedError`; the scripts
  then exit with :data:`EXIT_PREEMPTED` (75, ``EX_TEMPFAIL`` of ``sysexits.h``: "try
  again"). The same command resumes from that step. A second signal stops it at once, and
  a device call that stalls ends it with one line (:mod:`experiments.shared.watchdog`).
* **Faults while writing.** An ``OSError`` (disk full, permission denied) while writing a
  checkpoint or record raises :class:`WriteError` with one clear line; every write goes to
  a temporary file renamed over the old one, so the previous checkpoint and records stay
  intact and the next run resumes from them.

Under ``jax.distributed`` (several processes training one program together) every
process runs this loop on the same work directory, which must be a filesystem all of them
see; only process 0 takes the lock, writes records and checkpoints and sets corrupt files
aside. Arrays come to the host through ``process_allgather``, a collective every process
joins, and the processes agree on a stop request before acting on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from experiments.shared import memory, records, watchdog
from experiments.shared.training import Trainer, TrainState

__all__ = [
    "EXIT_PREEMPTED",
    "LOCK_NAME",
    "Chunk",
    "ConfigMismatchError",
    "Experiment",
    "Outcome",
    "PreemptedError",
    "Result",
    "WorkdirLockedError",
    "WriteError",
    "lock_workdir",
    "run",
    "settings_that_differ",
]

EXIT_PREEMPTED = watchdog.EXIT_PREEMPTED
"""Exit status of a script stopped by a signal after checkpointing (75, EX_TEMPFAIL)."""
LOCK_NAME = ".lock"
"""The lock file in a workdir; it holds the PID and host of the run that has it."""


class ConfigMismatchError(ValueError):
    """The work directory holds results of the same run name with other settings."""


class WorkdirLockedError(RuntimeError):
    """Another process holds the work directory's lock."""


class WriteError(RuntimeError):
    """A checkpoint or record could not be written; what was on disk before is intact."""


class PreemptedError(Exception):
    """A stop signal arrived; the run checkpointed at ``step`` to ``checkpoint``."""

    def __init__(self, message: str, step: int, checkpoint: Path):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


# --------------------------------------------------------------------------------------
# One run per workdir.
# --------------------------------------------------------------------------------------

_held_locks: dict[str, int] = {}  # resolved lock path -> file descriptor, in this process


def _holder(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    return text or "a process that has not written its PID yet"


def _lock_failure(path: Path, error: OSError) -> str:
    return (
        f"could not take the workdir's lock {path} ({error.strerror or error}); nothing was "
        "trained or written; use a workdir this process can write."
    )


@contextlib.contextmanager
def lock_workdir(
    workdir: str | os.PathLike,
    *,
    wait: bool = False,
    log: Callable[[str], None] = print,
    enabled: bool = True,
) -> Iterator[None]:
    """Holds ``WORKDIR/.lock`` (``fcntl.flock``) for the ``with`` block.

    Re-entrant within a process (an inner ``with`` on a workdir this process holds does
    nothing), released when the block ends or the process dies.

    Args:
      workdir: the work directory; created if missing.
      wait: wait for the holder to finish instead of raising.
      log: receives one line when waiting.
      enabled: False makes it do nothing (processes of a distributed run but process 0).

    Raises:
      WorkdirLockedError: another process holds the lock and ``wait`` is False; names its PID
        and host. Nothing in the workdir has been written.
      WriteError: the lock file cannot be made, opened, locked or written (a full disk, a
        read-only or immutable workdir, ``.lock`` a directory); names the file.
    """
    path = Path(workdir) / LOCK_NAME
    key = str(path.resolve())
    if not enabled or key in _held_locks:
        yield
        return
    try:
        Path(workdir).mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise WriteError(_lock_failure(path, error)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise WorkdirLockedError(
                    f"{workdir} is in use by another run ({holder}); wait for it to end, use "
                    "another --workdir, or pass --wait_for_lock to wait for it."
                ) from None
            log(f"waiting for {workdir}: in use by another run ({holder})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            raise WriteError(_lock_failure(path, error)) from None
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        holder = f"PID {os.getpid()} on host {socket.gethostname()} since {stamp}\n"
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder.encode(), 0)
        except OSError as error:
            raise WriteError(_lock_failure(path, error)) from None
        _held_locks[key] = fd
        try:
            yield
        finally:
            del _held_locks[key]
    finally:
        os.close(fd)  # releases the lock


# --------------------------------------------------------------------------------------
# Graceful preemption (the signals themselves: :mod:`experiments.shared.watchdog`).
# --------------------------------------------------------------------------------------


def _anyone_stopping(supervisor: watchdog.Supervisor) -> bool:
    """Whether any process received a stop signal (a collective with several processes)."""
    stopping = supervisor.signal is not None
    if jax.process_count() == 1:
        return stopping
    from jax.experimental import multihost_utils

    flags = multihost_utils.process_allgather(np.asarray([int(stopping)], np.int32))
    return bool(np.asarray(flags).any())


# --------------------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------------------


class Chunk(NamedTuple):
    """What one chunk of training gave, on the host.

    Attributes:
      step: steps taken after the chunk.
      metrics: the trainer's evaluation after the chunk, ``{name: [S]}``.
      train_losses: ``[num_steps, S]`` the training loss of every step of the chunk.
      seconds: wall time of the chunk's training.
    """

    step: int
    metrics: dict[str, np.ndarray]
    train_losses: np.ndarray
    seconds: float


class Outcome(NamedTuple):
    """A finished training of all seeds, as the records are made from it.

    Attributes:
      state: the final :class:`~experiments.shared.training.TrainState`, numpy leaves.
      history: one entry per evaluation: a list of one point (dict) per seed.
      seeds: the seeds trained, in the order of the state's seed axis.
      wall_time: seconds spent training, over every call.
      steps_per_second: the median rate over the chunks, leaving out those that compiled
        when there are others.
      num_params: trainable parameters of one seed's model.
      test: what the experiment's ``test`` gave for the final state, ``{name: [S, ...]}``
        on the host; None when it has none.
    """

    state: TrainState
    history: list[list[dict]]
    seeds: tuple[int, ...]
    wall_time: float
    steps_per_second: float
    num_params: int
    test: dict[str, np.ndarray] | None = None


class Result(NamedTuple):
    """What :func:`run` did: the records it wrote, and the outcome (None if it did not train
    to the end: every seed was finished before, or ``stop_after`` stopped it)."""

    records: list[dict]
    outcome: Outcome | None


class Experiment(Protocol):
    """One training run (all its seeds) as the resumable loop sees it.

    An experiment implements it as a small class (``experiments.run.loop.TaskExperiment``,
    ``experiments.char_lm.model.CharLMExperiment``, ``experiments.forecast.model.
    ForecastExperiment``) that subclasses it, so that the defaults below apply.

    Attributes:
      name: how messages name the run, e.g. "adding T=8 gru".
      workdir: the work directory (locked while the loop runs).
      settings: every setting, JSON-able; compared with what is on disk.
      seeds: the seeds.
      steps: steps to train.
      eval_every: steps per chunk (one evaluation, possibly a checkpoint, each).
      checkpoint: the path of the checkpoint of all seeds.
      neutral_settings: settings that may differ between a run and its resumption.
      keep_checkpoint: keep the final checkpoint (it is the trained model) and write the
        records on every call; otherwise seeds with a record are skipped and the
        checkpoint is removed once the records are written.
      data_fingerprint: ``(what, sha256)`` of the data trained on, e.g. ``("corpus text",
        digest)``; a checkpoint of other data is refused.
      tests_after_training: whether :meth:`test` runs once on the final state.
    """

    name: str
    workdir: Path
    settings: dict
    seeds: tuple[int, ...]
    steps: int
    eval_every: int
    checkpoint: Path
    neutral_settings: tuple[str, ...] = ("seeds",)
    keep_checkpoint: bool = False
    data_fingerprint: tuple[str, str] | None = None
    tests_after_training: bool = False

    def record_path(self, seed: int) -> Path:
        """The path of ``seed``'s record."""
        ...

    def make_trainer(self, seeds: tuple[int, ...]) -> Trainer:
        """The trainer of a subset of :attr:`seeds`."""
        ...

    def history_points(self, chunk: Chunk, wall_time: float) -> list[dict]:
        """One history point (a dict) per seed after a chunk."""
        ...

    def progress(self, step: int, points: list[dict], steps_per_second: float) -> str:
        """One progress line per chunk."""
        ...

    def make_record(self, outcome: Outcome, index: int) -> dict:
        """The record of seed ``outcome.seeds[index]``."""
        ...

    def test(self, state: TrainState, seeds: tuple[int, ...]) -> dict[str, Any]:
        """``{name: [S, ...]}`` from the final state (e.g. accuracy on longer strings), run
        once before the records are made when :attr:`tests_after_training`."""
        return {}

    def observe(self, step: int, seeds: tuple[int, ...], points: list[dict]) -> None:
        """Called after each evaluation (e.g. live metrics, :mod:`experiments.shared.
        metrics`); does nothing unless overridden."""


def settings_that_differ(recorded: dict, wanted: dict, neutral: tuple[str, ...] = ()) -> list[str]:
    """Names the settings (but the neutral ones) in which ``recorded`` differs from ``wanted``."""
    return [
        f"{name}: {recorded.get(name)!r} on disk vs {wanted[name]!r} now"
        for name in wanted
        if name not in neutral and recorded.get(name) != wanted[name]
    ]


def _refuse_other_settings(where: Path, differences: list[str]) -> None:
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


def _set_aside(path: Path, why: str = "corrupt") -> str:
    if not _writes_files():
        return "(by process 0)"
    return records.set_aside(path, why).name


def _remove_orphan_temporaries(experiment: Experiment, log: Callable[[str], None]) -> None:
    """Deletes what a killed :func:`~experiments.shared.records.write_atomic` left behind
    (``.NAME.*.tmp`` beside this run's records and checkpoint). Safe once the workdir lock
    is held: no other process writes here."""
    if not _writes_files():
        return
    folders = {experiment.checkpoint.parent} | {
        experiment.record_path(seed).parent for seed in experiment.seeds
    }
    orphans = [path for folder in folders if folder.is_dir() for path in folder.glob(".*.tmp")]
    for path in orphans:
        path.unlink(missing_ok=True)
    if orphans:
        log(f"removed {len(orphans)} temporary file(s) left by an interrupted write")


def _finished_seeds(experiment: Experiment, log: Callable[[str], None]) -> set[int]:
    """Seeds with a valid record made with the same settings; corrupt ones are set aside."""
    finished = set()
    for seed in experiment.seeds:
        path = experiment.record_path(seed)
        if not path.exists():
            continue
        try:
            record = records.read_record(path)
        except ValueError as error:
            log(f"warning: {error} Set aside as {_set_aside(path)}; rerunning.")
            continue
        differences = settings_that_differ(
            record["config"], experiment.settings, experiment.neutral_settings
        )
        _refuse_other_settings(path, differences)
        finished.add(seed)
    return finished


def _checkpoint_extra(experiment: Experiment, log: Callable[[str], None]) -> dict | None:
    """The checkpoint's ``extra`` if there is a usable one made with the same settings.

    Settings first: a checkpoint of other settings is refused, never set aside.
    """
    path = experiment.checkpoint
    if not path.exists():
        return None
    try:
        extra = records.read_checkpoint_extra(path)
    except ValueError as error:
        log(f"warning: {error} Set aside as {_set_aside(path)}.")
        return None
    differences = settings_that_differ(
        extra.get("config", {}), experiment.settings, experiment.neutral_settings
    )
    history = extra.get("history") or []
    trained = history[-1][0]["step"] if history and history[-1] else 0
    if trained > experiment.steps:
        differences.append(
            f"it holds a model trained for {trained} steps, more than steps={experiment.steps}"
        )
    if experiment.data_fingerprint is not None:
        what, digest = experiment.data_fingerprint
        if extra.get("data_sha256") != digest:
            differences.append(f"the {what} differs (SHA-256)")
    _refuse_other_settings(path, differences)
    return extra


def _write(write: Callable[[Path, Any], None], path: Path, content: Any, intact: str) -> None:
    """``write(path, content)``; an OSError becomes a :class:`WriteError` of one line."""
    try:
        write(path, content)
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise WriteError(
            f"could not write {path} ({reason}); {intact} Free space or fix permissions, "
            "then run the same command to resume."
        ) from None


def run(
    experiment: Experiment,
    *,
    checkpoint_every: int = 1,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> Result:
    """Trains the experiment's unfinished seeds, resuming from its checkpoint, and records them.

    Args:
      experiment: what to train and where.
      checkpoint_every: evaluations between checkpoints (the last step and a stop request
        always checkpoint).
      log: receives one progress line per evaluation and a few status lines.
      stop_after: stop (as if killed) after this many steps of this call; for tests.

    Returns:
      The records written by this call and the outcome.

    Raises:
      WorkdirLockedError: another process holds the workdir.
      ConfigMismatchError: the workdir holds this run with other settings.
      PreemptedError: SIGTERM or SIGINT arrived; a checkpoint was written first.
      WriteError: a checkpoint or record could not be written.
      OutOfMemoryError: the training state cannot fit (checked before anything is
        allocated), or an allocation failed while training.
    """
    with lock_workdir(experiment.workdir, enabled=_writes_files()):
        try:
            return _run_locked(experiment, checkpoint_every, log, stop_after)
        except Exception as error:
            if not memory.is_out_of_memory(error):
                raise
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise memory.OutOfMemoryError(
                f"{experiment.name}: out of memory ({type(error).__name__}: {first_line}); "
                "every checkpoint written so far is intact."
            ) from None


def _run_locked(
    experiment: Experiment,
    checkpoint_every: int,
    log: Callable[[str], None],
    stop_after: int | None,
) -> Result:
    _remove_orphan_temporaries(experiment, log)
    finished = set() if experiment.keep_checkpoint else _finished_seeds(experiment, log)
    todo = tuple(seed for seed in experiment.seeds if seed not in finished)
    if not todo:
        log(f"{experiment.name}: all seeds finished, skipping.")
        return Result([], None)
    extra = _checkpoint_extra(experiment, log)
    # A checkpoint holds the seeds it was made for. A run killed between two of its record
    # writes resumes all of them and writes only the records still missing.
    train_seeds = todo
    if extra is not None:
        saved = tuple(extra.get("seeds") or ())
        if set(todo) <= set(saved) <= set(experiment.seeds):
            train_seeds = saved
        else:
            log(
                f"warning: {experiment.checkpoint} holds other seeds ({list(saved)}); set aside "
                f"as {_set_aside(experiment.checkpoint, 'other-seeds')}; starting afresh."
            )
            extra = None
    with watchdog.supervise() as supervisor:
        return _train(
            experiment, todo, train_seeds, extra, supervisor, checkpoint_every, log, stop_after
        )


def _train(
    experiment: Experiment,
    todo: tuple[int, ...],
    train_seeds: tuple[int, ...],
    extra: dict | None,
    supervisor: watchdog.Supervisor,
    checkpoint_every: int,
    log: Callable[[str], None],
    stop_after: int | None,
) -> Result:
    """The training of :func:`run` once the seeds and the checkpoint to resume are known.

    Every device call runs inside ``supervisor.waiting(...)`` and waits for its result
    there, so a stalled computation is named by its phase.
    """
    name, checkpoint = experiment.name, experiment.checkpoint
    if supervisor.signal is not None:
        message = f"stopped by {supervisor.signal} before training {name}; nothing new to save."
        log(message)
        raise PreemptedError(message, 0, checkpoint)
    trainer = experiment.make_trainer(train_seeds)
    state_shape = jax.eval_shape(trainer.init)  # nothing allocated
    memory.check_fits(name, state_shape, state_shape.params, len(train_seeds))

    # chunk_rates: [steps/s, whether the chunk was the first of a call (compiling)].
    history, wall_time, chunk_rates, saved_step = [], 0.0, [], None
    supervisor.checkpoint = None if extra is None else str(checkpoint)
    with supervisor.waiting(f"compiling and initialising {name}"):
        state = jax.block_until_ready(trainer.init())
    if extra is not None:
        try:
            state, extra = records.load_checkpoint(checkpoint, state)
        except ValueError as error:
            log(f"warning: {error} Set aside as {_set_aside(checkpoint)}.")
        else:
            history, wall_time = extra["history"], extra["wall_time"]
            chunk_rates, saved_step = extra.get("chunk_rates", []), int(state.step)
            supervisor.checkpoint = f"{checkpoint} (step {saved_step})"
            log(f"resumed from step {saved_step} ({checkpoint.name})")

    def save(state: TrainState, step: int) -> None:
        extra = {
            "config": experiment.settings,
            "seeds": list(train_seeds),
            "history": history,
            "wall_time": wall_time,
            "chunk_rates": chunk_rates,
        }
        if experiment.data_fingerprint is not None:
            extra["data_sha256"] = experiment.data_fingerprint[1]
        with supervisor.waiting(f"copying {name} at step {step} to the host"):
            host_state = _to_host(state)
        if _writes_files():
            before = (
                f"the previous checkpoint (step {saved_step}) is intact."
                if saved_step is not None
                else "no checkpoint was written before it."
            )
            _write(
                lambda p, s: records.save_checkpoint(p, s, extra), checkpoint, host_state, before
            )
        supervisor.checkpoint = f"{checkpoint} (step {step})"

    steps_done_here, step, first_chunk = 0, int(state.step), None
    if step < experiment.steps:
        log(f"{name}: compiling the training step (the first chunk's steps/s includes it) ...")
    while step < experiment.steps:
        if stop_after is not None and steps_done_here >= stop_after:
            return Result([], None)
        chunk = min(experiment.eval_every, experiment.steps - step)
        doing = "compiling and training" if steps_done_here == 0 else "training"
        if steps_done_here == 0:
            first_chunk = chunk
        started = time.perf_counter()
        with supervisor.waiting(f"{doing} {name}, steps {step + 1}-{step + chunk}"):
            state, train_losses = trainer.train(state, chunk)
            train_losses = np.asarray(_to_host(train_losses))
        elapsed = time.perf_counter() - started
        wall_time += elapsed
        steps_done_here += chunk
        step = step + chunk
        with supervisor.waiting(f"evaluating {name} at step {step}"):
            metrics = _to_host(trainer.evaluate(state))
        points = experiment.history_points(Chunk(step, metrics, train_losses, elapsed), wall_time)
        history.append(points)
        chunk_rates.append([chunk / elapsed, steps_done_here == chunk])
        log(experiment.progress(step, points, chunk / elapsed))
        if _writes_files():
            experiment.observe(step, train_seeds, points)
        stopping = _anyone_stopping(supervisor)
        if stopping or len(history) % checkpoint_every == 0 or step == experiment.steps:
            save(state, step)
            saved_step = step
        if stopping:
            message = (
                f"stopped by {supervisor.signal or 'a signal to another process'} at step "
                f"{step}: checkpoint written to {checkpoint}; run the same command to resume."
            )
            log(message)
            raise PreemptedError(message, step, checkpoint)

    # The first chunk of each call includes compilation; leave those out when there are others.
    warm = [rate for rate, compiling in chunk_rates if not compiling]
    if not warm and first_chunk is not None:
        # Only compiling chunks (e.g. --steps below --eval_every): time one more chunk of the
        # compiled size on a copy of the state (train donates it) and throw the copy away,
        # so no recorded steps/s includes compilation.
        with supervisor.waiting(f"timing {name} without compilation"):
            probe = jax.tree_util.tree_map(jnp.copy, state)
            started = time.perf_counter()
            jax.block_until_ready(trainer.train(probe, first_chunk))
            warm = [first_chunk / (time.perf_counter() - started)]
    rates = warm or [rate for rate, _ in chunk_rates]
    steps_per_second = float(np.median(rates)) if rates else float("nan")
    with supervisor.waiting(f"copying {name} to the host"):
        host_state = _to_host(state)
    tested = None
    if experiment.tests_after_training:
        log(f"testing {name}")
        with supervisor.waiting(f"testing {name}"):
            tested = _to_host(experiment.test(host_state, train_seeds))
    outcome = Outcome(
        host_state, history, train_seeds, wall_time, steps_per_second, trainer.num_params,
        tested,
    )  # fmt: skip
    written = []
    for index, seed in enumerate(train_seeds):
        if seed not in todo:
            continue  # finished before this call; its record stays untouched
        record = experiment.make_record(outcome, index)
        if _writes_files():
            intact = (
                f"the checkpoint {checkpoint.name} (step {int(outcome.state.step)}) and the "
                "records written before are intact."
            )
            # Looked up at call time, so tests can stand in for the writer.
            _write(records.write_json_atomic, experiment.record_path(seed), record, intact)
        written.append(record)
        supervisor.reached(f"between record writes of {name}")
    if _writes_files() and not experiment.keep_checkpoint:
        checkpoint.unlink(missing_ok=True)
        supervisor.checkpoint = None
    return Result(written, outcome)
