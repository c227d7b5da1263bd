"""Stop signals and a stall watchdog for a training run, both served by one thread.

:func:`supervise` is held around a script's work (and, re-entrantly, around each
:func:`experiments.shared.resume.run`). Inside it:

* **The first SIGTERM, SIGINT or SIGHUP** becomes a stop request (:attr:`Supervisor.signal`)
  that the training loop polls between chunks: it checkpoints and exits with status 75.
* **A second one ends the run at once**, even while the main thread waits inside a
  device computation, with one line and status 75 (whatever checkpoint exists is intact;
  the same command resumes from it).
* **A stall** (a device call in :meth:`Supervisor.waiting` that has not returned after
  ``stall_timeout`` seconds, or ten times the longest such call so far, whichever is
  longer) ends the run with one line naming the phase, and status 75 when a checkpoint
  exists, else 70 (``EX_SOFTWARE``).

Why a thread: Python runs a signal handler only when the main thread returns to the
interpreter, and a deadlocked XLA computation never returns. The C-level handler still
writes each signal's number to the wakeup file descriptor (``signal.set_wakeup_fd``);
the watchdog thread reads it, and it also checks the clock twice a second. JAX releases
the GIL while it waits on a computation, so the thread runs when the main thread is stuck.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator

__all__ = [
    "EXIT_PREEMPTED",
    "EXIT_STALLED",
    "SIGNAL_AT_VARIABLE",
    "STOP_SIGNALS",
    "Supervisor",
    "supervise",
]

EXIT_PREEMPTED = 75
"""Exit status of a run stopped by a signal or a stall with a checkpoint (EX_TEMPFAIL)."""
EXIT_STALLED = 70
"""Exit status of a stalled run with nothing to resume from (EX_SOFTWARE)."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
SIGNAL_AT_VARIABLE = "LSTMX_SIGNAL_AT"
"""For the tests of every signal in every phase: ``LSTMX_SIGNAL_AT="SIGTERM@evaluating"``
makes the process send itself SIGTERM once, when it first enters a phase
(:meth:`Supervisor.waiting` or :meth:`Supervisor.reached`) whose description starts with
the text after ``@``. Unset, it does nothing."""
_POLL_SECONDS = 0.5
_GROWTH = 10.0  # a device call may take this many times the longest one before it


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Supervisor:
    """What the training loop tells the watchdog, and the stop request it reads back.

    Attributes:
      signal: the name of the first stop signal received ("SIGTERM", ...), or None.
      stall_timeout: seconds a device call may take before the run counts as stalled
        (0: never).
      checkpoint: a description of the checkpoint a rerun would resume from (e.g.
        "adding_T100_lstm.msgpack at step 300"), or None while there is none.
    """

    def __init__(self, stall_timeout: float = 0.0, program: str = "experiment"):
        self.signal: str | None = None
        self.stall_timeout = float(stall_timeout)
        self.checkpoint: str | None = None
        self._program = program
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._since = 0.0
        self._longest = 0.0

    @contextlib.contextmanager
    def waiting(self, phase: str) -> Iterator[None]:
        """Marks a device call (compile, a chunk of training, an evaluation, a transfer).

        The block must wait for the computation (``jax.block_until_ready``), so that its
        duration is the computation's.
        """
        with self._lock:
            self._phase, self._since = phase, time.monotonic()
        _signal_self_at(phase)
        try:
            yield
        finally:
            with self._lock:
                self._longest = max(self._longest, time.monotonic() - self._since)
                self._phase = None

    def reached(self, phase: str) -> None:
        """Marks a moment between device calls (between two variants, between two record
        writes, before the summary), where a stop request waits for the next poll."""
        _signal_self_at(phase)

    def stall_limit(self) -> float:
        """Seconds the current device call may take: the timeout, or ten times the longest."""
        return max(self.stall_timeout, _GROWTH * self._longest)

    def _resume_note(self) -> tuple[str, int]:
        if self.checkpoint is None:
            return "no checkpoint was written yet; the same command starts afresh.", EXIT_STALLED
        return (
            f"the checkpoint {self.checkpoint} is intact; run the same command to resume.",
            EXIT_PREEMPTED,
        )

    def _check_stall(self) -> None:
        if self.stall_timeout <= 0:
            return
        with self._lock:
            phase, waited = self._phase, time.monotonic() - self._since
        if phase is None or waited <= self.stall_limit():
            return
        note, code = self._resume_note()
        _say(
            f"{self._program}: error: no progress for {waited:.0f} s while {phase} (the "
            f"stall timeout is {self.stall_limit():.0f} s; see the README's known issues on "
            f"XLA:CPU deadlocks); {note}"
        )
        os._exit(code)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.signal is None:
            self.signal = name
            _say(
                f"{name}: finishing the current chunk, then writing a checkpoint (send it "
                "again to stop at once)."
            )
            return
        note, _ = self._resume_note()
        _say(f"{name} again: stopping at once; {note}")
        os._exit(EXIT_PREEMPTED)


_active: list[Supervisor] = []  # the supervisor of this process, while one is held


@contextlib.contextmanager
def supervise(stall_timeout: float = 0.0, *, program: str = "experiment") -> Iterator[Supervisor]:
    """Holds the signal handlers and the watchdog thread for the ``with`` block.

    Re-entrant: inside an active block it yields the active supervisor unchanged (the
    script's, with the script's ``--stall_timeout``). Outside the main thread signals
    cannot be caught; the supervisor then only carries the stall timeout, and the stop
    request never fires.

    Args:
      stall_timeout: seconds before a device call counts as stalled; 0 turns it off.
      program: how the stall line names the program ("experiments.run").
    """
    if _active:
        yield _active[0]
        return
    supervisor = Supervisor(stall_timeout, program)
    if threading.current_thread() is not threading.main_thread():
        _active.append(supervisor)
        try:
            yield supervisor
        finally:
            _active.clear()
        return
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    reader.settimeout(_POLL_SECONDS)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                received = reader.recv(64)
            except TimeoutError:
                received = b""
            except OSError:
                return
            for signum in received:
                if signum in STOP_SIGNALS:
                    supervisor._on_signal(signum)
            supervisor._check_stall()

    previous_handlers = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    for number in STOP_SIGNALS:
        # The Python-level handler only keeps the default action away; the thread acts.
        signal.signal(number, _ignore)
    thread = threading.Thread(target=watch, name="lstmx-watchdog", daemon=True)
    thread.start()
    _active.append(supervisor)
    try:
        yield supervisor
    finally:
        _active.clear()
        done.set()
        writer.send(b"\0")  # wakes the thread now rather than at its next poll
        thread.join()
        signal.set_wakeup_fd(previous_fd)
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        reader.close()
        writer.close()


_signalled: list[str] = []  # the phase LSTMX_SIGNAL_AT fired in, once per process


def _signal_self_at(phase: str) -> None:
    wanted = os.environ.get(SIGNAL_AT_VARIABLE)
    if not wanted or _signalled:
        return
    name, _, prefix = wanted.partition("@")
    if phase.startswith(prefix):
        _signalled.append(phase)
        os.kill(os.getpid(), signal.Signals[name])


def _ignore(_signum: int, _frame: object) -> None:
    """Stands in for the default action; the watchdog thread handles the signal."""
