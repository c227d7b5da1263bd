"""The state-tracking table and figure: accuracy on test lengths longer than any trained on.

A state-tracking record (``experiments.run --task=parity|...``) holds ``test``: accuracy
at each test length after training and ``score``, their mean (Delétang et al. 2023's
score). Per row (a label at one settings, :func:`experiments.compare.loading.group_rows`):

* the score's mean ± std over seeds, its 95 % BCa bootstrap interval, median and maximum
  (Delétang et al. publish the maximum over seeds and learning rates);
* **generalised** seeds: score >= :data:`GENERALISED` (Wilson interval), tested against
  the reference with Fisher's exact test;
* Welch's test of the score against the reference and Hedges' g (g > 0: higher score than
  the reference), Holm-corrected over the table's comparisons, each test its own family.

Diverged seeds stay in: their parameters are the last finite ones, and the test says what
those do.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.compare import loading, stats
from experiments.compare.loading import REFERENCE_VARIANT, is_diverged
from experiments.compare.plots import PANELS_FROM, _save, group_colors, row_order
from experiments.shared.records import write_atomic

__all__ = [
    "GENERALISED",
    "format_scores_markdown",
    "plot_accuracy_by_length",
    "state_tracking_scores",
    "summarise_scores",
    "write_scores_csv",
]

GENERALISED = 0.9
"""A seed *generalised* when its score (mean test accuracy) is at least this."""


def _state_tracking_groups(records) -> dict[tuple[str, int], list[loading.Row]]:
    return {
        key: rows
        for key, rows in loading.group_rows(records).items()
        if all(isinstance(r.get("test"), Mapping) for row in rows for r in row.records)
    }


def _scores(row: loading.Row) -> list[float]:
    return [float(r["test"]["score"]) for r in row.records]


def state_tracking_scores(
    records: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, tuple[float, list[float]]]]:
    """``{task: {label: (chance, [score per seed])}}`` of the state-tracking records.

    Raises:
      ValueError: a label whose records in one task differ in a setting (two rows).
    """
    out: dict[str, dict[str, tuple[float, list[float]]]] = {}
    for (task, _), rows in _state_tracking_groups(records).items():
        for row in rows:
            if row.label in out.get(task, {}):
                raise ValueError(f"{row.label!r} has records of several settings on {task}.")
            out.setdefault(task, {})[row.label] = (row.records[0]["chance"], _scores(row))
    return out


def summarise_scores(
    records: Sequence[Mapping[str, Any]], reference: str = REFERENCE_VARIANT
) -> list[dict[str, Any]]:
    """One dict per row of every state-tracking group, the reference row first.

    Raises:
      ValueError: ``reference`` fits several rows of a group.
    """
    out: list[dict[str, Any]] = []
    for (task, length), rows in _state_tracking_groups(records).items():
        rows, ref_name = row_order(rows, reference, f"{task}, T={length}")
        ref = next((row for row in rows if row.name == ref_name), None)
        group = []
        for row in rows:
            scores = _scores(row)
            mean, std, median = stats.mean_std_median(scores)
            interval = stats.bootstrap_mean_ci(scores)
            n_gen = sum(s >= GENERALISED for s in scores)
            gen_ci = stats.wilson_ci(n_gen, len(scores))
            entry = {
                "task": task,
                "train_max_length": length,
                "row": row.name,
                "reference": ref_name,
                "chance": row.records[0]["chance"],
                "test_lengths": row.settings.get("test_lengths"),
                "n_seeds": len(scores),
                "n_diverged": sum(is_diverged(r) for r in row.records),
                "score_mean": mean,
                "score_std": std,
                "score_ci_low": interval.low,
                "score_ci_high": interval.high,
                "score_median": median,
                "score_max": max(scores),
                "n_generalised": n_gen,
                "generalised_ci_low": gen_ci.low,
                "generalised_ci_high": gen_ci.high,
                "g_vs_ref": math.nan,
                "p_vs_ref": math.nan,
                "fisher_p_vs_ref": math.nan,
            }
            if ref is not None and row is not ref:
                ref_scores = _scores(ref)
                entry["g_vs_ref"] = stats.hedges_g(scores, ref_scores)[0]
                entry["p_vs_ref"] = stats.welch_test(scores, ref_scores).p
                n_ref = sum(s >= GENERALISED for s in ref_scores)
                entry["fisher_p_vs_ref"] = stats.fisher_test(
                    n_gen, len(scores), n_ref, len(ref_scores)
                ).p
            group.append(entry)
        for test in ("p_vs_ref", "fisher_p_vs_ref"):
            tested = [e for e in group if not math.isnan(e[test])]
            adjusted = stats.holm_adjust([e[test] for e in tested]) if tested else []
            for e in group:
                e[test.replace("_vs_ref", "_holm")] = math.nan
            for e, p in zip(tested, adjusted):
                e[test.replace("_vs_ref", "_holm")] = float(p)
        out += group
    return out


def _f(value: float, spec: str) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        format(value, spec)
    )  # fmt: skip


def format_scores_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table per state-tracking group, with how every column is defined."""
    parts: list[str] = []
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["train_max_length"]), []).append(row)
    for (task, length), group in groups.items():
        first = group[0]
        parts += [
            f"## {task}: trained on lengths 1–{length}, tested on {first['test_lengths']}",
            "",
            f"Score = accuracy averaged over the test lengths (Delétang et al. 2023); chance "
            f"{first['chance']:.3g}. A seed generalised when its score ≥ {GENERALISED:g}. "
            f"Welch's test of the score and Fisher's exact test of the generalised counts "
            f"against `{first['reference'] or '—'}`, two-sided, each Holm-corrected over this "
            f"table; Hedges' g > 0: a higher score than the reference. 95 % CI of the mean: "
            f"BCa bootstrap; of the generalised share: Wilson.",
            "",
            "| variant | seeds | score mean ± std | 95% CI of mean | median | max | "
            "generalised (95% CI) | Hedges' g | p | p Holm | Fisher p | Fisher p Holm |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in group:
            diverged = f" ({e['n_diverged']} diverged)" if e["n_diverged"] else ""
            parts.append(
                f"| `{e['row']}` | {e['n_seeds']}{diverged} | {e['score_mean']:.3f} ± "
                f"{_f(e['score_std'], '.3f')} | [{_f(e['score_ci_low'], '.3f')}, "
                f"{_f(e['score_ci_high'], '.3f')}] | {e['score_median']:.3f} | "
                f"{e['score_max']:.3f} | {e['n_generalised']}/{e['n_seeds']} "
                f"({e['generalised_ci_low']:.0%}–{e['generalised_ci_high']:.0%}) | "
                f"{_f(e['g_vs_ref'], '.2f')} | {_f(e['p_vs_ref'], '.2g')} | "
                f"{_f(e['p_holm'], '.2g')} | {_f(e['fisher_p_vs_ref'], '.2g')} | "
                f"{_f(e['fisher_p_holm'], '.2g')} |"
            )
        parts.append("")
    return "\n".join(parts)


_CSV_COLUMNS = (
    "task", "train_max_length", "row", "reference", "chance", "test_lengths", "n_seeds",
    "n_diverged", "score_mean", "score_std", "score_ci_low", "score_ci_high", "score_median",
    "score_max", "n_generalised", "generalised_ci_low", "generalised_ci_high", "g_vs_ref",
    "p_vs_ref", "p_holm", "fisher_p_vs_ref", "fisher_p_holm",
)  # fmt: skip


def write_scores_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """The rows as CSV (one line per row, :data:`_CSV_COLUMNS`), written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else row[c] for c in _CSV_COLUMNS])
    write_atomic(path, buffer.getvalue().encode("utf-8"))


def plot_accuracy_by_length(
    records: Sequence[Mapping[str, Any]],
    path_prefix: str | os.PathLike[str],
    reference: str = REFERENCE_VARIANT,
) -> list[str]:
    """One PNG per state-tracking group: test accuracy against length, per row.

    The mean over seeds as a line, the range over seeds (min to max) as a band; chance
    dashed; the longest training length dotted. From
    :data:`experiments.compare.plots.PANELS_FROM` rows on, one small panel per row over the
    reference's mean in dashed grey. A row keeps its colour across the study's figures.
    Files: ``f"{path_prefix}{task}_T{length}.png"``.
    """
    written = []
    groups = _state_tracking_groups(records)
    colors = group_colors(groups, reference)
    for (task, length), rows in groups.items():
        rows, ref_name = row_order(rows, reference, f"{task}, T={length}")
        panels = len(rows) >= PANELS_FROM
        ncols = min(4, len(rows)) if panels else 1
        nrows = math.ceil(len(rows) / ncols) if panels else 1
        size = (3.1 * ncols, 0.8 + 2.2 * nrows) if panels else (7.5, 4.8)
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
        reference_row = next((row for row in rows if row.name == ref_name), None)
        chance = rows[0].records[0]["chance"]
        for i, row in enumerate(rows):
            ax = axes[i] if panels else axes[0]
            is_ref = row.name == ref_name
            if panels and reference_row is not None and not is_ref:
                ref_lengths, ref_curves = _accuracy_curves(reference_row)
                ax.plot(ref_lengths, ref_curves.mean(0), color="0.55", linestyle="--",
                        linewidth=1.1)  # fmt: skip
            lengths, curves = _accuracy_curves(row)
            color = colors[row.name]
            width = 2.4 if is_ref and not panels else 1.6
            label = f"{row.name} (n={len(curves)})"
            ax.plot(lengths, curves.mean(0), color=color, linewidth=width,
                    label=None if panels else label)  # fmt: skip
            ax.fill_between(lengths, curves.min(0), curves.max(0), color=color, alpha=0.15,
                            linewidth=0)  # fmt: skip
            if panels:
                ax.set_title(label + (" (reference)" if is_ref else ""), fontsize=7.5)
        for ax in axes[: len(rows)] if panels else axes[:1]:
            ax.axhline(chance, color="black", linestyle="--", linewidth=1.2,
                       label=None if panels else f"chance ({chance:.3g})")  # fmt: skip
            ax.axvline(length, color="0.45", linestyle=":", linewidth=1.2,
                       label=None if panels else f"longest trained ({length})")  # fmt: skip
            ax.set_ylim(0, 1.02)
            ax.grid(True, alpha=0.3)
            ax.tick_params(labelsize=7 if panels else 9)
        for i, ax in enumerate(axes[len(rows) :] if panels else (), start=len(rows)):
            ax.set_visible(False)
            if i >= ncols:  # the panel above has no neighbour below to carry the ticks
                axes[i - ncols].xaxis.set_tick_params(labelbottom=True)
        if not panels:
            axes[0].legend(fontsize=8, loc="best")
        fig.supxlabel("test length", fontsize=9)
        fig.supylabel("accuracy", fontsize=9)
        keys = f"\nblack dashed: chance ({chance:.3g}); dotted: longest trained ({length})" + (
            f"; grey dashed: {ref_name}" if ref_name else ""
        )
        fig.suptitle(
            f"{task}: mean over seeds, band = min to max" + (keys if panels else ""),
            fontsize=9 if panels else 10,
        )
        written.append(_save(fig, f"{os.fspath(path_prefix)}{task}_T{length}.png"))
    return written


def _accuracy_curves(row: loading.Row) -> tuple[list, np.ndarray]:
    """A row's test lengths and its accuracy per seed and length ``[seeds, lengths]``."""
    return row.records[0]["test"]["lengths"], np.array([r["test"]["accuracy"] for r in row.records])
