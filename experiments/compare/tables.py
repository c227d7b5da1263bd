"""Summary rows per (task, length, variant), and the Markdown and CSV tables made from them.

Definitions used throughout (each Markdown table states them too):

* **Diverged** seed: ``status == "diverged"`` or a non-finite final loss. Diverged seeds are
  left out of the loss and accuracy statistics, of the test and of the curves, are counted
  in their own column, and count as unsolved.
* **Solved** seed: final held-out loss ``<= solve_fraction * baseline``, where ``baseline``
  is the task's memoryless loss stored in the record (copy: ``10 ln 8 / (T + 20)``,
  adding: ``1/6``). ``solve_fraction = 0.1`` by default. The solve rate is over all seeds
  and has a 95 % Wilson score interval.
* **Steps to solve**: the first evaluation step whose held-out loss is at or below the
  threshold; the median over solved seeds is reported.
* **Final loss**: mean, sample standard deviation, median, and a 95 % BCa bootstrap
  confidence interval of the mean (:func:`experiments.compare.stats.bootstrap_mean_ci`).
* **Test**: Welch's unequal-variance t-test of a variant's final losses against those of
  the reference variant (``lstm`` unless told otherwise) with the same task and length,
  two-sided; its p-values are Holm–Bonferroni adjusted over the family of comparisons in
  that (task, length) group. **Effect size**: Hedges' g against the reference
  (bias-corrected; negative = lower loss than the reference).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.compare import stats
from experiments.compare.loading import (
    REFERENCE_VARIANT,
    as_float,
    group_baseline,
    group_records,
    is_diverged,
    variant_order,
)
from experiments.shared.records import write_atomic

__all__ = [
    "CSV_FIELDS",
    "DEFAULT_SOLVE_FRACTION",
    "corrections_line",
    "csv_header",
    "format_markdown",
    "solve_rate_column",
    "summarise",
    "write_csv",
]

DEFAULT_SOLVE_FRACTION = 0.1
"""A seed is solved when its final loss is at most this fraction of the memoryless baseline."""

_MISSING = "—"
_REFERENCE_NOTE = "reference variant"


def _steps_to_solve(rec: Mapping[str, Any], threshold: float) -> int:
    """First evaluation step whose held-out loss is at or below ``threshold``."""
    for point in sorted(rec["history"], key=lambda p: p["step"]):
        if as_float(point["loss"]) <= threshold:
            return point["step"]
    return rec["final"]["step"]  # Solved at the final evaluation, which history lacks.


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


def summarise(
    records: Sequence[Mapping[str, Any]],
    solve_fraction: float = DEFAULT_SOLVE_FRACTION,
    reference: str = REFERENCE_VARIANT,
) -> list[dict[str, Any]]:
    """One row of statistics per (task, length, variant), as defined in the module docstring.

    Args:
      records: valid records, as returned by
        :func:`experiments.compare.loading.load_records`.
      solve_fraction: a seed is solved when its final held-out loss is at most
        ``solve_fraction * baseline``; in (0, 1].
      reference: the variant (label) every other one is tested against in its group.

    Returns:
      Rows sorted by task, length, then variant (the reference first). Each row is a dict
      with keys ``task, length, variant, n_seeds, n_diverged, n_finite, loss_mean,
      loss_std, loss_median, loss_ci_low, loss_ci_high, accuracy_mean, accuracy_std,
      baseline, solve_fraction, solve_threshold, n_solved, solve_rate, solve_ci_low,
      solve_ci_high, steps_to_solve_median, num_params, steps_per_second, reference,
      welch_t, welch_df, welch_p, welch_p_holm, holm_family_size, hedges_g, test_note,
      notes`` (``notes``: list of strings). Undefined statistics are NaN (e.g. std and CI
      for one seed, steps to solve when nothing solved, the test for the reference row
      itself or when the reference is absent; then ``test_note`` says why).
      ``welch_p_holm`` is Holm-adjusted over the ``holm_family_size`` defined p-values of
      the group.

    Raises:
      ValueError: ``solve_fraction`` outside (0, 1].
    """
    if not (0.0 < solve_fraction <= 1.0):
        raise ValueError(f"solve_fraction must be in (0, 1]; got {solve_fraction!r}")
    rows: list[dict[str, Any]] = []
    for (task, length), by_variant in group_records(records).items():
        baseline, baseline_note = group_baseline(by_variant)
        threshold = solve_fraction * baseline
        ref_recs = by_variant.get(reference)
        ref_losses = _final_losses(ref_recs) if ref_recs is not None else None
        group: list[dict[str, Any]] = []
        for variant in variant_order(by_variant, reference):
            recs = by_variant[variant]
            notes = [baseline_note] if baseline_note else []
            row = {"task": task, "length": length, "variant": variant}
            row |= _variant_row(recs, threshold, notes)
            row |= {
                "baseline": baseline,
                "solve_fraction": float(solve_fraction),
                "solve_threshold": threshold,
                "reference": reference,
            }
            row |= _comparison(_final_losses(recs), ref_losses, variant == reference, reference)
            row["notes"] = notes
            group.append(row)
        adjusted = stats.holm_adjust([row["welch_p"] for row in group])
        family = int(np.sum(~np.isnan(adjusted)))
        for row, p_holm in zip(group, adjusted):
            row["welch_p_holm"] = float(p_holm)
            row["holm_family_size"] = family
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


def corrections_line(group: Sequence[Mapping[str, Any]]) -> str:
    """The line under a group's table that says which corrections and methods were used."""
    reference = group[0]["reference"]
    m = group[0]["holm_family_size"]
    family = (
        f"Holm–Bonferroni correction over the {m} comparison{'s' if m != 1 else ''} "
        f"against `{reference}` in this table (column p Holm; family-wise α = 0.05 "
        "rejects where p Holm ≤ 0.05)"
        if m
        else f"no comparison against `{reference}` could be tested, so no Holm correction"
    )
    return (
        f"Corrections: {family}; Hedges' g with the exact small-sample bias correction "
        f"J(n₁+n₂−2); 95 % CI of the mean loss: BCa bootstrap "
        f"({stats.BOOTSTRAP_RESAMPLES:,} resamples, seed {stats.BOOTSTRAP_SEED}); solve "
        "rate: 95 % Wilson score interval. Intervals are not corrected for multiplicity."
    )


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
    return [
        f"`{row['variant']}`",
        str(row["n_seeds"]),
        str(row["n_diverged"]),
        loss,
        ci,
        _fmt(row["loss_median"], ".4g"),
        acc,
        solved,
        _fmt(row["steps_to_solve_median"], ".0f"),
        f"{row['num_params']:,}",
        _fmt(row["steps_per_second"], ".1f"),
        _fmt(row["hedges_g"], "+.2f"),
        _fmt(row["welch_t"], ".2f"),
        _fmt(row["welch_p"], ".2g"),
        _fmt(row["welch_p_holm"], ".2g"),
    ]


def format_markdown(rows: Sequence[Mapping[str, Any]], solve_fraction: float | None = None) -> str:
    """Markdown: one section and table per (task, length), definitions above, corrections below.

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
        baseline, ref = group[0]["baseline"], group[0]["reference"]
        header = (
            "| variant | seeds | diverged | final loss mean ± std | 95% CI of mean "
            "| final loss median | accuracy mean ± std | solved (95% CI) "
            "| median steps to solve | params | steps/s "
            f"| Hedges' g vs {ref} | t vs {ref} | p vs {ref} | p Holm |"
        )
        out += [
            f"## {task}, T={length}",
            "",
            f"Memoryless baseline loss {baseline:.4g}. A seed is solved when its final "
            f"held-out loss is ≤ {fraction:g} × baseline = {fraction * baseline:.4g}; "
            "steps to solve = first evaluation step at or below that, median over solved "
            "seeds. Loss and accuracy statistics are over non-diverged seeds (std: sample, "
            "ddof=1); diverged seeds count as unsolved. Test: Welch's unequal-variance "
            f"t-test of final loss against `{ref}`, two-sided (Welch–Satterthwaite df; "
            f"t < 0 and g < 0: lower loss than `{ref}`).",
            "",
            header,
            "|" + "---|" * 15,
        ]
        notes: list[str] = []
        for row in group:
            out.append("| " + " | ".join(_row_cells(row)) + " |")
            if row["test_note"] and row["test_note"] != _REFERENCE_NOTE:
                notes.append(f"`{row['variant']}`: {row['test_note']}")
            notes += [f"`{row['variant']}`: {note}" for note in row["notes"]]
        out += ["", corrections_line(group)]
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
    "num_params",
    "steps_per_second",
    "reference",
    "welch_t",
    "welch_df",
    "welch_p",
    "welch_p_holm",
    "holm_family_size",
    "hedges_g",
    "test_note",
    "notes",
)
"""The row keys written to CSV, in column order (see :func:`csv_header` for the names)."""


def csv_header(solve_fraction: float, reference: str) -> list[str]:
    """The CSV column names: the solve rate names its threshold, the tests their reference."""
    rename = {
        "solve_rate": solve_rate_column(solve_fraction),
        "welch_t": f"welch_t_vs_{reference}",
        "welch_df": f"welch_df_vs_{reference}",
        "welch_p": f"welch_p_vs_{reference}",
        "welch_p_holm": f"welch_p_holm_vs_{reference}",
        "hedges_g": f"hedges_g_vs_{reference}",
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
