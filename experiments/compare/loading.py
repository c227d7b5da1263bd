"""Reading, validating and grouping the run records that :mod:`experiments.compare` summarises.

Reads the JSON records that :mod:`experiments.shared.records` writes (format
``"lstmx.record/1"``, one file per task, sequence length, variant and seed). Nothing is
ever modified or deleted; a bad file is skipped and reported in one line naming it.

A workdir holds records under ``WORKDIR/records/**/*.json``; a **study** workdir (written
by the sweep engine) also has ``WORKDIR/study.json`` and one folder per cell::

    WORKDIR/cells/<cell_id>/cell.json          {"format": "lstmx.cell/1", "id", "role",
                                                "config", "tuning"}
    WORKDIR/cells/<cell_id>/records/*.json     ordinary records, one per seed

A cell's **role** is ``"tune"`` (its records only pick a setting, e.g. the learning rate,
and are shown in the tuning table) or ``"eval"`` (its records are compared). Its
``tuning`` is null or ``{"setting", "candidates", "picked", "rule", "tuning_cells"}``.

Definitions used by the tables and plots:

* A record is compared under its **label**: ``label`` when present (e.g. ``"lstm+chrono"``),
  else ``variant``.
* A record's **settings**: every entry of its ``config`` but ``seeds``. Records are never
  pooled across settings: within a (task, length) group, a label whose records have
  different settings is split into one **row** per settings, named by the settings that
  differ within the label, e.g. ``gru lr=0.001`` and ``gru lr=0.01`` (short names:
  :data:`SHORT_NAMES`). A row of a tuned eval cell names its picked value and ends in
  ``(tuned)``, e.g. ``lstm lr=0.003 (tuned)``.
* **Diverged** seed: ``status == "diverged"`` or a non-finite final loss.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from experiments.shared.records import RECORD_FORMAT
from experiments.shared.records import record_problem as check_record

__all__ = [
    "CELL_FORMAT",
    "RECORD_FORMAT",
    "REFERENCE_VARIANT",
    "SHORT_NAMES",
    "Row",
    "as_float",
    "canonical",
    "check_cell",
    "check_record",
    "differing_settings",
    "find_reference",
    "format_setting",
    "group_baseline",
    "group_records",
    "group_rows",
    "is_diverged",
    "is_tune",
    "label",
    "load_records",
    "load_workdirs",
    "settings",
    "short_name",
    "study_reference",
    "variant_order",
]

CELL_FORMAT = "lstmx.cell/1"
"""The ``format`` of a study cell's ``cell.json``."""

SHORT_NAMES = {
    "learning_rate": "lr",
    "hidden_size": "hidden",
    "batch_size": "batch",
    "num_layers": "layers",
    "eval_batch_size": "eval_batch",
}
"""Short names of common settings in row names; any other setting goes by its own name."""

REFERENCE_VARIANT = "lstm"
"""The default variant every other one is tested against within its (task, length) group."""


def study_reference(workdir: str | os.PathLike[str]) -> str:
    """The reference variant a study declares in ``workdir/study.json``, else ``lstm``.

    A study whose ablations are one change away from another variant (Greff et al.'s are
    from the peephole LSTM) says so in ``{"reference": "peephole"}``, so that
    ``python -m experiments.compare --workdir=...`` prints its published table unflagged.

    Raises:
      ValueError: the file exists but is not a JSON object with a string ``reference``.
    """
    path = Path(workdir) / "study.json"
    if not path.exists():
        return REFERENCE_VARIANT
    try:
        study = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    reference = study.get("reference") if isinstance(study, dict) else None
    if not isinstance(reference, str) or not reference.strip():
        raise ValueError(
            f'{path} must be a JSON object with a variant name under "reference", '
            f'e.g. {{"reference": "peephole"}}; got {study!r}'
        )
    return reference


def check_cell(cell: Any) -> str | None:
    """Returns what is wrong with a parsed ``cell.json``, or None when it is usable."""
    if not isinstance(cell, dict):
        return f"top level is {type(cell).__name__}, expected a JSON object"
    if cell.get("format") != CELL_FORMAT:
        return f"format is {cell.get('format')!r}, expected {CELL_FORMAT!r}"
    if cell.get("role") not in ("tune", "eval"):
        return f"'role' must be 'tune' or 'eval'; got {cell.get('role')!r}"
    tuning = cell.get("tuning")
    if tuning is None:
        return None
    if not isinstance(tuning, dict):
        return f"'tuning' must be an object or null; got {type(tuning).__name__}"
    if not isinstance(tuning.get("setting"), str) or not tuning["setting"]:
        return f"'tuning.setting' must be a setting's name; got {tuning.get('setting')!r}"
    cells = tuning.get("tuning_cells", [])
    if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
        return "'tuning.tuning_cells' must be a list of cell ids"
    return None


def _read_json(path: Path) -> tuple[Any, str | None]:
    """The parsed file, or None and why it cannot be read (one line, no path)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"cannot read: {e}"
    except json.JSONDecodeError as e:
        return None, f"not valid JSON: {e}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply"


def _cell_role(folder: Path, problems: list[str]) -> tuple[str, dict[str, Any] | None]:
    """A cell's ``(role, tuning)``; ``("eval", None)`` without a usable ``cell.json``."""
    path = folder / "cell.json"
    if not path.exists():
        return "eval", None
    cell, problem = _read_json(path)
    if problem is None:
        problem = check_cell(cell)
    if problem is not None:
        problems.append(f"{path}: {problem}; its records are read as role 'eval'")
        return "eval", None
    return cell["role"], cell.get("tuning")


def canonical(value: Any) -> Any:
    """A hashable form of a JSON value in which 1 and 1.0 are the same setting."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return tuple(canonical(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, canonical(v)) for k, v in value.items()))
    return repr(value)


def settings(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A record's settings: its ``config`` without ``seeds`` (empty without a config)."""
    return {k: v for k, v in (rec.get("config") or {}).items() if k != "seeds"}


def _settings_key(rec: Mapping[str, Any]) -> Any:
    """Hashable settings; None for a record without a config."""
    if "config" not in rec:
        return None
    return canonical(settings(rec))


def is_tune(rec: Mapping[str, Any]) -> bool:
    """True for a record of a tuning cell (``_role == "tune"``), left out of comparisons."""
    return rec.get("_role") == "tune"


def _record_paths(root: Path) -> list[tuple[Path, Path | None]]:
    """``(record path, its cell folder or None)``: ``records/**`` first, then each cell's."""
    plain = sorted(p for p in (root / "records").rglob("*.json") if p.is_file())
    cells = sorted(p for p in (root / "cells").glob("*") if p.is_dir())
    in_cells = [
        (path, cell)
        for cell in cells
        for path in sorted(p for p in (cell / "records").glob("*.json") if p.is_file())
    ]
    return [(p, None) for p in plain] + in_cells


def _load_into(
    workdir: str | os.PathLike[str],
    records: list[dict[str, Any]],
    problems: list[str],
    seen: dict[Any, Path],
) -> None:
    """Appends ``workdir``'s valid records and problems; ``seen`` finds duplicates."""
    roles: dict[Path, tuple[str, dict[str, Any] | None]] = {}
    for path, cell in _record_paths(Path(workdir)):
        if cell is not None and cell not in roles:
            roles[cell] = _cell_role(cell, problems)
        role, tuning = roles[cell] if cell is not None else ("eval", None)
        rec, problem = _read_json(path)
        if problem is None:
            problem = check_record(rec)
        if problem is not None:
            problems.append(f"{path}: {problem}")
            continue
        key = (rec["task"], rec["length"], label(rec), _settings_key(rec), role, rec["seed"])
        if key in seen:
            problems.append(
                f"{path}: duplicate of {seen[key]} (same task, length, variant, settings and seed)"
            )
            continue
        seen[key] = path
        rec["_path"] = str(path)
        rec["_role"] = role
        rec["_tuning"] = tuning
        rec["_cell"] = cell.name if cell is not None else None
        records.append(rec)


def load_records(workdir: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Reads and validates every record of ``workdir``: ``records/**/*.json`` and the cells'.

    A file that cannot be read, is not JSON, or lacks a required key or has one of the
    wrong type is skipped and reported; nothing is ever modified or deleted. Required:
    ``format`` (== :data:`RECORD_FORMAT`), ``task``, ``length``, ``variant``, ``seed``,
    ``baseline``, ``num_params``, ``history`` (list of ``{"step", "loss", ...}``),
    ``final`` (``{"step", "loss", "accuracy"?, ...}``), ``status`` and
    ``steps_per_second``; ``config`` and ``diverged_step`` are type-checked when present.
    A second record with the same task, length, label, settings (its ``config`` but
    ``seeds``; a record without a config has none), role and seed as an earlier one (in the
    order below) is reported and skipped. A cell whose ``cell.json`` is missing reads as
    role ``"eval"``; one whose ``cell.json`` is unreadable or malformed too, reported in one
    line.

    Args:
      workdir: the experiment directory (the one passed as ``--workdir`` to training).

    Returns:
      ``(records, problems)``: the valid records as dicts, each with added ``"_path"`` (the
      file it came from), ``"_role"`` (``"tune"`` or ``"eval"``; ``"eval"`` for
      ``records/``), ``"_tuning"`` (its cell's ``tuning`` object, or None) and ``"_cell"``
      (the cell id, or None), in sorted path order (``records/`` first, then the cells by
      id); and one line per problem, each starting with the file's path. Both are empty
      when the workdir has neither ``records/`` nor ``cells/``.
    """
    return load_workdirs([workdir])


def load_workdirs(
    workdirs: Sequence[str | os.PathLike[str]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`load_records` of several workdirs together, in the given order.

    A record that duplicates one of an earlier workdir (same task, length, label,
    settings, role and seed) is reported and skipped, as within one workdir.
    """
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[Any, Path] = {}
    for workdir in workdirs:
        _load_into(workdir, records, problems, seen)
    return records, problems


def as_float(v: Any) -> float:
    """A record's number as a float; JSON ``null`` is NaN."""
    return math.nan if v is None else float(v)


def is_diverged(rec: Mapping[str, Any]) -> bool:
    """True when the seed diverged: by its status, or by a non-finite final loss."""
    return rec["status"] == "diverged" or not math.isfinite(as_float(rec["final"]["loss"]))


def label(rec: Mapping[str, Any]) -> str:
    """The name a record is compared under: its ``label`` (e.g. "lstm+chrono") or variant."""
    return rec.get("label") or rec["variant"]


def variant_order(variants: Iterable[str], reference: str = REFERENCE_VARIANT) -> list[str]:
    """The reference variant first, then the others alphabetically."""
    return sorted(set(variants), key=lambda v: (v != reference, v))


def group_records(
    records: Iterable[Mapping[str, Any]],
) -> dict[tuple[str, int], dict[str, list[Mapping[str, Any]]]]:
    """``{(task, length): {label: [records]}}``, groups sorted by task then length.

    Pools a label's records whatever their settings; the tables and plots use
    :func:`group_rows`, which does not.
    """
    groups: dict[tuple[str, int], dict[str, list]] = {}
    for rec in records:
        groups.setdefault((rec["task"], rec["length"]), {}).setdefault(label(rec), []).append(rec)
    return {k: groups[k] for k in sorted(groups)}


class Row(NamedTuple):
    """The records of one table row: one label at one settings.

    Attributes:
      name: the row's name, e.g. ``"gru"``, ``"gru lr=0.001"``, ``"lstm lr=0.003 (tuned)"``.
      label: the records' label.
      settings: the records' settings (their ``config`` but ``seeds``).
      tuning: the eval cell's ``tuning`` object when the setting was tuned, else None.
      records: the records, one per seed.
    """

    name: str
    label: str
    settings: dict[str, Any]
    tuning: dict[str, Any] | None
    records: list[Mapping[str, Any]]


_ABSENT = object()


def short_name(setting: str) -> str:
    """A setting's name in row names: ``lr`` for ``learning_rate``, ...; else its own."""
    return SHORT_NAMES.get(setting, setting)


def format_setting(value: Any, precise: bool = False) -> str:
    """A setting's value in row names and notes: numbers as ``%g`` (``repr`` if precise)."""
    if value is _ABSENT:
        return "absent"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return repr(value) if precise else format(value, "g")
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def differing_settings(all_settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The settings whose values are not the same in all of ``all_settings``, in order."""
    keys = list(dict.fromkeys(k for s in all_settings for k in s))
    values = [{canonical(s[k]) if k in s else _ABSENT for s in all_settings} for k in keys]
    return [k for k, v in zip(keys, values) if len(v) > 1]


def _row_name(
    name: str,
    own: Mapping[str, Any],
    differ: Sequence[str],
    tuning: Any,
    precise: bool,
    split: bool,
) -> str:
    if not own and split:
        return f"{name} (no config)"
    parts = [f"{short_name(k)}={format_setting(own.get(k, _ABSENT), precise)}" for k in differ]
    if tuning is not None:
        setting = tuning["setting"]
        if setting not in differ:
            value = own.get(setting, tuning.get("picked", _ABSENT))
            parts.append(f"{short_name(setting)}={format_setting(value, precise)}")
        parts.append("(tuned)")
    return " ".join([name, *parts])


def _label_rows(name: str, recs: Sequence[Mapping[str, Any]]) -> list[Row]:
    """One :class:`Row` per distinct settings among one label's records."""
    by_settings: dict[Any, list[Mapping[str, Any]]] = {}
    for rec in recs:
        by_settings.setdefault(_settings_key(rec), []).append(rec)
    variants = list(by_settings.values())
    own = [settings(group[0]) for group in variants]
    tunings = [next((r["_tuning"] for r in g if r.get("_tuning")), None) for g in variants]
    differ = differing_settings([o for o in own if o])  # a record without config: "(no config)"
    split = len(variants) > 1
    for precise in (False, True):  # %g may round two values to one name; repr does not.
        names = [_row_name(name, o, differ, t, precise, split) for o, t in zip(own, tunings)]
        if len(set(names)) == len(names):
            break
    return [
        Row(n, name, o, t, sorted(g, key=lambda r: r["seed"]))
        for n, o, t, g in zip(names, own, tunings, variants)
    ]


def group_rows(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], list[Row]]:
    """``{(task, length): [Row]}`` of the records that are compared (tuning ones left out).

    Within a group, each label's records are split by settings (see the module
    docstring); rows are in name order, groups sorted by task then length.
    """
    groups: dict[tuple[str, int], dict[str, list]] = {}
    for rec in records:
        if not is_tune(rec):
            key = (rec["task"], rec["length"])
            groups.setdefault(key, {}).setdefault(label(rec), []).append(rec)
    return {
        key: sorted(
            (row for name, recs in groups[key].items() for row in _label_rows(name, recs)),
            key=lambda row: row.name,
        )
        for key in sorted(groups)
    }


def _has_setting(row: Row, token: str) -> bool:
    """Whether ``token`` (``name=value``, short or full name) is one of ``row``'s settings."""
    name, sep, value = token.partition("=")
    if not sep:
        return False
    for key, own in row.settings.items():
        if name in (key, short_name(key)):
            return value in (format_setting(own), format_setting(own, precise=True))
    return False


def find_reference(rows: Sequence[Row], reference: str, where: str) -> Row | None:
    """The row of a group that ``reference`` names, or None when it names none.

    ``reference`` is a row's full name (``"lstm lr=0.001"``), or a label and any of its
    settings as ``name=value``: it names the one row of that label with those settings.

    Args:
      rows: one group's rows (:func:`group_rows`).
      reference: the reference as given (``--reference`` or ``study.json``).
      where: the group, for the message, e.g. ``"adding, T=100"``.

    Raises:
      ValueError: ``reference`` fits several rows (its records have different settings);
        the message lists their names.
    """
    exact = [row for row in rows if row.name == reference]
    if exact:
        return exact[0]
    tokens = reference.split()
    if not tokens:
        return None
    wanted = [t for t in tokens[1:] if t != "(tuned)"]
    fits = [row for row in rows if row.label == tokens[0]]
    fits = [row for row in fits if all(_has_setting(row, t) for t in wanted)]
    if len(fits) > 1:
        names = ", ".join(f"'{row.name}'" for row in fits)
        raise ValueError(
            f"reference {reference!r} is ambiguous in {where}: its records have different "
            f"settings, in rows {names}; name one row in full as the reference, e.g. "
            f"--reference='{fits[0].name}'"
        )
    return fits[0] if fits else None


def group_baseline(by_variant: Mapping[str, list]) -> tuple[float, str]:
    """The group's memoryless baseline (median over its records) and a note if they differ."""
    baselines = [float(r["baseline"]) for recs in by_variant.values() for r in recs]
    baseline = statistics.median(baselines)
    if max(baselines) - min(baselines) > 1e-6 * baseline:
        return baseline, (
            f"records disagree on the baseline ({min(baselines):.6g}..{max(baselines):.6g}); "
            "the median is used"
        )
    return baseline, ""
