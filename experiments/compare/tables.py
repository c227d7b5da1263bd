"""Summary rows per (task, length, row), and the Markdown and CSV tables made from them.

Definitions used throughout (each Markdown table states them too):

* **Row**: the records of one label at one settings (every ``config`` entry but
  ``seeds``); a label whose records have different settings is split into rows named by
  what differs, e.g. ``gru lr=0.001`` and ``gru lr=0.01``
  (:func:`experiments.compare.loading.group_rows`). Records of tuning cells are left out
  (they are in the tuning table, :mod:`experiments.compare.tuning`). Settings shared by
  every row of a table are stated once above it; settings that differ between its rows
  are stated under it ("Rows differ in"). A row of fewer than :data:`MIN_SEEDS` seeds is
  marked ⚠.
* **Diverged** seed: ``status == "diverged"`` or a non-finite final loss. Diverged seeds are
  left out of the loss and accuracy statistics, of the test and of the curves, are counted
  in their own column, and count as unsolved.
* **Solved** seed: final held-out loss ``<= solve_fraction * baseline``, where ``baseline``
  is the task's memoryless loss stored in the record (copy: ``10 ln 8 / (T + 20)``,
  adding: ``1/6``). ``solve_fraction = 0.1`` by default. The solve rate is over all seeds
  and has a 95 % Wilson score interval.
* **Steps to solve**: the first evaluation step whose held-out loss is at or below the
  threshold; the median over solved seeds is reported.
* **Time to solve** (censored): a solved seed's steps to solve; an unsolved or diverged
  seed is right-censored at its last evaluation step (it was not seen to solve by then).
  **KM median steps to solve**: the first step at which the Kaplan–Meier estimate of the
  fraction unsolved is at most 1/2 (:func:`experiments.compare.stats.km_median`); ``—``
  (NaN) where it never is (the median is not reached).
* **Final loss**: mean, sample standard deviation, median, and a 95 % BCa bootstrap
  confidence interval of the mean (:func:`experiments.compare.stats.bootstrap_mean_ci`).
* **Test**: Welch's unequal-variance t-test of a row's final losses against those of
  the reference row (``lstm`` unless told otherwise) with the same task and length,
  two-sided; its p-values are Holm–Bonferroni adjusted over the family of comparisons in
  that (task, length) group. **Effect size**: Hedges' g against the reference
  (bias-corrected; negative = lower loss than the reference).
* **Log-rank test**: of a row's times to solve against the reference row's
  (``scipy.stats.logrank``, two-sided; statistic > 0: solves sooner than the reference);
  **log-rank p Holm**: Holm-adjusted over the group's log-rank p-values. NaN, with a note,
  where no seed of either row solved (nothing to test).
* **Fisher's exact test**: of the row's solve count against the reference's
  (solved/unsolved × row/reference, ``scipy.stats.fisher_exact``, two-sided); **Fisher p
  Holm**: Holm-adjusted over the group's Fisher p-values.
* **Detectable effect** (``detectable_g``): the smallest standardised effect (in units of
  Hedges' g) that a two-sided two-sample t-test with the row's and the reference's
  non-diverged seed counts detects with 80 % power at α = 0.05 / m, the strictest level of
  Holm's procedure over the group's m Welch tests (:func:`experiments.compare.stats.
  detectable_effect`); under each table for the smallest tested n against the reference's.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.compare import loading, stats
from experiments.compare.loading import (
    REFERENCE_VARIANT,
    as_float,
    format_setting,
    group_baseline,
    is_diverged,
)
from experiments.shared.records import write_atomic

__all__ = [
    "CSV_FIELDS",
    "DEFAULT_SOLVE_FRACTION",
    "FAMILY_ALPHA",
    "MIN_SEEDS",
    "corrections_line",
    "csv_header",
    "format_markdown",
    "power_line",
    "settings_lines",
    "solve_rate_column",
    "solve_times",
    "summarise",
    "write_csv",
]

DEFAULT_SOLVE_FRACTION = 0.1
"""A seed is solved when its final loss is at most this fraction of the memoryless baseline."""

MIN_SEEDS = 3
"""A row with fewer seeds is marked ⚠ in the table and noted."""

FAMILY_ALPHA = 0.05
"""The family-wise level at which the detectable effect is stated."""

WARNING_MARK = "⚠"
"""The mark of a row with fewer than :data:`MIN_SEEDS` seeds."""

_NOT_SETTINGS = ("task", "length", "variant")  # in the heading and the row names

_MISSING = "—"
_REFERENCE_NOTE = "reference variant"


def _steps_to_solve(rec: Mapping[str, Any], threshold: float) -> int:
    """First evaluation step whose held-out loss is at or below ``threshold``."""
    for point in sorted(rec["history"], key=lambda p: p["step"]):
        if as_float(point["loss"]) <= threshold:
            return point["step"]
    return rec["final"]["step"]  # Solved at the final evaluation, which history lacks.


def _last_step(rec: Mapping[str, Any]) -> int:
    """The record's last evaluation step (history or final)."""
    return max([point["step"] for point in rec["history"]] + [rec["final"]["step"]])


def solve_times(
    recs: Sequence[Mapping[str, Any]], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, its time to solve (censored), as defined in the module docstring.

    Args:
      recs: one row's records.
      threshold: the solve threshold, ``solve_fraction * baseline``.

    Returns:
      ``(times [n], solved [n])``: a solved seed's first evaluation step at or below
      ``threshold`` and True; an unsolved or diverged seed's last evaluation step and False.
    """
    solved = [not is_diverged(r) and as_float(r["final"]["loss"]) <= threshold for r in recs]
    times = [_steps_to_solve(r, threshold) if ok else _last_step(r) for r, ok in zip(recs, solved)]
    return np.asarray(times, dtype=np.float64), np.asarray(solved, dtype=bool)


def _final_losses(recs: Sequence[Mapping[str, Any]]) -> list[float]:
    return [as_float(r["final"]["loss"]) for r in recs if not is_diverged(r)]


def _variant_row(
    recs: Sequence[Mapping[str, Any]], threshold: float, notes: list[str]
) -> dict[str, Any]:
    """The statistics of one variant's seeds that do not involve the reference."""
    recs = sorted(recs, key=lambda r: r["seed"])
    finite = [r for r in recs if not is_diverged(r)]
    losses = _final_losses(recs)
    accuracies = [as_float(r["final"].get("accuracy")) for r in finite]
    accuracies = [a for a in accuracies if math.isfinite(a)]
    solved = [r for r in finite if as_float(r["final"]["loss"]) <= threshold]
    loss_mean, loss_std, loss_median = stats.mean_std_median(losses)
    loss_ci = stats.bootstrap_mean_ci(losses)
    acc_mean, acc_std, _ = stats.mean_std_median(accuracies)
    solve_ci = stats.wilson_ci(len(solved), len(recs))
    speeds = [as_float(r["steps_per_second"]) for r in recs]
    speeds = [v for v in speeds if math.isfinite(v) and v > 0]
    params = sorted({r["num_params"] for r in recs})
    if len(params) > 1:
        notes.append(f"parameter counts differ across seeds: {params}; median shown")
    if len(recs) < MIN_SEEDS:
        notes.append(f"fewer than {MIN_SEEDS} seeds ({len(recs)})")
    times, is_solved = solve_times(recs, threshold)
    return {
        "n_seeds": len(recs),
        "n_diverged": len(recs) - len(finite),
        "n_finite": len(finite),
        "loss_mean": loss_mean,
        "loss_std": loss_std,
        "loss_median": loss_median,
        "loss_ci_low": loss_ci.low,
        "loss_ci_high": loss_ci.high,
        "accuracy_mean": acc_mean,
        "accuracy_std": acc_std,
        "n_solved": len(solved),
        "solve_rate": len(solved) / len(recs),
        "solve_ci_low": solve_ci.low,
        "solve_ci_high": solve_ci.high,
        "steps_to_solve_median": (
            float(np.median([_steps_to_solve(r, threshold) for r in solved]))
            if solved
            else math.nan
        ),
        "km_median_steps_to_solve": stats.km_median(times, is_solved),
        "num_params": int(np.median([r["num_params"] for r in recs])),
        "steps_per_second": float(np.median(speeds)) if speeds else math.nan,
    }


def _comparison(
    losses: Sequence[float], ref_losses: Sequence[float] | None, is_reference: bool, ref: str
) -> dict[str, Any]:
    """Welch's test and Hedges' g of ``losses`` against the reference's, or why not."""
    nan = math.nan
    if is_reference:
        return {"welch_t": nan, "welch_df": nan, "welch_p": nan, "hedges_g": nan,
                "test_note": _REFERENCE_NOTE}  # fmt: skip
    if ref_losses is None:
        return {"welch_t": nan, "welch_df": nan, "welch_p": nan, "hedges_g": nan,
                "test_note": f"no {ref!r} records"}  # fmt: skip
    test = stats.welch_test(losses, ref_losses)
    g, g_note = stats.hedges_g(losses, ref_losses)
    note = test.note or g_note
    return {"welch_t": test.t, "welch_df": test.df, "welch_p": test.p, "hedges_g": g,
            "test_note": note}  # fmt: skip


def _censored_comparison(
    recs: Sequence[Mapping[str, Any]],
    ref_recs: Sequence[Mapping[str, Any]] | None,
    threshold: float,
    is_reference: bool,
    ref: str,
) -> dict[str, Any]:
    """The log-rank test of time to solve and Fisher's test of solve counts, or why not."""
    nan = math.nan
    empty = {"logrank_statistic": nan, "logrank_p": nan, "fisher_odds_ratio": nan,
             "fisher_p": nan}  # fmt: skip
    if is_reference:
        return empty | {"survival_note": ""}
    if ref_recs is None:
        return empty | {"survival_note": f"no {ref!r} records"}
    times, solved = solve_times(recs, threshold)
    ref_times, ref_solved = solve_times(ref_recs, threshold)
    logrank = stats.logrank_test(times, solved, ref_times, ref_solved)
    fisher = stats.fisher_test(
        int(solved.sum()), solved.size, int(ref_solved.sum()), ref_solved.size
    )
    return {
        "logrank_statistic": logrank.statistic,
        "logrank_p": logrank.p,
        "fisher_odds_ratio": fisher.odds_ratio,
        "fisher_p": fisher.p,
        "survival_note": "; ".join(n for n in (logrank.note, fisher.note) if n),
    }


def _holm_columns(group: list[dict[str, Any]], test: str) -> None:
    """Adds ``{test}_p_holm`` and ``{test}_family_size`` to each row of one group."""
    adjusted = stats.holm_adjust([row[f"{test}_p"] for row in group])
    family = int(np.sum(~np.isnan(adjusted)))
    for row, p_holm in zip(group, adjusted):
        row[f"{test}_p_holm"] = float(p_holm)
        row[f"{test}_family_size"] = family


def _detectable(group: list[dict[str, Any]], ref_row: Mapping[str, Any] | None) -> None:
    """Adds ``detectable_g`` (see the module docstring) to each row of one group."""
    m = group[0]["holm_family_size"]
    for row in group:
        row["detectable_g"] = (
            stats.detectable_effect(row["n_finite"], ref_row["n_finite"], FAMILY_ALPHA / m)
            if m and ref_row is not None and row is not ref_row
            else math.nan
        )


def _tuning_fields(row: loading.Row) -> dict[str, Any]:
    if row.tuning is None:
        return {"tuned_setting": "", "tuned_value": ""}
    setting = row.tuning["setting"]
    value = row.settings.get(setting, row.tuning.get("picked"))
    return {"tuned_setting": setting, "tuned_value": format_setting(value)}


def summarise(
    records: Sequence[Mapping[str, Any]],
    solve_fraction: float = DEFAULT_SOLVE_FRACTION,
    reference: str = REFERENCE_VARIANT,
) -> list[dict[str, Any]]:
    """One row of statistics per (task, length, row), as defined in the module docstring.

    Records of tuning cells (``_role == "tune"``) are left out.

    Args:
      records: valid records, as returned by
        :func:`experiments.compare.loading.load_records`.
      solve_fraction: a seed is solved when its final held-out loss is at most
        ``solve_fraction * baseline``; in (0, 1].
      reference: the row every other one is tested against in its group: a label, or a
        row's full name (e.g. ``"lstm lr=0.001"``) where the label is split by settings
        (:func:`experiments.compare.loading.find_reference`).

    Returns:
      Rows sorted by task, length, then row name (the reference first). Each row is a dict
      with keys ``task, length, variant`` (the row's name), ``label, settings`` (this row's
      values of the settings that differ between the group's rows, ``name=value; ...``),
      ``tuned_setting, tuned_value`` (empty unless tuned), ``n_seeds, n_diverged,
      n_finite, loss_mean, loss_std, loss_median, loss_ci_low, loss_ci_high,
      accuracy_mean, accuracy_std, baseline, solve_fraction, solve_threshold, n_solved,
      solve_rate, solve_ci_low, solve_ci_high, steps_to_solve_median,
      km_median_steps_to_solve, num_params, steps_per_second, reference`` (as given),
      ``reference_row`` (the reference row's name in this group, "" if none), ``welch_t,
      welch_df, welch_p, welch_p_holm, holm_family_size, hedges_g, detectable_g,
      test_note, logrank_statistic, logrank_p, logrank_p_holm, logrank_family_size,
      fisher_odds_ratio, fisher_p, fisher_p_holm, fisher_family_size, survival_note,
      notes`` (``notes``: list of strings) and ``_settings`` (the row's full settings, a
      dict; not written to CSV). Undefined statistics are NaN (e.g. std and CI for one
      seed, steps to solve when nothing solved, the tests for the reference row itself or
      when the reference is absent; then ``test_note``/``survival_note`` say why). Each
      ``*_p_holm`` is Holm-adjusted over the ``*_family_size`` defined p-values of its
      test in the group (``holm_family_size``: Welch's).

    Raises:
      ValueError: ``solve_fraction`` outside (0, 1]; or ``reference`` fits several rows
        of a group (its label is split by settings), the message naming them.
    """
    if not (0.0 < solve_fraction <= 1.0):
        raise ValueError(f"solve_fraction must be in (0, 1]; got {solve_fraction!r}")
    rows: list[dict[str, Any]] = []
    for (task, length), members in loading.group_rows(records).items():
        ref = loading.find_reference(members, reference, f"{task}, T={length}")
        ref_name = ref.name if ref is not None else ""
        baseline, baseline_note = group_baseline({m.name: m.records for m in members})
        threshold = solve_fraction * baseline
        ref_losses = _final_losses(ref.records) if ref is not None else None
        varying = [
            k
            for k in loading.differing_settings([m.settings for m in members])
            if k not in _NOT_SETTINGS
        ]
        group: list[dict[str, Any]] = []
        for member in sorted(members, key=lambda m: (m.name != ref_name, m.name)):
            is_ref = member.name == ref_name
            notes = [baseline_note] if baseline_note else []
            row = {
                "task": task,
                "length": length,
                "variant": member.name,
                "label": member.label,
                "settings": "; ".join(
                    f"{k}={format_setting(member.settings.get(k, 'absent'))}" for k in varying
                ),
            }
            row |= _tuning_fields(member)
            row |= _variant_row(member.records, threshold, notes)
            row |= {
                "baseline": baseline,
                "solve_fraction": float(solve_fraction),
                "solve_threshold": threshold,
                "reference": reference,
                "reference_row": ref_name,
            }
            row |= _comparison(_final_losses(member.records), ref_losses, is_ref, reference)
            row |= _censored_comparison(
                member.records, ref.records if ref else None, threshold, is_ref, reference
            )
            row["notes"] = notes
            row["_settings"] = member.settings
            row["_tuning"] = member.tuning
            group.append(row)
        for test in ("welch", "logrank", "fisher"):
            _holm_columns(group, test)
        for row in group:
            row["holm_family_size"] = row.pop("welch_family_size")
        _detectable(group, group[0] if ref is not None else None)
        rows += group
    return rows


# --------------------------------------------------------------------------------------
# Markdown.
# --------------------------------------------------------------------------------------


def _fmt(v: float | None, spec: str) -> str:
    return _MISSING if v is None or not math.isfinite(v) else format(v, spec)


def _common(rows: Sequence[Mapping[str, Any]], key: str, given: Any, default: Any) -> Any:
    """The one value of ``key`` that all rows share; ``given`` must agree with it."""
    values = {row[key] for row in rows}
    if len(values) > 1:
        raise ValueError(f"rows mix {key} values {sorted(values)}")
    if given is None:
        return values.pop() if values else default
    if values:
        value = values.pop()
        same = math.isclose(value, given) if isinstance(given, float) else value == given
        if not same:
            raise ValueError(f"rows were summarised with {key}={value!r}, not {given!r}")
    return given


def _reference_name(group: Sequence[Mapping[str, Any]]) -> str:
    """The group's reference row name, else the reference as given."""
    return group[0].get("reference_row") or group[0]["reference"]


def corrections_line(group: Sequence[Mapping[str, Any]]) -> str:
    """The line under a group's table that says which corrections and methods were used."""
    reference = _reference_name(group)
    m = group[0]["holm_family_size"]
    family = (
        f"Holm–Bonferroni correction over the {m} comparison{'s' if m != 1 else ''} "
        f"against `{reference}` in this table (column p Holm; family-wise α = 0.05 "
        "rejects where p Holm ≤ 0.05)"
        if m
        else f"no comparison against `{reference}` could be tested, so no Holm correction"
    )
    others = [
        f"the {m} {name} test{'s' if m != 1 else ''} ({name} p Holm)"
        for name, m in (
            ("log-rank", group[0].get("logrank_family_size", 0)),
            ("Fisher", group[0].get("fisher_family_size", 0)),
        )
        if m
    ]
    censored = (
        f"the same correction over {' and over '.join(others)}, each its own family; "
        if others
        else ""
    )
    return (
        f"Corrections: {family}; {censored}"
        f"Hedges' g with the exact small-sample bias correction "
        f"J(n₁+n₂−2); 95 % CI of the mean loss: BCa bootstrap "
        f"({stats.BOOTSTRAP_RESAMPLES:,} resamples, seed {stats.BOOTSTRAP_SEED}); solve "
        "rate: 95 % Wilson score interval. Intervals are not corrected for multiplicity."
    )


def power_line(group: Sequence[Mapping[str, Any]]) -> str:
    """The line under a group's table that states the smallest effect its seeds detect.

    For the fewest non-diverged seeds among the rows tested against the reference, against
    the reference's; "" when nothing was tested.
    """
    m = group[0]["holm_family_size"]
    ref = next((r for r in group if r["variant"] == group[0].get("reference_row")), None)
    tested = [r for r in group if math.isfinite(r["welch_p"])]
    if not m or ref is None or not tested:
        return ""
    n, n_ref = min(r["n_finite"] for r in tested), ref["n_finite"]
    alpha = FAMILY_ALPHA / m
    g = stats.detectable_effect(n, n_ref, alpha)
    fewest = "" if all(r["n_finite"] == n for r in tested) else " (the fewest tested)"
    effect = (
        f"g ≥ {g:.2f} with {100 * stats.POWER:.0f} % power"
        if math.isfinite(g)
        else f"no effect with {100 * stats.POWER:.0f} % power"
    )
    return (
        f"Power: at α = {FAMILY_ALPHA:g}/{m} = {alpha:.2g}, the strictest level of Holm's "
        f"procedure over this table's {m} Welch test{'s' if m != 1 else ''}, a two-sided "
        f"two-sample t-test of n = {n}{fewest} vs {n_ref} (`{ref['variant']}`) seeds detects "
        f"{effect} (noncentral t); smaller true effects are likely to go unflagged."
    )


def _by_value(group: Sequence[Mapping[str, Any]], key: str) -> str:
    """``"64: `lstm`, `cifg`; 128: `gru`"``: each value of a setting and its rows."""
    names: dict[str, list[str]] = {}
    for row in group:
        own = row.get("_settings", {})
        value = format_setting(own[key]) if key in own else "absent"
        names.setdefault(value, []).append(f"`{row['variant']}`")
    return "; ".join(f"{value}: {', '.join(rows)}" for value, rows in names.items())


def settings_lines(group: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The settings shared by every row of a group, and those that differ between rows.

    Returns:
      ``(common, differ)``: "Settings of every row: steps=2000, ..." ("" without
      settings), and "Rows differ in: hidden_size (64: `lstm`; 128: `gru`), ..." ("" when
      no setting differs). The task, length and variant are left out (the heading and
      row names carry them).
    """
    all_settings = [row.get("_settings", {}) for row in group]
    differ = [k for k in loading.differing_settings(all_settings) if k not in _NOT_SETTINGS]
    first = all_settings[0] if all_settings else {}
    common = [k for k in first if k not in differ and k not in _NOT_SETTINGS]
    common_line = (
        "Settings of every row: "
        + ", ".join(f"{k}={format_setting(first[k])}" for k in common)
        + "."
        if common
        else ""
    )
    differ_line = (
        "Rows differ in: " + ", ".join(f"{k} ({_by_value(group, k)})" for k in differ) + "."
        if differ
        else ""
    )
    return common_line, differ_line


def _tuning_note(row: Mapping[str, Any]) -> str:
    tuning = row.get("_tuning")
    if not tuning:
        return ""
    candidates = tuning.get("candidates")
    among = (
        " from " + ", ".join(format_setting(c) for c in candidates)
        if isinstance(candidates, list) and candidates
        else ""
    )
    rule = f" by the rule: {tuning['rule']}" if tuning.get("rule") else ""
    return f"{tuning['setting']} picked{among}{rule} (see Tuning)"


def _row_cells(row: Mapping[str, Any]) -> list[str]:
    loss = _fmt(row["loss_mean"], ".4g")
    if math.isfinite(row["loss_mean"]):
        loss += " ± " + _fmt(row["loss_std"], ".2g")
    ci = (
        f"[{_fmt(row['loss_ci_low'], '.4g')}, {_fmt(row['loss_ci_high'], '.4g')}]"
        if math.isfinite(row["loss_ci_low"])
        else _MISSING
    )
    acc = _fmt(row["accuracy_mean"], ".3f")
    if math.isfinite(row["accuracy_mean"]):
        acc += " ± " + _fmt(row["accuracy_std"], ".3f")
    solved = (
        f"{row['n_solved']}/{row['n_seeds']} ({100 * row['solve_rate']:.0f}%, "
        f"{100 * row['solve_ci_low']:.0f}–{100 * row['solve_ci_high']:.0f}%)"
    )
    warn = f" {WARNING_MARK}" if row["n_seeds"] < MIN_SEEDS else ""
    return [
        f"`{row['variant']}`{warn}",
        str(row["n_seeds"]),
        str(row["n_diverged"]),
        loss,
        ci,
        _fmt(row["loss_median"], ".4g"),
        acc,
        solved,
        _fmt(row["steps_to_solve_median"], ".0f"),
        _fmt(row.get("km_median_steps_to_solve", math.nan), ".0f"),
        f"{row['num_params']:,}",
        _fmt(row["steps_per_second"], ".1f"),
        _fmt(row["hedges_g"], "+.2f"),
        _fmt(row["welch_t"], ".2f"),
        _fmt(row["welch_p"], ".2g"),
        _fmt(row["welch_p_holm"], ".2g"),
        _fmt(row.get("logrank_p", math.nan), ".2g"),
        _fmt(row.get("logrank_p_holm", math.nan), ".2g"),
        _fmt(row.get("fisher_p", math.nan), ".2g"),
        _fmt(row.get("fisher_p_holm", math.nan), ".2g"),
    ]


_COLUMNS = 20


def _group_notes(group: Sequence[Mapping[str, Any]]) -> list[str]:
    """The notes of a group's rows, each note once with the rows it is about."""
    by_note: dict[str, list[str]] = {}
    for row in group:
        notes = []
        if row["test_note"] and row["test_note"] != _REFERENCE_NOTE:
            notes.append(row["test_note"])
        survival = row.get("survival_note", "")
        if survival and survival != row["test_note"]:
            notes.append(survival)
        notes += row["notes"]
        if _tuning_note(row):
            notes.append(_tuning_note(row))
        for note in notes:
            by_note.setdefault(note, []).append(f"`{row['variant']}`")
    return [f"{', '.join(names)}: {note}" for note, names in by_note.items()]


def format_markdown(rows: Sequence[Mapping[str, Any]], solve_fraction: float | None = None) -> str:
    """Markdown: one section and table per (task, length), definitions above, corrections below.

    Above each table: the definitions and the settings every row shares; below it: the
    settings that differ between rows, the corrections, the detectable effect and the
    notes (rows of fewer than :data:`MIN_SEEDS` seeds are marked ⚠ and noted).

    Args:
      rows: from :func:`summarise` (one solve fraction and one reference throughout).
      solve_fraction: the fraction the rows were summarised with; None takes it from the
        rows. Given only to state it, so it must agree with the rows.

    Returns:
      The markdown text (ends with a newline).

    Raises:
      ValueError: ``solve_fraction`` disagrees with the rows, or the rows mix fractions.
    """
    fraction = _common(rows, "solve_fraction", solve_fraction, DEFAULT_SOLVE_FRACTION)
    out: list[str] = []
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["length"]), []).append(row)
    for (task, length), group in groups.items():
        baseline, ref = group[0]["baseline"], _reference_name(group)
        header = (
            "| variant | seeds | diverged | final loss mean ± std | 95% CI of mean "
            "| final loss median | accuracy mean ± std | solved (95% CI) "
            "| median steps to solve | KM median steps to solve | params | steps/s "
            f"| Hedges' g vs {ref} | t vs {ref} | p vs {ref} | p Holm "
            "| log-rank p | log-rank p Holm | Fisher p | Fisher p Holm |"
        )
        common, differ = settings_lines(group)
        out += [
            f"## {task}, T={length}",
            "",
            f"Memoryless baseline loss {baseline:.4g}. A seed is solved when its final "
            f"held-out loss is ≤ {fraction:g} × baseline = {fraction * baseline:.4g}; "
            "steps to solve = first evaluation step at or below that, median over solved "
            "seeds. Loss and accuracy statistics are over non-diverged seeds (std: sample, "
            "ddof=1); diverged seeds count as unsolved. Test: Welch's unequal-variance "
            f"t-test of final loss against `{ref}`, two-sided (Welch–Satterthwaite df; "
            f"t < 0 and g < 0: lower loss than `{ref}`). Time to solve: unsolved and "
            "diverged seeds are right-censored at their last evaluation step; KM median = "
            "first step where the Kaplan–Meier fraction unsolved is ≤ 1/2 (— if never). "
            f"Log-rank test of time to solve and Fisher's exact test of solve counts "
            f"against `{ref}`, both two-sided.",
            "",
        ]
        if common:
            out += [common, ""]
        out += [header, "|" + "---|" * _COLUMNS]
        for row in group:
            out.append("| " + " | ".join(_row_cells(row)) + " |")
        out.append("")
        if differ:
            out += [differ, ""]
        out.append(corrections_line(group))
        power = power_line(group)
        if power:
            out += ["", power]
        notes = _group_notes(group)
        if any(row["n_seeds"] < MIN_SEEDS for row in group):
            notes.insert(0, f"{WARNING_MARK} marks rows of fewer than {MIN_SEEDS} seeds")
        if notes:
            out += ["", "Notes: " + "; ".join(notes) + "."]
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# CSV.
# --------------------------------------------------------------------------------------


def solve_rate_column(solve_fraction: float) -> str:
    """The CSV column name of the solve rate, which states the threshold."""
    return f"solve_rate_loss_le_{solve_fraction:g}x_baseline"


CSV_FIELDS = (
    "task",
    "length",
    "variant",
    "label",
    "settings",
    "tuned_setting",
    "tuned_value",
    "n_seeds",
    "n_diverged",
    "n_finite",
    "loss_mean",
    "loss_std",
    "loss_median",
    "loss_ci_low",
    "loss_ci_high",
    "accuracy_mean",
    "accuracy_std",
    "baseline",
    "solve_fraction",
    "solve_threshold",
    "n_solved",
    "solve_rate",
    "solve_ci_low",
    "solve_ci_high",
    "steps_to_solve_median",
    "km_median_steps_to_solve",
    "num_params",
    "steps_per_second",
    "reference",
    "reference_row",
    "welch_t",
    "welch_df",
    "welch_p",
    "welch_p_holm",
    "holm_family_size",
    "hedges_g",
    "detectable_g",
    "test_note",
    "logrank_statistic",
    "logrank_p",
    "logrank_p_holm",
    "logrank_family_size",
    "fisher_odds_ratio",
    "fisher_p",
    "fisher_p_holm",
    "fisher_family_size",
    "survival_note",
    "notes",
)
"""The row keys written to CSV, in column order (see :func:`csv_header` for the names)."""


def csv_header(solve_fraction: float, reference: str) -> list[str]:
    """The CSV column names: the solve rate names its threshold, the tests their reference.

    A reference with spaces (a row's full name, ``lstm lr=0.001``) is written with ``_``.
    """
    reference = "_".join(reference.split())
    rename = {
        "solve_rate": solve_rate_column(solve_fraction),
        "welch_t": f"welch_t_vs_{reference}",
        "welch_df": f"welch_df_vs_{reference}",
        "welch_p": f"welch_p_vs_{reference}",
        "welch_p_holm": f"welch_p_holm_vs_{reference}",
        "hedges_g": f"hedges_g_vs_{reference}",
        "logrank_statistic": f"logrank_statistic_vs_{reference}",
        "logrank_p": f"logrank_p_vs_{reference}",
        "logrank_p_holm": f"logrank_p_holm_vs_{reference}",
        "fisher_odds_ratio": f"fisher_odds_ratio_vs_{reference}",
        "fisher_p": f"fisher_p_vs_{reference}",
        "fisher_p_holm": f"fisher_p_holm_vs_{reference}",
    }
    return [rename.get(f, f) for f in CSV_FIELDS]


def _csv_cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    if isinstance(v, list):
        return "; ".join(v)
    return v


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Writes the rows as CSV, atomically; undefined values are empty cells.

    Args:
      rows: from :func:`summarise` (one solve fraction and one reference throughout).
      path: the CSV file to write.

    Raises:
      ValueError: the rows mix solve fractions or references.
    """
    fraction = _common(rows, "solve_fraction", None, DEFAULT_SOLVE_FRACTION)
    reference = _common(rows, "reference", None, REFERENCE_VARIANT)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(csv_header(fraction, reference))
    for row in rows:
        writer.writerow([_csv_cell(row[f]) for f in CSV_FIELDS])
    write_atomic(path, buf.getvalue().encode("utf-8"))
