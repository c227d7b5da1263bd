"""Figures of a comparison: learning curves and a forest plot of final losses, per group.

Plots use matplotlib's object-oriented API on the Agg canvas (no pyplot), so importing this
module never changes the caller's matplotlib backend or global state. Files are written
atomically (:func:`experiments.shared.records.write_atomic`).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.ticker
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.compare.loading import (
    REFERENCE_VARIANT,
    as_float,
    group_baseline,
    group_records,
    is_diverged,
    variant_order,
)
from experiments.shared.records import write_atomic

__all__ = ["learning_curve", "plot_forest", "plot_learning_curves"]


def learning_curve(
    recs: Sequence[Mapping[str, Any]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median and interquartile range of the held-out loss over seeds, per evaluation step.

    Only finite positive losses count (the plots use a log axis). Quartiles are NumPy's
    linearly interpolated percentiles, defined for any number of seeds (one seed: the band
    is the line itself).

    Args:
      recs: the records of one variant's seeds.

    Returns:
      ``(steps [S], median [S], q25 [S], q75 [S])``, steps ascending; S = 0 when no
      record has a positive finite loss.
    """
    by_step: dict[int, list[float]] = {}
    for rec in recs:
        for point in rec["history"]:
            loss = as_float(point["loss"])
            if math.isfinite(loss) and loss > 0:
                by_step.setdefault(point["step"], []).append(loss)
    steps = sorted(by_step)
    if not steps:
        empty = np.zeros((0,), dtype=np.float64)
        return empty, empty, empty, empty
    quartiles = np.asarray([np.percentile(by_step[s], [50, 25, 75]) for s in steps])
    return np.asarray(steps, dtype=np.float64), quartiles[:, 0], quartiles[:, 1], quartiles[:, 2]


def _save(fig: Figure, path: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    write_atomic(path, buf.getvalue())
    return path


def plot_learning_curves(
    records: Sequence[Mapping[str, Any]],
    path_prefix: str | os.PathLike[str],
    solve_fraction: float | None = None,
    reference: str = REFERENCE_VARIANT,
) -> list[str]:
    """One PNG per (task, length) of held-out loss against training step, log scale.

    Per variant: the median over its non-diverged seeds as a line and the interquartile
    range (25–75 %) as a shaded band (the legend gives n and how many diverged seeds are
    left out); the reference variant is drawn thicker. The task's memoryless baseline is a
    dashed line; the solve threshold a dotted one when ``solve_fraction`` is given.

    Args:
      records: valid records, as returned by
        :func:`experiments.compare.loading.load_records`.
      path_prefix: files are written (atomically) to ``f"{path_prefix}{task}_T{length}.png"``,
        e.g. ``"runs/copy/learning_curves_"``.
      solve_fraction: if given, also draw the solve threshold ``solve_fraction * baseline``.
      reference: the variant drawn first and thicker.

    Returns:
      The paths written, in (task, length) order.
    """
    written: list[str] = []
    for (task, length), by_variant in group_records(records).items():
        baseline, _ = group_baseline(by_variant)
        fig = Figure(figsize=(7.5, 4.8), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for i, variant in enumerate(variant_order(by_variant, reference)):
            recs = by_variant[variant]
            finite = [r for r in recs if not is_diverged(r)]
            n_div = len(recs) - len(finite)
            # tab20 keeps up to 20 variants apart (the default cycle repeats after 10).
            color = matplotlib.colormaps["tab20"](i % 20)
            if not finite:
                ax.plot([], [], color=color, label=f"{variant} (all {len(recs)} seeds diverged)")
                continue
            steps, median, q25, q75 = learning_curve(finite)
            dropped = f", {n_div} diverged not shown" if n_div else ""
            label = f"{variant} (n={len(finite)}{dropped})"
            if steps.size == 0:
                ax.plot([], [], color=color, label=label + ", no positive losses")
                continue
            width = 2.4 if variant == reference else 1.6
            ax.plot(steps, median, color=color, linewidth=width, label=label)
            ax.fill_between(steps, q25, q75, color=color, alpha=0.2, linewidth=0)
        ax.axhline(
            baseline,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"memoryless baseline ({baseline:.4g})",
        )
        if solve_fraction is not None:
            ax.axhline(
                solve_fraction * baseline,
                color="0.45",
                linestyle=":",
                linewidth=1.2,
                label=f"solve threshold ({solve_fraction:g} × baseline)",
            )
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out loss (log scale)")
        ax.set_title(
            f"{task}, T={length}: median over seeds, band = interquartile range", fontsize=10
        )
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        written.append(_save(fig, f"{os.fspath(path_prefix)}{task}_T{length}.png"))
    return written


def plot_forest(
    rows: Sequence[Mapping[str, Any]], path_prefix: str | os.PathLike[str]
) -> list[str]:
    """One forest plot per (task, length): each variant's mean final loss and its 95 % CI.

    One horizontal line per variant (the reference on top): a dot at the mean final loss
    and a bar over its bootstrap confidence interval (no bar where the interval is
    undefined, e.g. one seed). The reference's interval is a shaded vertical band and its
    mean a dashed line, so overlap is read at a glance; the memoryless baseline is a dotted
    line. Log x-axis when every plotted value is positive. The y labels carry n, Hedges' g
    and the Holm-adjusted p against the reference.

    Args:
      rows: from :func:`experiments.compare.tables.summarise`.
      path_prefix: files go to ``f"{path_prefix}{task}_T{length}.png"``, e.g.
        ``"runs/copy/forest_"``.

    Returns:
      The paths written, in the rows' (task, length) order.
    """
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["length"]), []).append(row)
    written: list[str] = []
    for (task, length), group in groups.items():
        fig = Figure(figsize=(7.5, 1.2 + 0.45 * len(group)), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ref_name, baseline = group[0]["reference"], group[0]["baseline"]
        ref_row = next((r for r in group if r["variant"] == ref_name), None)
        if ref_row is not None and math.isfinite(ref_row["loss_mean"]):
            if math.isfinite(ref_row["loss_ci_low"]):
                ax.axvspan(
                    ref_row["loss_ci_low"], ref_row["loss_ci_high"], color="C0", alpha=0.12,
                    linewidth=0, label=f"{ref_name}: 95% CI",
                )  # fmt: skip
            ax.axvline(ref_row["loss_mean"], color="C0", linestyle="--", linewidth=1.0)
        ax.axvline(
            baseline, color="black", linestyle=":", linewidth=1.2,
            label=f"memoryless baseline ({baseline:.4g})",
        )  # fmt: skip
        labels, values = [], [baseline]
        for y, row in enumerate(group):
            mean, low, high = row["loss_mean"], row["loss_ci_low"], row["loss_ci_high"]
            color = "C0" if row["variant"] == ref_name else "C1"
            if math.isfinite(mean):
                values.append(mean)
                if math.isfinite(low):
                    values += [low, high]
                    err = [[mean - low], [high - mean]]
                    ax.errorbar(mean, y, xerr=err, fmt="o", color=color, capsize=3)
                else:
                    ax.plot(mean, y, "o", color=color, markerfacecolor="white")
            stats = f"n={row['n_finite']}"
            if math.isfinite(row["hedges_g"]):
                stats += f", g={row['hedges_g']:+.2f}, p_Holm={row['welch_p_holm']:.2g}"
            labels.append(f"{row['variant']}\n({stats})")
        ax.set_yticks(range(len(group)), labels, fontsize=8)
        ax.set_ylim(len(group) - 0.5, -0.5)  # First row on top.
        if all(v > 0 for v in values):
            ax.set_xscale("log")
            # Minor ticks unlabelled: labels at 2x, 3x, ... of a decade overlap.
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("final held-out loss: mean and 95% BCa bootstrap CI over seeds")
        ax.set_title(f"{task}, T={length}: final loss against {ref_name}", fontsize=10)
        ax.grid(True, axis="x", which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        written.append(_save(fig, f"{os.fspath(path_prefix)}{task}_T{length}.png"))
    return written
