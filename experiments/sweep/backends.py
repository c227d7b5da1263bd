"""Where a study's cells run: local processes, Ray tasks, or Slurm jobs through submitit.

Every backend runs the same cell function, :func:`run_cell`: ``python -m experiments.run``
with the cell's flags and ``--workdir=STUDY/cells/<id>`` in a fresh process. The records are
therefore those ``experiments.run`` writes for the same flags, whichever backend ran them;
a backend only decides where the process runs and how many cores it gets:

* :class:`LocalBackend` (the default): ``workers`` processes at a time on this machine,
  each pinned to its own share of the cores (``os.sched_setaffinity``), so XLA sizes its
  thread pool to that share. On 2 cores, two single-threaded cells beat one two-threaded
  one for this project's small GEMMs.
* :class:`RayBackend`: one Ray task per cell (``num_cpus`` = ``threads``), on a running
  cluster (``address``) or on a local Ray started for the sweep.
* :class:`SlurmBackend`: one submitit job per cell (``cpus_per_task`` = ``threads``) on a
  Slurm cluster, or on submitit's local executor.

Ray and submitit are the optional ``[cluster]`` extra; without them the backend is refused
with one line saying what to install (:class:`BackendUnavailableError`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "CellResult",
    "LocalBackend",
    "RayBackend",
    "SlurmBackend",
    "available_cores",
    "run_cell",
    "share_niceness",
]

BACKENDS = ("local", "ray", "slurm")
_ROOT = Path(__file__).resolve().parents[2]  # holds the experiments package
_INSTALL = "pip install -e '.[cluster]'"


class BackendUnavailableError(RuntimeError):
    """A backend cannot start: its package is missing or its cluster does not answer."""


class CellResult(NamedTuple):
    """How one attempt at a cell ended.

    Attributes:
      exit_status: ``experiments.run``'s exit status (0 done; 75 stopped by a signal or a
        stall with a checkpoint; 70 a stall before any checkpoint; other: an error).
      message: the last line the cell printed (its error line when it failed).
      seconds: wall time of the attempt.
    """

    exit_status: int
    message: str
    seconds: float


def available_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def _last_line(path: Path) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(max(0, os.path.getsize(path) - 8192))
            lines = file.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def run_cell(
    flags: Sequence[str],
    directory: str | os.PathLike,
    *,
    stall_timeout: float,
    cores: Sequence[int] | None = None,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> CellResult:
    """Trains one cell: ``python -m experiments.run FLAGS --workdir=DIRECTORY`` in a new process.

    Its output is appended to ``DIRECTORY/log.txt``. The process has its own session, so a
    terminal's Ctrl-C reaches only the sweep, which forwards a stop exactly once. If this
    call is interrupted (a Ray cancel raises KeyboardInterrupt here; Slurm's preemption
    signal arrives as SIGTERM or SIGUSR2), the process is sent SIGTERM, checkpoints, and
    the call returns its exit status (75).

    Args:
      flags: the cell's ``experiments.run`` flags (:func:`experiments.sweep.grid.cell_flags`).
      directory: the cell's workdir.
      stall_timeout: ``--stall_timeout`` of the run.
      cores: pin the process to these cores (its XLA thread pool takes their number).
      on_start: called with the process once it runs (the local backend keeps it, to
        forward a stop).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "experiments.run",
        *flags,
        f"--workdir={directory}",
        "--summarize=false",
        f"--stall_timeout={stall_timeout}",
    ]
    path = [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    log_path = directory / "log.txt"
    started = time.monotonic()
    with open(log_path, "ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n=== {stamp} on {os.uname().nodename}: {' '.join(command)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=_ROOT,
            start_new_session=True,
        )  # fmt: skip
    if cores:
        os.sched_setaffinity(process.pid, cores)  # before the run starts JAX's thread pools
    share_niceness(process.pid)
    if on_start is not None:
        on_start(process)
    forwarded = _forward_signals_to(process)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGTERM)
        code = process.wait()
    finally:
        forwarded()
    return CellResult(code, _last_line(log_path), time.monotonic() - started)


def share_niceness(pid: int) -> None:
    """Gives a cell's session the niceness of this process (``nice python -m ...sweep``).

    A cell runs in its own session (so a terminal's Ctrl-C reaches only the sweep), and
    with Linux's autogroup scheduling (``/proc/sys/kernel/sched_autogroup_enabled``) each
    session is scheduled as one group whatever its processes' niceness: a niced sweep's
    cells would otherwise take the CPU as equals of the user's other work. Writing the
    niceness to ``/proc/PID/autogroup`` lowers the group's share the same way. Nothing is
    done where the niceness is 0 or the kernel has no autogroups.
    """
    niceness = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness <= 0:
        return
    # No autogroups (another kernel, or the setting off): nothing to share.
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(f"{niceness}\n")


def _forward_signals_to(process: subprocess.Popen) -> Callable[[], None]:
    """In a main thread (a submitit job), SIGTERM/SIGUSR2 reach the cell as SIGTERM.

    Returns the function that restores the previous handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    numbers = (signal.SIGTERM, signal.SIGUSR2)
    previous = {number: signal.getsignal(number) for number in numbers}
    for number in numbers:
        signal.signal(number, lambda *_: process.send_signal(signal.SIGTERM))

    def restore() -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)

    return restore


# --------------------------------------------------------------------------------------
# Backends: submit(flags, directory) -> Future[CellResult]; stop(); close().
# --------------------------------------------------------------------------------------


class LocalBackend:
    """``workers`` cells at a time on this machine, each on ``len(cores) // workers`` cores."""

    name = "local"

    def __init__(self, workers: int, stall_timeout: float, cores: Sequence[int] | None = None):
        cores = list(cores or available_cores())
        if workers < 1:
            raise ValueError(f"--workers must be >= 1, got {workers}.")
        share = max(1, len(cores) // workers)
        self.threads, self.capacity = share, workers
        self._slots: queue.Queue = queue.Queue()
        for worker in range(workers):
            start = (worker * share) % len(cores)
            self._slots.put([cores[(start + i) % len(cores)] for i in range(share)])
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="cell")
        self._stall_timeout = stall_timeout
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()

    def _run(self, flags: Sequence[str], directory: Path) -> CellResult:
        slot = self._slots.get()
        process_box: list[subprocess.Popen] = []

        def started(process: subprocess.Popen) -> None:
            process_box.append(process)
            with self._lock:
                self._running.add(process)

        try:
            return run_cell(
                flags, directory, stall_timeout=self._stall_timeout, cores=slot, on_start=started
            )
        finally:
            with self._lock:
                self._running.difference_update(process_box)
            self._slots.put(slot)

    def submit(self, flags: Sequence[str], directory: Path) -> concurrent.futures.Future:
        return self._pool.submit(self._run, list(flags), Path(directory))

    def stop(self) -> None:
        """Asks every running cell to checkpoint and stop (SIGTERM); queued ones still start
        unless the caller stops submitting."""
        with self._lock:
            for process in self._running:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class RayBackend:
    """One Ray task per cell, on the cluster at ``address`` or a local Ray of ``workers`` CPUs."""

    name = "ray"

    def __init__(self, address: str | None, workers: int, threads: int, stall_timeout: float):
        if address and address != "auto":
            _check_answers(address)
        try:
            import ray
        except ImportError:
            raise BackendUnavailableError(
                f"--backend=ray needs Ray, which is not installed; run {_INSTALL}."
            ) from None
        self._ray = ray
        self.threads = threads
        environment = {"env_vars": {"PYTHONPATH": str(_ROOT)}}
        try:
            if address:
                ray.init(address=address, runtime_env=environment, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=workers * threads, runtime_env=environment, include_dashboard=False,
                    log_to_driver=False,
                )  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as error:
            message = " ".join(str(error).split())[:300]
            raise BackendUnavailableError(
                f"--ray_address={address} does not answer as a Ray cluster ({message})."
            ) from None
        self.capacity = None  # Ray queues what its cluster cannot run yet
        self._remote = ray.remote(num_cpus=threads, max_retries=0)(run_cell)
        self._stall_timeout = stall_timeout
        self._refs: list = []

    def submit(self, flags: Sequence[str], directory: Path) -> concurrent.futures.Future:
        ref = self._remote.remote(list(flags), str(directory), stall_timeout=self._stall_timeout)
        self._refs.append(ref)
        return ref.future()

    def stop(self) -> None:
        """Cancels the running tasks: Ray raises KeyboardInterrupt in each, which
        :func:`run_cell` turns into a SIGTERM to its cell."""
        for ref in self._refs:
            self._ray.cancel(ref)

    def close(self) -> None:
        self._ray.shutdown()


def _check_answers(address: str, seconds: float = 5.0) -> None:
    """Refuses at once an address where nothing listens (``ray.init`` would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BackendUnavailableError(f"--ray_address must be auto or HOST:PORT; got {address!r}.")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise BackendUnavailableError(
            f"--ray_address={address} does not answer as a Ray cluster ({reason})."
        ) from None


class SlurmBackend:
    """One submitit job per cell: on Slurm (``cluster="slurm"``) or submitit's local executor."""

    name = "slurm"

    def __init__(
        self,
        folder: Path,
        threads: int,
        stall_timeout: float,
        *,
        cluster: str = "slurm",
        partition: str | None = None,
        time_minutes: int = 24 * 60,
        memory_gb: float | None = None,
        max_parallel: int = 64,
    ):
        try:
            import submitit
        except ImportError:
            raise BackendUnavailableError(
                f"--backend=slurm needs submitit, which is not installed; run {_INSTALL}."
            ) from None
        self.threads, self.capacity = threads, max_parallel
        try:
            self._executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        except RuntimeError as error:
            raise BackendUnavailableError(f"--backend=slurm cannot start: {error}") from None
        parameters: dict = {"timeout_min": time_minutes, "cpus_per_task": threads}
        if cluster == "slurm":
            parameters["slurm_signal_delay_s"] = 120  # time to checkpoint before the kill
            if partition:
                parameters["slurm_partition"] = partition
            if memory_gb:
                parameters["slurm_mem"] = f"{memory_gb}G"
        self._executor.update_parameters(**parameters)
        self._stall_timeout = stall_timeout
        self._waiters = concurrent.futures.ThreadPoolExecutor(max_parallel)
        self._jobs: list = []

    def _submit_and_wait(self, flags: list[str], directory: str) -> CellResult:
        job = self._executor.submit(run_cell, flags, directory, stall_timeout=self._stall_timeout)
        self._jobs.append(job)
        return job.result()

    def submit(self, flags: Sequence[str], directory: Path) -> concurrent.futures.Future:
        return self._waiters.submit(self._submit_and_wait, list(flags), str(directory))

    def stop(self) -> None:
        for job in self._jobs:
            if not job.done():
                job.cancel(check=False)

    def close(self) -> None:
        self._waiters.shutdown(wait=True)
