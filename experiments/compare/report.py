"""The whole comparison of a workdir in one call, and the package's public names in one place.

The work is split by kind; this module writes the report from them::

    loading.py   read, validate and group the per-seed records
    stats.py     statistics (SciPy): bootstrap and Wilson intervals, Welch, Holm, Hedges' g
    tables.py    summary rows per (task, length, variant); Markdown and CSV
    plots.py     learning curves and forest plots

Usage::

    from experiments.compare import report

    records, problems = report.load_records("runs/copy")   # problems: one line per bad file
    tables, paths = report.write_summary(records, problems, "runs/copy")

or step by step::

    rows = report.summarise(records, solve_fraction=0.1, reference="lstm")
    print(report.format_markdown(rows))
    report.write_csv(rows, "runs/copy/summary.csv")
    report.plot_learning_curves(records, "runs/copy/learning_curves_")
    report.plot_forest(rows, "runs/copy/forest_")

The definitions (diverged, solved, the test, the corrections) are in
:mod:`experiments.compare.tables`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.compare.loading import RECORD_FORMAT, REFERENCE_VARIANT, load_records
from experiments.compare.plots import plot_forest, plot_learning_curves
from experiments.compare.stats import welch_test
from experiments.compare.tables import (
    DEFAULT_SOLVE_FRACTION,
    format_markdown,
    solve_rate_column,
    summarise,
    write_csv,
)
from experiments.shared.records import write_atomic

__all__ = [
    "DEFAULT_SOLVE_FRACTION",
    "RECORD_FORMAT",
    "REFERENCE_VARIANT",
    "format_markdown",
    "load_records",
    "plot_forest",
    "plot_learning_curves",
    "solve_rate_column",
    "summarise",
    "welch_test",
    "write_csv",
    "write_summary",
]


def write_summary(
    records: Sequence[Mapping[str, Any]],
    problems: Sequence[str],
    output_dir: str | os.PathLike[str],
    solve_fraction: float = DEFAULT_SOLVE_FRACTION,
    reference: str = REFERENCE_VARIANT,
) -> tuple[str, list[Path]]:
    """Writes ``summary.md``, ``summary.csv`` and the PNGs of every group to ``output_dir``.

    The PNGs are ``learning_curves_{task}_T{length}.png`` and ``forest_{task}_T{length}.png``.

    Args:
      records: valid records (from :func:`load_records`).
      problems: the records that were skipped, listed at the end of ``summary.md``.
      output_dir: where the files go (created if needed).
      solve_fraction: a seed is solved when its final loss <= this times the baseline.
      reference: the variant every other one is tested against.

    Returns:
      The markdown tables and the paths written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = summarise(records, solve_fraction=solve_fraction, reference=reference)
    curves = plot_learning_curves(
        records, output_dir / "learning_curves_", solve_fraction=solve_fraction, reference=reference
    )
    forests = plot_forest(rows, output_dir / "forest_")
    tables = format_markdown(rows, solve_fraction)
    skipped = f"; {len(problems)} skipped (listed at the end)." if problems else "."
    document = [
        "# Comparison of variants",
        "",
        f"{len(records)} records{skipped}",
        "",
        tables,
        "## Learning curves",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in curves],
        "",
        f"## Final loss against `{reference}` (forest plots)",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in forests],
        "",
    ]
    if problems:
        document += ["## Skipped records", "", *[f"* {p}" for p in problems], ""]
    summary_md, summary_csv = output_dir / "summary.md", output_dir / "summary.csv"
    write_atomic(summary_md, "\n".join(document).encode("utf-8"))
    write_csv(rows, summary_csv)
    return tables, [summary_md, summary_csv, *map(Path, curves), *map(Path, forests)]
