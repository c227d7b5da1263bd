"""Reporting gradient-flow measurements: CSV files, a plot and a text summary.

:class:`FlowCurve` labels one :class:`lstmx.diagnostics.GradientFlow`; the functions below
turn a list of them into the files and the table ``python -m experiments.gradient_flow``
writes. Plots use matplotlib's object-oriented API on the Agg canvas (no pyplot).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from experiments.shared import records
from lstmx.diagnostics import GateStats, GradientFlow

__all__ = [
    "FLOW_CSV_COLUMNS",
    "GATE_CSV_COLUMNS",
    "FlowCurve",
    "format_flow_summary",
    "plot_flow",
    "write_flow_csv",
    "write_gate_csv",
]


class FlowCurve(NamedTuple):
    """One measured :class:`GradientFlow`, labelled for tables and plots.

    Attributes:
      variant: the variant's name.
      stage: e.g. "init" or "trained".
      train_steps: optimiser steps taken before the measurement (0 at initialisation).
      flow: the measurement.
      gates: optional ``{gate: GateStats}`` measured on the same sequences.
    """

    variant: str
    stage: str
    train_steps: int
    flow: GradientFlow
    gates: Mapping[str, GateStats] | None = None

    @property
    def label(self) -> str:
        when = "at init" if self.train_steps == 0 else f"after {self.train_steps} steps"
        return f"{self.variant}, {when}"


FLOW_CSV_COLUMNS = (
    "variant",
    "stage",
    "train_steps",
    "lag",
    "norm_wrt_input",
    "norm_wrt_state",
)
GATE_CSV_COLUMNS = (
    "variant",
    "stage",
    "train_steps",
    "gate",
    "activation",
    "mean",
    "saturated_low",
    "saturated_high",
)


def _csv_bytes(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def write_flow_csv(curves: Sequence[FlowCurve], path: str | os.PathLike) -> None:
    """Writes one row per curve and lag (lag 0 first), atomically.

    Columns: ``variant, stage, train_steps, lag, norm_wrt_input, norm_wrt_state``.
    """
    rows = []
    for curve in curves:
        wrt_inputs = np.asarray(curve.flow.wrt_inputs)[::-1]
        wrt_states = np.asarray(curve.flow.wrt_states)[::-1]
        for lag, (by_input, by_state) in enumerate(zip(wrt_inputs, wrt_states, strict=True)):
            values = (repr(float(by_input)), repr(float(by_state)))
            rows.append((curve.variant, curve.stage, curve.train_steps, lag, *values))
    records.write_atomic(path, _csv_bytes(FLOW_CSV_COLUMNS, rows))


def write_gate_csv(curves: Sequence[FlowCurve], path: str | os.PathLike) -> None:
    """Writes the curves' gate statistics, one row per curve and gate, atomically."""
    rows = [
        (curve.variant, curve.stage, curve.train_steps, gate, s.activation, s.mean)
        + (s.saturated_low, s.saturated_high)
        for curve in curves
        for gate, s in (curve.gates or {}).items()
    ]
    records.write_atomic(path, _csv_bytes(GATE_CSV_COLUMNS, rows))


def plot_flow(curves: Sequence[FlowCurve], path: str | os.PathLike, title: str = "") -> None:
    r"""Plots :math:`\lVert\partial h_T/\partial h_t\rVert` and :math:`\lVert\partial h_T /
    \partial x_t\rVert` against the lag on a log scale, one line per curve (PNG, atomic).

    A variant keeps its colour; curves after training are dashed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    colours = {}
    for curve in curves:
        colour = colours.setdefault(curve.variant, f"C{len(colours) % 10}")
        style = "-" if curve.train_steps == 0 else "--"
        lags = curve.flow.lags
        for ax, values in zip(axes, (curve.flow.wrt_states, curve.flow.wrt_inputs), strict=True):
            values = np.asarray(values, dtype=np.float64)
            values = np.where(values > 0, values, np.nan)  # log scale: leave zeros out
            ax.plot(lags, values, style, color=colour, linewidth=1.6, label=curve.label)
    labels = (
        r"$\|\partial h_T / \partial h_t\|_F$ (log scale)",
        r"$\|\partial h_T / \partial x_t\|_F$ (log scale)",
    )
    for ax, label in zip(axes, labels, strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("time lag T − t (steps)")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_title(r"with respect to the hidden state $h_t$ (lag 0: $\sqrt{H}$)", fontsize=10)
    axes[1].set_title(r"with respect to the input $x_t$ (every path, $c_t$ included)", fontsize=10)
    axes[0].legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    records.write_atomic(path, buffer.getvalue())


def format_flow_summary(curves: Sequence[FlowCurve], lags: Sequence[int] = (1, 10, 50, 100)) -> str:
    r"""A text table of both norms at the given lags (those the sequences reach) per curve."""
    if not curves:
        return "(no curves)"
    length = min(len(curve.flow.lags) for curve in curves)
    shown = [lag for lag in lags if 0 <= lag < length] or [length - 1]
    if length - 1 not in shown and max(lags, default=0) >= length:
        shown.append(length - 1)  # the longest lag the sequences have
    width = max(len("||dh_T/dh_t|| at lag"), *(len(curve.label) for curve in curves))
    lines = []
    for title, field in (("||dh_T/dh_t||", "wrt_states"), ("||dh_T/dx_t||", "wrt_inputs")):
        header = f"{title + ' at lag':<{width}}" + "".join(f"{lag:>11}" for lag in shown)
        lines.append(header)
        for curve in curves:
            values = np.asarray(getattr(curve.flow, field))[::-1]
            lines.append(
                f"{curve.label:<{width}}" + "".join(f"{values[lag]:>11.3e}" for lag in shown)
            )
        lines.append("")
    gate_lines = [
        f"{curve.label:<{width}}  "
        + "  ".join(
            f"{gate} {s.mean:+.2f} (sat {s.saturated_low:.0%}/{s.saturated_high:.0%})"
            for gate, s in curve.gates.items()
        )
        for curve in curves
        if curve.gates
    ]
    if gate_lines:
        lines.append("gate means (saturated low/high)")
        lines.extend(gate_lines)
    return "\n".join(lines).rstrip()
