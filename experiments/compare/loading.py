"""Reading, validating and grouping the run records that :mod:`experiments.compare` summarises.

Reads the JSON records that :mod:`experiments.shared.records` writes (format
``"lstmx.record/1"``, one file per task, sequence length, variant and seed). Nothing is
ever modified or deleted; a bad file is skipped and reported in one line naming it.

Definitions used by the tables and plots:

* A record is compared under its **label**: ``label`` when present (e.g. ``"lstm+chrono"``),
  else ``variant``.
* **Diverged** seed: ``status == "diverged"`` or a non-finite final loss.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from experiments.shared.records import RECORD_FORMAT

__all__ = [
    "RECORD_FORMAT",
    "REFERENCE_VARIANT",
    "as_float",
    "check_record",
    "group_baseline",
    "group_records",
    "is_diverged",
    "label",
    "load_records",
    "study_reference",
    "variant_order",
]

REFERENCE_VARIANT = "lstm"
"""The default variant every other one is tested against within its (task, length) group."""

_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_loss(v: Any) -> bool:
    """A loss may be any number, NaN/inf included (Python's JSON writes them), or null."""
    return v is None or _is_number(v)


def check_record(rec: Any) -> str | None:
    """Returns what is wrong with a parsed record, or None when it is usable."""
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
    return None


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


def load_records(workdir: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Reads and validates every ``*.json`` under ``workdir/records/`` (recursively).

    A file that cannot be read, is not JSON, or lacks a required key or has one of the
    wrong type is skipped and reported; nothing is ever modified or deleted. Required:
    ``format`` (== :data:`RECORD_FORMAT`), ``task``, ``length``, ``variant``, ``seed``,
    ``baseline``, ``num_params``, ``history`` (list of ``{"step", "loss", ...}``),
    ``final`` (``{"step", "loss", "accuracy"?, ...}``), ``status`` and
    ``steps_per_second``; ``config`` and ``diverged_step`` are type-checked when present.
    A second record with the same task, length, variant and seed as an earlier one (in
    sorted path order) is reported and skipped.

    Args:
      workdir: the experiment directory (the one passed as ``--workdir`` to training).

    Returns:
      ``(records, problems)``: the valid records as dicts, each with an added ``"_path"``
      (the file it came from), in sorted path order; and one line per skipped file, each
      starting with the file's path. Both are empty when ``workdir/records`` does not
      exist.
    """
    root = Path(workdir) / "records"
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[tuple[str, int, str, int], Path] = {}
    for path in sorted(p for p in root.rglob("*.json") if p.is_file()):
        try:
            with open(path, encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read: {e}")
            continue
        except json.JSONDecodeError as e:
            problems.append(f"{path}: not valid JSON: {e}")
            continue
        except RecursionError:
            problems.append(f"{path}: not valid JSON: nested too deeply")
            continue
        problem = check_record(rec)
        if problem is not None:
            problems.append(f"{path}: {problem}")
            continue
        key = (rec["task"], rec["length"], label(rec), rec["seed"])
        if key in seen:
            problems.append(
                f"{path}: duplicate of {seen[key]} (same task, length, variant and seed)"
            )
            continue
        seen[key] = path
        rec["_path"] = str(path)
        records.append(rec)
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
    """``{(task, length): {label: [records]}}``, groups sorted by task then length."""
    groups: dict[tuple[str, int], dict[str, list]] = {}
    for rec in records:
        groups.setdefault((rec["task"], rec["length"]), {}).setdefault(label(rec), []).append(rec)
    return {k: groups[k] for k in sorted(groups)}


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
