"""A study's workdir: what it holds, and the state of each cell read from it.

Layout::

    STUDY/study.json                 the spec (:mod:`experiments.sweep.grid`), written once
    STUDY/tuning.json                the picks made so far (tuned studies)
    STUDY/cells/<id>/cell.json       the cell: role, config, and for an evaluation cell of
                                     a tuned study how its value was picked
    STUDY/cells/<id>/records/        one record per seed (``experiments.run``'s format)
    STUDY/cells/<id>/checkpoints/    while it trains
    STUDY/cells/<id>/.lock           held by the worker training it
    STUDY/cells/<id>/failure.json    the last failure (exit status, last line), until done
    STUDY/cells/<id>/log.txt         the cell's output, every attempt

The sweep is stateless beyond this folder: a cell is *done* when every seed has a valid
record of its config, *running* while a process holds its lock, *failed* when its last
attempt failed, and *pending* otherwise. So any number of sweeps on any number of machines
can share one study directory, and running the same command again is the retry.

A *snapshot* (:func:`snapshot`, ``--snapshot``) is the same layout with only the spec, the
picks, the cells' ``cell.json`` and their valid records: no checkpoints, locks, logs or
failures. It is small enough to commit, and a sweep given it as ``--workdir`` goes on
from it (finished cells stay finished; a cell that was mid-way starts again).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from experiments.compare.loading import check_record
from experiments.shared import records
from experiments.sweep import grid
from experiments.sweep.grid import Cell

__all__ = [
    "CELL_FORMAT",
    "LOCK_NAME",
    "STUDY_FORMAT",
    "StudyMismatchError",
    "additions",
    "cell_dir",
    "cell_records",
    "cell_state",
    "clear_failure",
    "open_study",
    "read_failure",
    "read_spec",
    "snapshot",
    "write_cell",
    "write_failure",
    "write_picks",
]

STUDY_FORMAT = "lstmx.study/1"
CELL_FORMAT = "lstmx.cell/1"


class StudyMismatchError(ValueError):
    """The workdir holds another study (another spec)."""


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_spec(workdir: str | os.PathLike) -> dict:
    """The spec in ``STUDY/study.json``.

    Raises:
      ValueError: no study there, or an unreadable study.json (one line saying which).
    """
    path = Path(workdir) / "study.json"
    try:
        study = _read_json(path)
    except FileNotFoundError:
        raise ValueError(f"{workdir} holds no study (no {path.name}).") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {path}: {error}") from None
    if not isinstance(study, dict) or study.get("format") != STUDY_FORMAT:
        raise ValueError(f"{path} is not a study file (format {STUDY_FORMAT!r} expected).")
    return study["spec"]


def _differences(on_disk: Mapping, wanted: Mapping, where: str = "") -> list[str]:
    out = []
    for key in sorted(set(on_disk) | set(wanted)):
        a, b = on_disk.get(key), wanted.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{where}{key}.")
        elif a != b:
            out.append(f"{where}{key}: {a!r} there, {b!r} now")
    return out


def additions(on_disk: Mapping, wanted: Mapping) -> list[str] | None:
    """What ``wanted`` adds to the study ``on_disk`` when it only appends values to grid
    axes (``["variant + min_gru_neg", ...]``); None when it changes anything else.

    Such a study only has new cells: every cell already there keeps its id, tuning group
    and settings (checked), so its records. The tuned axis cannot grow (its picks are
    made), nor can an axis that would start to vary (it would join every cell's id), the
    seeds or any other setting.
    """
    keys = set(on_disk) | set(wanted)
    if any(on_disk.get(k) != wanted.get(k) for k in keys - {"grid"}):
        return None
    old_grid, new_grid = on_disk.get("grid"), wanted.get("grid")
    if not isinstance(old_grid, list) or not isinstance(new_grid, list):
        return None
    if len(old_grid) != len(new_grid):
        return None
    added = []
    for old, new in zip(old_grid, new_grid):
        if set(old) != set(new):
            return None
        for axis in old:
            before, after = list(old[axis]), list(new[axis])
            if after[: len(before)] != before or (after != before and axis == wanted.get("tune")):
                return None
            added += [f"{axis} + {value}" for value in after[len(before) :]]
    # An axis that starts to vary (one value before) joins the cells' ids: then the old
    # cells would be new ones. Growth keeps every old cell, by id, group and settings.
    try:
        kept = {c.id: (c.group, c.config.to_dict()) for c in grid.expand(dict(wanted))}
        old_cells = grid.expand(dict(on_disk))
    except grid.GridError:
        return None
    if any(kept.get(c.id) != (c.group, c.config.to_dict()) for c in old_cells):
        return None
    return added


def open_study(workdir: str | os.PathLike, spec: dict, *, grow: bool = False) -> list[str]:
    """Writes ``study.json`` for a new study, or checks that the workdir holds this one.

    Args:
      grow: let ``spec`` extend the study there with values appended to its grid axes
        (:func:`additions`); ``study.json`` is then rewritten with ``spec``.

    Returns:
      What ``spec`` added to the study there (empty unless it grew).

    Raises:
      StudyMismatchError: the workdir holds a study with another spec (nothing written).
    """
    path = Path(workdir) / "study.json"
    if path.exists():
        on_disk = read_spec(workdir)
        differences = _differences(on_disk, spec)
        if not differences:
            return []
        added = additions(on_disk, spec)
        if grow and added:
            study = {"format": STUDY_FORMAT, "name": spec["name"], "reference": spec["reference"]}
            records.write_json_atomic(path, {**study, "spec": spec})
            return added
        hint = " or --grow to add them," if added else ""
        raise StudyMismatchError(
            f"{workdir} holds another study ({'; '.join(differences[:4])}"
            f"{'; ...' if len(differences) > 4 else ''}); use another --workdir,{hint} or the "
            "same study."
        )
    study = {"format": STUDY_FORMAT, "name": spec["name"], "reference": spec["reference"]}
    records.write_json_atomic(path, {**study, "spec": spec})
    return []


def cell_dir(workdir: str | os.PathLike, cell: Cell) -> Path:
    """Where a cell's records, checkpoint, lock and log live."""
    return Path(workdir) / "cells" / cell.id


def write_cell(workdir: str | os.PathLike, cell: Cell, tuning: dict | None = None) -> None:
    """Writes ``cell.json`` (before the cell trains; the same content every time)."""
    content = {
        "format": CELL_FORMAT,
        "id": cell.id,
        "role": cell.role,
        "group": cell.group,
        "config": cell.config.to_dict(),
        "tuning": tuning,
    }
    path = cell_dir(workdir, cell) / "cell.json"
    if not path.exists() or _read_json(path) != content:
        records.write_json_atomic(path, content)


def cell_records(workdir: str | os.PathLike, cell: Cell) -> dict[int, dict]:
    """``{seed: record}`` of the cell's valid records made with its settings."""
    wanted = {k: v for k, v in cell.config.to_dict().items() if k != "seeds"}
    found = {}
    for seed in cell.config.seeds:
        path = records.record_path(
            cell_dir(workdir, cell), cell.config.task, cell.config.length, cell.config.label, seed
        )
        try:
            record = _read_json(path)
        except (OSError, ValueError):
            continue
        if check_record(record) is not None or not isinstance(record.get("config"), dict):
            continue
        if {k: v for k, v in record["config"].items() if k != "seeds"} == wanted:
            found[seed] = record
    return found


LOCK_NAME = ".lock"
"""A cell's lock: :data:`experiments.shared.resume.LOCK_NAME` (a test holds them equal),
named here so that ``--status`` does not start JAX."""


def _lock_held(directory: Path) -> bool:
    path = directory / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the probe's lock
    return False


def cell_state(workdir: str | os.PathLike, cell: Cell) -> str:
    """ "done", "running", "failed" or "pending" (see the module docstring)."""
    directory = cell_dir(workdir, cell)
    if len(cell_records(workdir, cell)) == len(cell.config.seeds):
        return "done"
    if _lock_held(directory):
        return "running"
    if (directory / "failure.json").exists():
        return "failed"
    return "pending"


def write_failure(workdir: str | os.PathLike, cell: Cell, code: int, message: str) -> None:
    """Records a failed attempt: its exit status and its last line."""
    path = cell_dir(workdir, cell) / "failure.json"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    records.write_json_atomic(path, {"exit_status": code, "message": message, "time": stamp})


def read_failure(workdir: str | os.PathLike, cell: Cell) -> dict | None:
    """The last failure of a cell, or None."""
    try:
        return _read_json(cell_dir(workdir, cell) / "failure.json")
    except (OSError, ValueError):
        return None


def clear_failure(workdir: str | os.PathLike, cell: Cell) -> None:
    """Forgets a failure once the cell is done."""
    (cell_dir(workdir, cell) / "failure.json").unlink(missing_ok=True)


def write_picks(workdir: str | os.PathLike, picks: dict[str, dict]) -> None:
    """Writes ``tuning.json``: ``{group: {setting, candidates, scores, picked, rule}}``,
    keeping the picks of groups ``picks`` lacks (a sweep started before the study grew
    knows only the groups it had)."""
    path = Path(workdir) / "tuning.json"
    try:
        kept = _read_json(path)["picks"]
    except (OSError, ValueError, KeyError, TypeError):
        kept = {}
    records.write_json_atomic(path, {"rule": grid.SELECTION_RULE, "picks": {**kept, **picks}})


def snapshot(workdir: str | os.PathLike, destination: str | os.PathLike) -> tuple[int, int]:
    """Copies the study's spec, picks, cells and valid records to ``destination``.

    Each file is written atomically; files already in ``destination`` that the workdir
    lacks are kept, so a snapshot can be refreshed in place.

    Returns:
      ``(cells, records)`` copied.

    Raises:
      ValueError: ``workdir`` holds no study.
      StudyMismatchError: ``destination`` holds another study (not a smaller snapshot
        of this one, which grows with it).
    """
    source, target = Path(workdir), Path(destination)
    open_study(target, read_spec(source), grow=True)  # a study that grew since the last one
    picks = source / "tuning.json"
    if picks.exists():
        records.write_atomic(target / picks.name, picks.read_bytes())
    cells = copied = 0
    for cell_json in sorted(source.glob("cells/*/cell.json")):
        directory = cell_json.parent
        records.write_atomic(
            target / "cells" / directory.name / "cell.json", cell_json.read_bytes()
        )
        cells += 1
        for path in sorted((directory / "records").rglob("*.json")):
            data = path.read_bytes()
            try:
                valid = check_record(json.loads(data)) is None
            except ValueError:
                valid = False
            if valid:
                records.write_atomic(target / path.relative_to(source), data)
                copied += 1
    return cells, copied
