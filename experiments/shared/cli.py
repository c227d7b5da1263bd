"""What every experiment script does around its work, written once.

Scripts stay thin: quiet JAX's TPU probe, refuse stray positional arguments, make sure
the output directory exists and can be written, and run their training under the
watchdog and the workdir's lock (:func:`supervised`), each failure as one line.
"""

import contextlib
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator

from absl import flags

from experiments.shared import memory, resume, watchdog


def start(program: str, argv: list[str]) -> None:
    """Silences JAX's INFO line about a missing TPU; exits on positional arguments."""
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    if len(argv) > 1:
        sys.exit(f"{program}: error: unexpected arguments {argv[1:]}; flags are --name=value.")


def writable_directory(flag: str, path: str) -> None:
    """Creates ``path`` and writes a file in it, or raises ValueError saying why not.

    Writing is tried rather than ``os.access`` asked: root passes every permission check,
    but a read-only filesystem or a path under a regular file still refuses the write.
    """
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"--{flag} {path} is not a writable directory ({reason}).") from None


def require_directory_path(flag: str) -> None:
    """Registers a validator: the flag must name a directory, not an existing file."""
    flags.register_validator(
        flag,
        lambda path: bool(path) and not os.path.isfile(path),
        message=f"--{flag} must be a directory path, not an existing file.",
    )


def require_variant_names(flag: str = "variants") -> None:
    """Registers a validator of ``--FLAG``: a non-empty list of lstmx variant names; the
    error names the unknown ones and lists the valid ones."""
    from lstmx.cells import variant_names

    def check(names) -> bool:
        unknown = [name for name in names or () if name not in variant_names()]
        if names and not unknown:
            return True
        what = f"; unknown: {', '.join(map(repr, unknown))}" if unknown else "; got none"
        raise flags.ValidationError(
            f"--{flag} must be a non-empty list of: {', '.join(variant_names())}{what}."
        )

    flags.register_validator(flag, check)


def define_wait_for_lock() -> None:
    """Defines ``--wait_for_lock``: wait for a run holding ``--workdir`` instead of exiting."""
    flags.DEFINE_bool(
        "wait_for_lock",
        False,
        "If another run holds --workdir, wait for it to end instead of exiting at once.",
    )


def define_workdir(help_text: str) -> None:
    """Defines ``--workdir`` and its deprecated alias ``--output_dir``, both validated.

    Each must name a directory, not an existing file; giving both with different values is
    refused. The default lies with the script (:func:`workdir_from_flags`), so that giving
    only ``--output_dir`` is not mistaken for giving both.
    """
    flags.DEFINE_string("workdir", None, help_text)
    flags.DEFINE_string(
        "output_dir", None, "Deprecated alias of --workdir, kept so existing commands still run."
    )
    for name in ("workdir", "output_dir"):
        flags.register_validator(
            name,
            lambda path: path is None or (bool(path) and not os.path.isfile(path)),
            message=f"--{name} must be a directory path, not an existing file.",
        )
    flags.register_multi_flags_validator(
        ["workdir", "output_dir"],
        lambda values: None in values.values() or values["workdir"] == values["output_dir"],
        message="give --workdir or its deprecated alias --output_dir, not both.",
    )


def workdir_from_flags(program: str, default: str) -> str:
    """``--workdir``, else ``--output_dir`` (with a one-line deprecation note), else ``default``."""
    if flags.FLAGS.output_dir is not None:
        print(f"{program}: note: --output_dir is deprecated; use --workdir.", file=sys.stderr)
    return flags.FLAGS.workdir or flags.FLAGS.output_dir or default


def define_stall_timeout() -> None:
    """Defines ``--stall_timeout``: seconds a device computation may run before it is a stall."""
    flags.DEFINE_float(
        "stall_timeout",
        600.0,
        "Seconds one device computation (compiling, a chunk of --eval_every steps, an "
        "evaluation) may take before the run counts as stalled, or ten times the longest one "
        "so far if that is longer; a stalled run prints one line naming the phase and exits "
        "75 when a checkpoint exists (the same command resumes), else 70. 0 turns it off.",
        lower_bound=0.0,
    )
    flags.register_validator(
        "stall_timeout",
        lambda seconds: math.isfinite(seconds),
        message="--stall_timeout must be a finite number of seconds >= 0 (0 turns it off).",
    )


@contextlib.contextmanager
def supervised(
    program: str,
    workdir: str,
    *,
    wait: bool = False,
    log: Callable[[str], None] = print,
    lock: bool = True,
) -> Iterator[watchdog.Supervisor]:
    """The watchdog (signals, ``--stall_timeout``) and the workdir's lock around a script's work.

    A stop signal ends the script with status 75 after the checkpoint; a held lock, a
    workdir of other settings, a failed write or a training state that does not fit in
    memory end it with one line.

    Args:
      program: the script's name for its error lines.
      workdir: the directory to lock.
      wait: wait for another run's lock instead of exiting.
      log: receives the line said while waiting.
      lock: False for the processes of a distributed run that do not write.
    """
    stall_timeout = getattr(flags.FLAGS, "stall_timeout", 0.0)
    try:
        with (
            watchdog.supervise(stall_timeout, program=program) as supervisor,
            resume.lock_workdir(workdir, wait=wait, log=log, enabled=lock),
        ):
            yield supervisor
            if supervisor.signal is not None:  # it came after the last poll: all is saved
                log(
                    f"{program}: stopped by {supervisor.signal} after the last step; every "
                    "record and checkpoint is written; run the same command to go on."
                )
                raise resume.PreemptedError(supervisor.signal, 0, None)
    except resume.PreemptedError:
        sys.exit(resume.EXIT_PREEMPTED)
    except (
        resume.WorkdirLockedError,
        resume.ConfigMismatchError,
        resume.WriteError,
        memory.OutOfMemoryError,
    ) as error:
        sys.exit(f"{program}: error: {error}")
