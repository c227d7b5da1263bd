"""Results on disk: atomic writes, one JSON record per (task, variant, seed), checkpoints.

Layout under a work directory::

    records/{task}_T{length}_{label}_seed{seed}.json    one finished run (format below)
    checkpoints/{task}_T{length}_{label}.msgpack         training state of all seeds

where ``label`` is the variant, with "+chrono" appended for chrono-initialised runs and
the recurrent regularisers for regularised ones (e.g. "lstm+zoneout_h0.1+recdrop0.1",
:mod:`experiments.shared.regularization`), so all can share a work directory. A record
holds ``format``, ``task``, ``length``, ``variant``, ``label``, ``seed``, ``config``
(every setting; regulariser rates of 0 left out), ``baseline``, ``num_params``,
``history`` (evaluation points: ``step``, ``loss``, ``accuracy``, ``train_loss``,
``wall_time``), ``final``, ``status`` ("finished" or "diverged"), ``diverged_step``,
``steps_per_second``, ``wall_time`` and ``versions``. Every file is written to a
temporary name and renamed, so a reader never sees half a file, whenever the writer is
killed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RECORD_FORMAT = "lstmx.record/1"
CHECKPOINT_FORMAT = "lstmx.checkpoint/2"
"""A checkpoint is msgpack ``{"format", "sha256", "body"}``; ``body`` is the msgpack of
``{"state", "extra"}`` and ``sha256`` its digest, checked on every read. Checkpoints of the
first format (``lstmx.checkpoint/1``, ``{"format", "state", "extra"}``, no digest) are
still read."""
_UNCHECKED_CHECKPOINT_FORMAT = "lstmx.checkpoint/1"

__all__ = [
    "CHECKPOINT_FORMAT",
    "RECORD_FORMAT",
    "checkpoint_path",
    "load_checkpoint",
    "read_checkpoint_extra",
    "read_record",
    "record_path",
    "record_problem",
    "save_checkpoint",
    "set_aside",
    "software_versions",
    "write_atomic",
    "write_json_atomic",
]


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same directory.

    The rename is atomic on POSIX, so ``path`` holds either its old content or all of
    ``data``; the temporary file is fsynced first so a crash cannot leave an empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON, atomically (see :func:`write_atomic`)."""
    write_atomic(path, (json.dumps(obj, indent=1, allow_nan=True) + "\n").encode())


def _run_name(task: str, length: int, variant: str) -> str:
    return f"{task}_T{length}_{variant}"


def record_path(workdir: str | os.PathLike, task: str, length: int, label: str, seed: int) -> Path:
    """Where the record of one seed lives."""
    return Path(workdir) / "records" / f"{_run_name(task, length, label)}_seed{seed}.json"


def checkpoint_path(workdir: str | os.PathLike, task: str, length: int, label: str) -> Path:
    """Where the checkpoint of one label's training (all seeds) lives."""
    return Path(workdir) / "checkpoints" / f"{_run_name(task, length, label)}.msgpack"


def read_record(path: str | os.PathLike) -> dict:
    """Reads a record, raising ValueError naming the file and the problem if it is not a
    valid record (:func:`record_problem`) or has no ``config`` to resume against."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON record ({error}).") from None
    problem = record_problem(record)
    if problem is None and "config" not in record:
        problem = "missing key 'config'"
    if problem is not None:
        raise ValueError(f"{path}: not a valid lstmx record: {problem}.")
    return record


_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_loss(v: Any) -> bool:
    """A loss may be any number, NaN/inf included (Python's JSON writes them), or null."""
    return v is None or _is_number(v)


def record_problem(rec: Any) -> str | None:
    """What is wrong with a parsed record, or None when it is usable: the one definition of
    a valid record, for experiments.run (a record with a problem is not finished: it is set
    aside and its seed trained again), the sweep and experiments.compare (which skips it)."""
    if not isinstance(rec, dict):
        return f"top level is {type(rec).__name__}, expected a JSON object"
    required = (
        "format",
        "task",
        "length",
        "variant",
        "seed",
        "baseline",
        "num_params",
        "history",
        "final",
        "status",
        "steps_per_second",
    )
    missing = [k for k in required if k not in rec]
    if missing:
        return "missing key(s) " + ", ".join(repr(k) for k in missing)
    if rec["format"] != RECORD_FORMAT:
        return f"format is {rec['format']!r}, expected {RECORD_FORMAT!r}"
    if not isinstance(rec["task"], str) or not _TASK_NAME.match(rec["task"]):
        return f"'task' must be a name of letters, digits, '_', '.', '-'; got {rec['task']!r}"
    if not _is_int(rec["length"]) or rec["length"] < 1:
        return f"'length' must be a positive integer; got {rec['length']!r}"
    if "label" in rec and (not isinstance(rec["label"], str) or not rec["label"]):
        return "label must be a non-empty string when present"
    if not isinstance(rec["variant"], str) or not rec["variant"]:
        return f"'variant' must be a non-empty string; got {rec['variant']!r}"
    if not _is_int(rec["seed"]):
        return f"'seed' must be an integer; got {rec['seed']!r}"
    b = rec["baseline"]
    if not _is_number(b) or not math.isfinite(b) or b <= 0:
        return f"'baseline' must be a finite positive number; got {b!r}"
    if not _is_int(rec["num_params"]) or rec["num_params"] < 0:
        return f"'num_params' must be a non-negative integer; got {rec['num_params']!r}"
    sps = rec["steps_per_second"]
    if sps is not None and not _is_number(sps):
        return f"'steps_per_second' must be a number or null; got {sps!r}"
    if rec["status"] not in ("finished", "diverged"):
        return f"'status' must be 'finished' or 'diverged'; got {rec['status']!r}"
    if "diverged_step" in rec and not (
        rec["diverged_step"] is None or _is_int(rec["diverged_step"])
    ):
        return f"'diverged_step' must be an integer or null; got {rec['diverged_step']!r}"
    if "config" in rec and not isinstance(rec["config"], dict):
        return f"'config' must be an object; got {type(rec['config']).__name__}"
    final = rec["final"]
    if not isinstance(final, dict):
        return f"'final' must be an object; got {type(final).__name__}"
    for key in ("step", "loss"):
        if key not in final:
            return f"'final' is missing {key!r}"
    if not _is_int(final["step"]):
        return f"'final.step' must be an integer; got {final['step']!r}"
    if not _is_loss(final["loss"]):
        return f"'final.loss' must be a number or null; got {final['loss']!r}"
    if not _is_loss(final.get("accuracy")):
        return f"'final.accuracy' must be a number or null; got {final['accuracy']!r}"
    history = rec["history"]
    if not isinstance(history, list):
        return f"'history' must be a list; got {type(history).__name__}"
    for i, point in enumerate(history):
        if not isinstance(point, dict) or "step" not in point or "loss" not in point:
            return f"'history[{i}]' must be an object with 'step' and 'loss'"
        if not _is_int(point["step"]) or not _is_loss(point["loss"]):
            return f"'history[{i}]' has a non-integer step or non-numeric loss: {point!r}"
    if "test" in rec:
        return _test_problem(rec["test"])
    return None


def _test_problem(test: Any) -> str | None:
    """What is wrong with a state-tracking record's ``test``, or None."""
    if not isinstance(test, dict):
        return f"'test' must be an object; got {type(test).__name__}"
    lengths, accuracy = test.get("lengths"), test.get("accuracy")
    if not isinstance(lengths, list) or not lengths or not all(_is_int(n) for n in lengths):
        return "'test.lengths' must be a non-empty list of integers"
    if not isinstance(accuracy, list) or len(accuracy) != len(lengths):
        return "'test.accuracy' must be a list of one number per test length"
    if not all(_is_number(a) and 0 <= a <= 1 for a in accuracy):
        return "'test.accuracy' must hold numbers in [0, 1]"
    if not _is_number(test.get("score")) or not 0 <= test["score"] <= 1:
        return f"'test.score' must be a number in [0, 1]; got {test.get('score')!r}"
    return None


def set_aside(path: str | os.PathLike, why: str = "corrupt") -> Path:
    """Renames a file that cannot be used to ``NAME.WHY-TIMESTAMP`` (``why``: "corrupt", or
    e.g. "other-seeds" for a valid checkpoint of another run) so nothing on disk is lost."""
    path = Path(path)
    stamp = f"{path.name}.{why}-{time.strftime('%Y%m%d-%H%M%S')}"
    target, count = path.with_name(stamp), 1
    while target.exists():  # never overwrite an earlier set-aside copy
        target, count = path.with_name(f"{stamp}-{count}"), count + 1
    os.replace(path, target)
    return target


def save_checkpoint(path: str | os.PathLike, train_state: Any, extra: dict) -> None:
    """Saves a training state (any pytree of arrays) and JSON-able ``extra``, atomically,
    with the SHA-256 of its contents (:data:`CHECKPOINT_FORMAT`)."""
    import flax.serialization
    import jax

    body = flax.serialization.msgpack_serialize(
        {
            "state": flax.serialization.to_state_dict(jax.device_get(train_state)),
            "extra": json.dumps(extra),
        }
    )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "sha256": hashlib.sha256(body).hexdigest(),
        "body": body,
    }
    write_atomic(path, flax.serialization.msgpack_serialize(payload))


def _read_checkpoint(path: str | os.PathLike) -> dict:
    """``{"state", "extra"}`` of a checkpoint whose digest matches; raises on any problem."""
    import flax.serialization

    payload = flax.serialization.msgpack_restore(Path(path).read_bytes())
    if payload.get("format") == _UNCHECKED_CHECKPOINT_FORMAT:
        return payload
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"format is {payload.get('format')!r}")
    body = payload["body"]
    if hashlib.sha256(body).hexdigest() != payload["sha256"]:
        raise ValueError("its contents do not match their SHA-256: the file was altered")
    return flax.serialization.msgpack_restore(body)


def read_checkpoint_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` dict of a checkpoint, read without a template.

    Raises:
      ValueError: naming the file, if it is unreadable, altered or not a checkpoint.
    """
    try:
        extra = json.loads(_read_checkpoint(path)["extra"])
        if not isinstance(extra, dict):
            raise ValueError("extra is not a dict")
        return extra
    except Exception as error:  # any decoding problem means the same thing: unusable
        raise ValueError(
            f"{path}: unusable checkpoint ({type(error).__name__}: {error})."
        ) from None


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """Restores a checkpoint into the structure of ``template``.

    Raises:
      ValueError: naming the file, if it is unreadable, altered or does not match
        ``template``.
    """
    import flax.serialization
    import jax

    try:
        payload = _read_checkpoint(path)
        state = flax.serialization.from_state_dict(template, payload["state"])
        for restored, expected in zip(
            jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(template), strict=True
        ):
            if np.shape(restored) != np.shape(expected):
                raise ValueError(f"array of shape {np.shape(restored)}, expected {expected.shape}")
        return state, json.loads(payload["extra"])
    except Exception as error:  # any decoding problem means the same thing: unusable
        raise ValueError(
            f"{path}: unusable checkpoint ({type(error).__name__}: {error})."
        ) from None


def software_versions() -> dict[str, str]:
    """Versions of everything that can change the numbers."""
    import flax
    import jax
    import optax

    import lstmx

    return {
        "lstmx": lstmx.__version__,
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(jax.devices()[0].device_kind),
        "num_devices": str(jax.device_count()),
    }
