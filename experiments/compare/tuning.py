"""The tuning table: what a study's tuning cells saw at each candidate value of a setting.

A study tunes a setting (e.g. the learning rate) in cells of role ``"tune"`` and evaluates
the picked value on fresh seeds in a cell of role ``"eval"``, whose ``tuning`` object
names the setting, the candidates, the picked value, the rule and the tuning cells
(:mod:`experiments.compare.loading`). Tuning records are left out of the comparison; this
table shows them, one row per (task, length, label, other settings) × tuned value:

* **Tuned setting** of a tuning record: the ``setting`` of the eval cell that lists the
  record's cell among its ``tuning_cells``; else of the record's own cell's ``tuning``;
  else the one setting whose value differs among the label's tuning records (none when
  not exactly one does).
* **Seeds**, **diverged** (as in :mod:`experiments.compare.tables`), **final loss median**
  over the non-diverged seeds, **solved** (final loss ≤ solve fraction × baseline).
* **KM median steps to solve**: the Kaplan–Meier median of the time to solve, unsolved
  and diverged seeds censored at their last evaluation step
  (:func:`experiments.compare.stats.km_median`); NaN where fewer than half are seen to
  solve.
* **Picked**: the value the eval cell picked (its ``tuning.picked``).
"""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.compare import loading, stats
from experiments.compare.loading import (
    as_float,
    format_setting,
    group_baseline,
    is_diverged,
    is_tune,
    settings,
)
from experiments.compare.tables import DEFAULT_SOLVE_FRACTION, solve_times
from experiments.shared.records import write_atomic

__all__ = [
    "TUNING_CSV_FIELDS",
    "format_tuning_markdown",
    "summarise_tuning",
    "write_tuning_csv",
]

_MISSING = "—"
_PICKED = "✓"

TUNING_CSV_FIELDS = (
    "task",
    "length",
    "variant",
    "label",
    "settings",
    "setting",
    "value",
    "picked",
    "n_seeds",
    "n_diverged",
    "n_solved",
    "loss_median",
    "km_median_steps_to_solve",
    "solve_fraction",
    "solve_threshold",
    "rule",
    "cells",
)
"""The tuning rows' keys written to ``tuning.csv``, in column order."""


def _eval_tunings(records: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping, dict]]:
    """``(eval record, its tuning)``, one per tuned eval cell (its records share the object)."""
    seen: set[int] = set()
    out = []
    for rec in records:
        tuning = rec.get("_tuning")
        if not is_tune(rec) and tuning and id(tuning) not in seen:
            seen.add(id(tuning))
            out.append((rec, tuning))
    return out


def _tuned_setting(
    rec: Mapping[str, Any],
    by_cell: Mapping[str, dict],
    peers: Sequence[Mapping[str, Any]],
) -> str | None:
    """The setting a tuning record's cell tunes (see the module docstring)."""
    if rec.get("_cell") in by_cell:
        return by_cell[rec["_cell"]]["setting"]
    own = rec.get("_tuning")
    if isinstance(own, dict) and isinstance(own.get("setting"), str):
        return own["setting"]
    differ = [k for k in loading.differing_settings([settings(p) for p in peers]) if k != "variant"]
    return differ[0] if len(differ) == 1 else None


def _others(rec: Mapping[str, Any], setting: str | None) -> dict[str, Any]:
    return {k: v for k, v in settings(rec).items() if k != setting}


def _same(a: Any, b: Any) -> bool:
    """Two setting values are the same (1 == 1.0, as in the grouping)."""
    return loading.canonical(a) == loading.canonical(b)


def _picked(
    key: tuple, setting: str | None, cells: set[str], evals: Sequence[tuple[Mapping, dict]]
) -> tuple[Any, str, bool]:
    """``(picked value, rule, found)`` of the eval cell tuned from this group, if any."""
    task, length, name, others = key
    for rec, tuning in evals:
        listed = set(tuning.get("tuning_cells") or ())
        same_group = (
            (rec["task"], rec["length"], loading.label(rec)) == (task, length, name)
            and tuning["setting"] == setting
            and _same(_others(rec, setting), others)
        )
        if (listed & cells) or (not listed and same_group):
            return tuning.get("picked"), str(tuning.get("rule") or ""), True
    return None, "", False


def _value_order(value: Any) -> tuple[bool, Any]:
    """Numbers ascending, then anything else by its text."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (not number, float(value) if number else repr(value))


def _tuning_row(recs: Sequence[Mapping[str, Any]], threshold: float) -> dict[str, Any]:
    finite = [r for r in recs if not is_diverged(r)]
    times, solved = solve_times(recs, threshold)
    losses = [as_float(r["final"]["loss"]) for r in finite]
    return {
        "n_seeds": len(recs),
        "n_diverged": len(recs) - len(finite),
        "n_solved": int(solved.sum()),
        "loss_median": statistics.median(losses) if losses else math.nan,
        "km_median_steps_to_solve": stats.km_median(times, solved),
    }


def summarise_tuning(
    records: Sequence[Mapping[str, Any]], solve_fraction: float = DEFAULT_SOLVE_FRACTION
) -> list[dict[str, Any]]:
    """One row per (task, length, label, other settings) × tuned value of the tuning records.

    Args:
      records: valid records (:func:`experiments.compare.loading.load_records`); only
        those of role ``"tune"`` make rows, the eval ones name the picked values.
      solve_fraction: as in :func:`experiments.compare.tables.summarise`, in (0, 1].

    Returns:
      Rows sorted by task, length, label, other settings and value, each with the keys of
      :data:`TUNING_CSV_FIELDS` (``variant``: the label, plus the other settings that
      differ between the label's tuning groups, as in row names; ``settings``: the other
      settings that differ between the groups of the (task, length), ``name=value; ...``;
      ``value``: the tuned value as text; ``picked``: bool; ``cells``: ``; ``-joined cell
      ids) and ``_value`` (the value itself). Empty without tuning records.

    Raises:
      ValueError: ``solve_fraction`` outside (0, 1].
    """
    if not (0.0 < solve_fraction <= 1.0):
        raise ValueError(f"solve_fraction must be in (0, 1]; got {solve_fraction!r}")
    tune = [r for r in records if is_tune(r)]
    evals = _eval_tunings(records)
    by_cell = {c: t for _, t in evals for c in (t.get("tuning_cells") or ())}
    peers: dict[tuple, list] = {}
    for rec in tune:
        peers.setdefault((rec["task"], rec["length"], loading.label(rec)), []).append(rec)
    groups: dict[tuple, dict[str, Any]] = {}
    for rec in tune:
        name = loading.label(rec)
        setting = _tuned_setting(rec, by_cell, peers[(rec["task"], rec["length"], name)])
        others = _others(rec, setting)
        key = (rec["task"], rec["length"], name, loading.canonical(others), setting)
        group = groups.setdefault(key, {"others": others, "setting": setting, "values": {}})
        value = settings(rec).get(setting) if setting else None
        group["values"].setdefault(loading.canonical(value), (value, []))[1].append(rec)
    rows: list[dict[str, Any]] = []
    for key in sorted(groups, key=lambda k: (*k[:3], repr(k[3]), k[4] or "")):
        task, length, name, _, setting = key
        group = groups[key]
        siblings = [g["others"] for k, g in groups.items() if k[:3] == key[:3]]
        in_name = loading.differing_settings(siblings)
        across = [
            k
            for k in loading.differing_settings(
                [g["others"] for k2, g in groups.items() if k2[:2] == key[:2]]
            )
            if k not in ("task", "length", "variant")
        ]
        variant = " ".join(
            [name, *(f"{loading.short_name(k)}={format_setting(group['others'].get(k))}"
                     for k in in_name)]
        )  # fmt: skip
        recs_all = [r for _, recs in group["values"].values() for r in recs]
        baseline, _ = group_baseline({"all": recs_all})
        threshold = solve_fraction * baseline
        cells = {r["_cell"] for r in recs_all if r.get("_cell")}
        picked, rule, found = _picked((task, length, name, group["others"]), setting, cells, evals)
        values = sorted(group["values"].values(), key=lambda vr: _value_order(vr[0]))
        for value, recs in values:
            recs = sorted(recs, key=lambda r: r["seed"])
            rows.append(
                {
                    "task": task,
                    "length": length,
                    "variant": variant,
                    "label": name,
                    "settings": "; ".join(
                        f"{k}={format_setting(group['others'].get(k, 'absent'))}" for k in across
                    ),
                    "setting": setting or "",
                    "value": format_setting(value) if setting else "",
                    "_value": value,
                    "picked": bool(found and setting and _same(value, picked)),
                    **_tuning_row(recs, threshold),
                    "solve_fraction": float(solve_fraction),
                    "solve_threshold": threshold,
                    "rule": rule,
                    "cells": "; ".join(sorted({r["_cell"] for r in recs if r.get("_cell")})),
                }
            )
    return rows


def _fmt(v: float, spec: str) -> str:
    return _MISSING if v is None or not math.isfinite(v) else format(v, spec)


def format_tuning_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The "Tuning" section: definitions, then one table per (task, length), rules below.

    Args:
      rows: from :func:`summarise_tuning` (one solve fraction throughout).

    Returns:
      The markdown text (ends with a newline); "" without rows.
    """
    if not rows:
        return ""
    fraction = rows[0]["solve_fraction"]
    out = [
        "## Tuning",
        "",
        "Records of tuning cells: they pick a setting's value and are not part of the "
        "comparison above (the evaluated rows use fresh seeds). Per value: seeds, diverged "
        "seeds, median final loss over the non-diverged seeds, seeds solved (final "
        f"held-out loss ≤ {fraction:g} × baseline) and the Kaplan–Meier median steps to "
        "solve (unsolved and diverged seeds censored at their last evaluation step; — "
        f"where fewer than half solve). {_PICKED}: the value picked for evaluation.",
        "",
    ]
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["length"]), []).append(row)
    for (task, length), group in groups.items():
        out += [
            f"### {task}, T={length}",
            "",
            "| variant | tuned setting | value | seeds | diverged | final loss median "
            "| solved | KM median steps to solve | picked |",
            "|" + "---|" * 9,
        ]
        rules: dict[str, list[str]] = {}
        for row in group:
            out.append(
                "| "
                + " | ".join(
                    [
                        f"`{row['variant']}`",
                        row["setting"] or _MISSING,
                        row["value"] or _MISSING,
                        str(row["n_seeds"]),
                        str(row["n_diverged"]),
                        _fmt(row["loss_median"], ".4g"),
                        f"{row['n_solved']}/{row['n_seeds']}",
                        _fmt(row["km_median_steps_to_solve"], ".0f"),
                        _PICKED if row["picked"] else "",
                    ]
                )
                + " |"
            )
            if row["rule"] and f"`{row['variant']}`" not in rules.get(row["rule"], []):
                rules.setdefault(row["rule"], []).append(f"`{row['variant']}`")
        out.append("")
        if rules:
            out += [
                "Picked by the rule: "
                + "; ".join(f"{', '.join(names)}: {rule}" for rule, names in rules.items())
                + ".",
                "",
            ]
        unpicked = sorted(
            {r["variant"] for r in group} - {r["variant"] for r in group if r["picked"]}
        )
        if unpicked:
            names = ", ".join(f"`{n}`" for n in unpicked)
            out += [f"No eval cell names a picked value for {names}.", ""]
    return "\n".join(out)


def _csv_cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return v


def write_tuning_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Writes the tuning rows as CSV (:data:`TUNING_CSV_FIELDS`), atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TUNING_CSV_FIELDS)
    for row in rows:
        writer.writerow([_csv_cell(row[f]) for f in TUNING_CSV_FIELDS])
    write_atomic(path, buf.getvalue().encode("utf-8"))
