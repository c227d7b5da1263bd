"""Figures of a comparison, per group: learning curves, a forest plot, survival curves.

Rows (a label at one settings, :func:`experiments.compare.loading.group_rows`) keep their
colour across every figure of the records, each length and each kind of plot
(:func:`study_colors`); beyond a handful of rows a figure has one small panel per row.

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

from experiments.compare import loading, stats
from experiments.compare.loading import REFERENCE_VARIANT, as_float, group_baseline, is_diverged
from experiments.compare.tables import DEFAULT_SOLVE_FRACTION, solve_times
from experiments.shared.records import write_atomic

__all__ = [
    "learning_curve",
    "plot_forest",
    "plot_learning_curves",
    "plot_survival",
    "row_colors",
    "group_colors",
    "row_order",
    "study_colors",
]


def row_order(
    rows: Sequence[loading.Row], reference: str, where: str
) -> tuple[list[loading.Row], str]:
    """A group's rows with the reference first, and the reference row's name ("" if none).

    Raises:
      ValueError: ``reference`` fits several rows
        (:func:`experiments.compare.loading.find_reference`).
    """
    ref = loading.find_reference(rows, reference, where)
    name = ref.name if ref is not None else ""
    return sorted(rows, key=lambda row: (row.name != name, row.name)), name


# tab20 holds ten hues, each as a dark and a light shade: the ten dark shades first, so
# that up to ten rows get ten different hues (neighbouring indices would pair two blues).
_PALETTE = [*range(0, 20, 2), *range(1, 20, 2)]


def row_colors(names: Sequence[str]) -> dict[str, Any]:
    """A colour per row, by its place in the group's order: ten distinct hues first (tab20's
    dark shades), then their light shades, then repeats."""
    tab20 = matplotlib.colormaps["tab20"]
    return {name: tab20(_PALETTE[i % 20]) for i, name in enumerate(names)}


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


PANELS_FROM = 7
"""From this many rows on, learning-curve and survival figures have one small panel per row
(the reference's curve in every panel), so that many rows stay legible."""
SURVIVAL_PANELS_FROM = PANELS_FROM


def study_colors(records: Sequence[Mapping[str, Any]], reference: str) -> dict[str, Any]:
    """One colour per row name over every group of a study, the reference's first: a
    variant keeps its colour in every figure (each length, each kind of plot)."""
    return group_colors(loading.group_rows(records), reference)


def group_colors(
    groups: Mapping[tuple[str, int], Sequence[loading.Row]], reference: str
) -> dict[str, Any]:
    """:func:`study_colors` of ``{(task, length): rows}`` groups."""
    names: set[str] = set()
    references: list[str] = []
    for (task, length), rows in groups.items():
        _, ref_name = row_order(rows, reference, f"{task}, T={length}")
        names.update(row.name for row in rows)
        references += [ref_name] if ref_name else []
    first = list(dict.fromkeys(references))
    return row_colors([*first, *sorted(names - set(first))])


def _draw_curve(ax, member: loading.Row, color: Any, width: float, with_label: bool) -> str:
    """One row's median held-out loss and interquartile band; returns its label."""
    recs = member.records
    finite = [r for r in recs if not is_diverged(r)]
    n_div = len(recs) - len(finite)
    if not finite:
        label = f"{member.name} (all {len(recs)} seeds diverged)"
        ax.plot([], [], color=color, label=label if with_label else None)
        return label
    steps, median, q25, q75 = learning_curve(finite)
    dropped = f", {n_div} diverged not shown" if n_div else ""
    label = f"{member.name} (n={len(finite)}{dropped})"
    if steps.size == 0:
        label += ", no positive losses"
        ax.plot([], [], color=color, label=label if with_label else None)
        return label
    ax.plot(steps, median, color=color, linewidth=width, label=label if with_label else None)
    ax.fill_between(steps, q25, q75, color=color, alpha=0.2, linewidth=0)
    return label


def _draw_levels(ax, baseline: float, solve_fraction: float | None, with_label: bool) -> None:
    """The memoryless baseline (dashed) and the solve threshold (dotted)."""
    ax.axhline(
        baseline,
        color="black",
        linestyle="--",
        linewidth=1.0 if not with_label else 1.2,
        label=f"memoryless baseline ({baseline:.4g})" if with_label else None,
    )
    if solve_fraction is not None:
        ax.axhline(
            solve_fraction * baseline,
            color="0.45",
            linestyle=":",
            linewidth=1.2,
            label=f"solve threshold ({solve_fraction:g} × baseline)" if with_label else None,
        )


def plot_learning_curves(
    records: Sequence[Mapping[str, Any]],
    path_prefix: str | os.PathLike[str],
    solve_fraction: float | None = None,
    reference: str = REFERENCE_VARIANT,
) -> list[str]:
    """One PNG per (task, length) of held-out loss against training step, log scale.

    Per row: the median over its non-diverged seeds as a line and the interquartile
    range (25–75 %) as a shaded band (the legend gives n and how many diverged seeds are
    left out). The task's memoryless baseline is a dashed line; the solve threshold a
    dotted one when ``solve_fraction`` is given. Up to six rows share one axis (the
    reference thicker); from :data:`PANELS_FROM` rows on, each row has its own small panel
    over the reference's median in dashed grey, all panels on one scale. A row has the same
    colour in every figure of the records (:func:`study_colors`).

    Args:
      records: valid records, as returned by
        :func:`experiments.compare.loading.load_records`.
      path_prefix: files are written (atomically) to ``f"{path_prefix}{task}_T{length}.png"``,
        e.g. ``"runs/copy/learning_curves_"``.
      solve_fraction: if given, also draw the solve threshold ``solve_fraction * baseline``.
      reference: the row drawn first and thicker (a label, or a row's full name).

    Returns:
      The paths written, in (task, length) order.

    Raises:
      ValueError: ``reference`` fits several rows of a group.
    """
    written: list[str] = []
    colors = study_colors(records, reference)
    for (task, length), members in loading.group_rows(records).items():
        members, ref_name = row_order(members, reference, f"{task}, T={length}")
        baseline, _ = group_baseline({m.name: m.records for m in members})
        panels = len(members) >= PANELS_FROM
        ncols = min(4, len(members)) if panels else 1
        nrows = math.ceil(len(members) / ncols) if panels else 1
        size = (3.1 * ncols, 0.8 + 2.3 * nrows) if panels else (7.5, 4.8)
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
        reference_row = next((m for m in members if m.name == ref_name), None)
        for i, member in enumerate(members):
            ax = axes[i] if panels else axes[0]
            is_ref = member.name == ref_name
            if panels and reference_row is not None and not is_ref:
                finite = [r for r in reference_row.records if not is_diverged(r)]
                ref_steps, ref_median, _, _ = learning_curve(finite) if finite else ([], [], 0, 0)
                ax.plot(ref_steps, ref_median, color="0.55", linestyle="--", linewidth=1.1)
            width = 2.4 if is_ref and not panels else 1.6
            label = _draw_curve(ax, member, colors[member.name], width, with_label=not panels)
            if panels:
                _draw_levels(ax, baseline, solve_fraction, with_label=False)
                ax.set_title(label + (" (reference)" if is_ref else ""), fontsize=7.5)
        if not panels:
            _draw_levels(axes[0], baseline, solve_fraction, with_label=True)
            axes[0].legend(fontsize=8, loc="best")
        for i, ax in enumerate(axes[len(members) :] if panels else (), start=len(members)):
            ax.set_visible(False)
            if i >= ncols:  # the panel above has no neighbour below to carry the ticks
                axes[i - ncols].xaxis.set_tick_params(labelbottom=True)
        for ax in axes:
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.tick_params(labelsize=7 if panels else 9)
        fig.supxlabel("training step", fontsize=9)
        fig.supylabel("held-out loss (log scale)", fontsize=9)
        levels = (
            f"black dashed: memoryless baseline ({baseline:.4g})"
            + (
                ""
                if solve_fraction is None
                else f"; dotted: solve threshold ({solve_fraction:g} × baseline)"
            )
            + (f"; grey dashed: {ref_name}" if ref_name else "")
        )
        fig.suptitle(
            f"{task}, T={length}: median over seeds, band = interquartile range"
            + (f"\n{levels}" if panels else ""),
            fontsize=9 if panels else 10,
        )
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
        ref_name = group[0].get("reference_row") or group[0]["reference"]
        baseline = group[0]["baseline"]
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
                    err = [[max(0.0, mean - low)], [max(0.0, high - mean)]]  # rounding
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


def _km_step(
    ax: Any, times: np.ndarray, solved: np.ndarray, label: str | None, **style: Any
) -> None:
    """One Kaplan–Meier step curve from (0, 1), censored seeds as ``|`` ticks."""
    curve = stats.kaplan_meier(times, solved)
    steps = np.concatenate([[0.0], curve.steps])
    unsolved = np.concatenate([[1.0], curve.unsolved])
    ax.step(steps, unsolved, where="post", label=label, **style)
    censored = times[~solved]
    if censored.size:
        at = np.searchsorted(steps, censored, side="right") - 1
        ax.plot(censored, unsolved[at], "|", color=style["color"], markersize=9)


def _km_label(name: str, times: np.ndarray, solved: np.ndarray) -> str:
    median = stats.km_median(times, solved)
    when = f"median {median:.0f}" if math.isfinite(median) else "median not reached"
    return f"{name}: {int(solved.sum())}/{solved.size} solved, {when}"


def plot_survival(
    records: Sequence[Mapping[str, Any]],
    path_prefix: str | os.PathLike[str],
    solve_fraction: float = DEFAULT_SOLVE_FRACTION,
    reference: str = REFERENCE_VARIANT,
) -> list[str]:
    """One PNG per (task, length) of the Kaplan–Meier fraction of seeds not yet solved.

    Per row, a step curve of :func:`experiments.compare.stats.kaplan_meier` over its
    seeds' times to solve (:func:`experiments.compare.tables.solve_times`: unsolved and
    diverged seeds censored at their last evaluation step, drawn as ``|`` ticks), in the
    row's colour of the learning curves. Up to six rows share one panel (the reference
    thicker, the legend giving each row's solved count and Kaplan–Meier median); from
    :data:`SURVIVAL_PANELS_FROM` rows on, each row has its own small panel, titled so,
    over the reference's curve in grey, so that many rows stay legible.

    Args:
      records: valid records, as returned by
        :func:`experiments.compare.loading.load_records`.
      path_prefix: files go to ``f"{path_prefix}{task}_T{length}.png"``, e.g.
        ``"runs/copy/survival_"``.
      solve_fraction: a seed is solved when its final loss is at most this times the
        baseline.
      reference: the reference row (a label, or a row's full name).

    Returns:
      The paths written, in (task, length) order.

    Raises:
      ValueError: ``reference`` fits several rows of a group.
    """
    written: list[str] = []
    colors = study_colors(records, reference)
    for (task, length), members in loading.group_rows(records).items():
        members, ref_name = row_order(members, reference, f"{task}, T={length}")
        baseline, _ = group_baseline({m.name: m.records for m in members})
        times = {m.name: solve_times(m.records, solve_fraction * baseline) for m in members}
        last = max(float(t.max(initial=0.0)) for t, _ in times.values()) or 1.0
        panels = len(members) >= SURVIVAL_PANELS_FROM
        ncols = min(4, len(members)) if panels else 1
        nrows = math.ceil(len(members) / ncols) if panels else 1
        size = (3.1 * ncols, 0.6 + 2.2 * nrows) if panels else (9.0, 4.6)
        fig = Figure(figsize=size, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
        for i, member in enumerate(members):
            ax = axes[i] if panels else axes[0]
            t, solved = times[member.name]
            label = _km_label(member.name, t, solved)
            is_ref = member.name == ref_name
            if panels and ref_name and not is_ref:
                _km_step(ax, *times[ref_name], None, color="0.6", linewidth=1.2, linestyle="--")
            width = 2.6 if is_ref and not panels else 1.8
            _km_step(ax, t, solved, None if panels else label, color=colors[member.name],
                     linewidth=width)  # fmt: skip
            if panels:
                ax.set_title(label + (" (reference)" if is_ref else ""), fontsize=7.5)
        for i, ax in enumerate(axes[len(members) :] if panels else (), start=len(members)):
            ax.set_visible(False)
            if i >= ncols:  # the panel above has no neighbour below to carry the ticks
                axes[i - ncols].xaxis.set_tick_params(labelbottom=True)
        for ax in axes:
            ax.set_xlim(0, last * 1.03)
            ax.set_ylim(-0.04, 1.06)
            ax.grid(True, which="major", alpha=0.3)
            ax.tick_params(labelsize=7 if panels else 9)
        if not panels:
            axes[0].legend(fontsize=8, loc="lower left")
        fig.supxlabel("training step", fontsize=9)
        fig.supylabel("fraction of seeds not yet solved", fontsize=9)
        reference_curve = f"; dashed grey: {ref_name}" if panels and ref_name else ""
        fig.suptitle(
            f"{task}, T={length}: Kaplan–Meier estimate of the seeds not yet solved "
            f"(held-out loss ≤ {solve_fraction:g} × baseline)\n| = censored: unsolved at its "
            f"last evaluation{reference_curve}",
            fontsize=9,
        )
        written.append(_save(fig, f"{os.fspath(path_prefix)}{task}_T{length}.png"))
    return written
