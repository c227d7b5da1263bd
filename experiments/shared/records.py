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

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RECORD_FORMAT = "lstmx.record/1"
CHECKPOINT_FORMAT = "lstmx.checkpoint/1"

__all__ = [
    "CHECKPOINT_FORMAT",
    "RECORD_FORMAT",
    "checkpoint_path",
    "load_checkpoint",
    "read_checkpoint_extra",
    "read_record",
    "record_path",
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
    """Reads a record, raising ValueError naming the file if it is not a valid record."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable JSON record ({error}).") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{path}: not an lstmx record (expected format {RECORD_FORMAT!r}).")
    for key in ("task", "length", "variant", "seed", "config", "history", "final", "status"):
        if key not in record:
            raise ValueError(f"{path}: record lacks the key {key!r}.")
    return record


def set_aside(path: str | os.PathLike) -> Path:
    """Renames a corrupt file to ``NAME.corrupt-TIMESTAMP`` so nothing on disk is lost."""
    path = Path(path)
    stamp = f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
    target, count = path.with_name(stamp), 1
    while target.exists():  # never overwrite an earlier set-aside copy
        target, count = path.with_name(f"{stamp}-{count}"), count + 1
    os.replace(path, target)
    return target


def save_checkpoint(path: str | os.PathLike, train_state: Any, extra: dict) -> None:
    """Saves a training state (any pytree of arrays) and JSON-able ``extra``, atomically."""
    import flax.serialization
    import jax

    payload = {
        "format": CHECKPOINT_FORMAT,
        "state": flax.serialization.to_state_dict(jax.device_get(train_state)),
        "extra": json.dumps(extra),
    }
    write_atomic(path, flax.serialization.msgpack_serialize(payload))


def read_checkpoint_extra(path: str | os.PathLike) -> dict:
    """The ``extra`` dict of a checkpoint, read without a template.

    Raises:
      ValueError: naming the file, if it is unreadable or not a checkpoint.
    """
    import flax.serialization

    try:
        payload = flax.serialization.msgpack_restore(Path(path).read_bytes())
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is {payload.get('format')!r}")
        extra = json.loads(payload["extra"])
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
      ValueError: naming the file, if it is unreadable or does not match ``template``.
    """
    import flax.serialization
    import jax

    try:
        payload = flax.serialization.msgpack_restore(Path(path).read_bytes())
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format is {payload.get('format')!r}")
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
