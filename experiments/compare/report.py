"""The whole comparison of a workdir in one call, and the package's public names in one place.

The work is split by kind; this module writes the report from them::

    loading.py   read, validate and group the per-seed records (and a study's cells)
    stats.py     statistics (SciPy): bootstrap and Wilson intervals, Welch, Holm, Hedges' g,
                 Kaplan–Meier, log-rank, Fisher, the detectable effect
    tables.py    summary rows per (task, length, row); Markdown and CSV
    tuning.py    the tuning table of a study's tuning cells
    plots.py     learning curves, forest plots, survival (time to solve) curves
    state_tracking.py  the state-tracking tasks' score table and accuracy-by-length figure

Usage::

    from experiments.compare import report

    records, problems = report.load_records("runs/copy")   # problems: one line per bad file
    tables, paths = report.write_summary(records, problems, "runs/copy")

    # several workdirs together (a record in two of them is reported and skipped):
    records, problems = report.load_workdirs(["runs/a", "runs/b"])

or step by step::

    rows = report.summarise(records, solve_fraction=0.1, reference="lstm")
    print(report.format_markdown(rows))
    report.write_csv(rows, "runs/copy/summary.csv")
    report.plot_learning_curves(records, "runs/copy/learning_curves_")
    report.plot_forest(rows, "runs/copy/forest_")
    report.plot_survival(records, "runs/copy/survival_", solve_fraction=0.1, reference="lstm")

The definitions (diverged, solved, the test, the corrections) are in
:mod:`experiments.compare.tables`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from experiments.compare import claims, state_claims
from experiments.compare.loading import (
    RECORD_FORMAT,
    REFERENCE_VARIANT,
    is_tune,
    load_records,
    load_workdirs,
)
from experiments.compare.plots import plot_forest, plot_learning_curves, plot_survival
from experiments.compare.state_tracking import (
    format_scores_markdown,
    plot_accuracy_by_length,
    summarise_scores,
    write_scores_csv,
)
from experiments.compare.stats import welch_test
from experiments.compare.tables import (
    DEFAULT_SOLVE_FRACTION,
    format_markdown,
    solve_rate_column,
    summarise,
    write_csv,
)
from experiments.compare.tuning import format_tuning_markdown, summarise_tuning, write_tuning_csv
from experiments.shared.records import write_atomic

__all__ = [
    "claims_text",
    "DEFAULT_SOLVE_FRACTION",
    "RECORD_FORMAT",
    "REFERENCE_VARIANT",
    "format_markdown",
    "format_scores_markdown",
    "format_tuning_markdown",
    "load_records",
    "load_workdirs",
    "plot_accuracy_by_length",
    "plot_forest",
    "plot_learning_curves",
    "plot_survival",
    "solve_rate_column",
    "summarise",
    "summarise_scores",
    "summarise_tuning",
    "welch_test",
    "write_csv",
    "write_scores_csv",
    "write_summary",
    "write_tuning_csv",
]


def write_summary(
    records: Sequence[Mapping[str, Any]],
    problems: Sequence[str],
    output_dir: str | os.PathLike[str],
    solve_fraction: float = DEFAULT_SOLVE_FRACTION,
    reference: str = REFERENCE_VARIANT,
) -> tuple[str, list[Path]]:
    """Writes ``summary.md``, ``summary.csv`` and the PNGs of every group to ``output_dir``.

    The PNGs are ``learning_curves_{task}_T{length}.png``, ``forest_{task}_T{length}.png``
    and ``survival_{task}_T{length}.png``; for the state-tracking tasks also
    ``accuracy_by_length_{task}_T{length}.png`` and ``scores.csv``, and ``summary.md``
    opens with their score table (:mod:`experiments.compare.state_tracking`). Records of
    tuning cells are left out of the
    comparison; when there are any, ``summary.md`` has a "Tuning" section and
    ``tuning.csv`` is written too (:mod:`experiments.compare.tuning`).

    Args:
      records: valid records (from :func:`load_records` or :func:`load_workdirs`).
      problems: the records that were skipped, listed at the end of ``summary.md``.
      output_dir: where the files go (created if needed).
      solve_fraction: a seed is solved when its final loss <= this times the baseline.
      reference: the row every other one is tested against: a label, or a row's full
        name where the label is split by settings (e.g. ``"lstm lr=0.001"``).

    Returns:
      The markdown tables (the tuning section included) and the paths written.

    Raises:
      ValueError: ``reference`` fits several rows of a group; nothing is written.
    """
    rows = summarise(records, solve_fraction=solve_fraction, reference=reference)
    tuning_rows = summarise_tuning(records, solve_fraction=solve_fraction)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    curves = plot_learning_curves(
        records, output_dir / "learning_curves_", solve_fraction=solve_fraction, reference=reference
    )
    forests = plot_forest(rows, output_dir / "forest_")
    survival = plot_survival(
        records, output_dir / "survival_", solve_fraction=solve_fraction, reference=reference
    )
    score_rows = summarise_scores(records, reference=reference)
    by_length = plot_accuracy_by_length(records, output_dir / "accuracy_by_length_", reference)
    tables = format_markdown(rows, solve_fraction)
    if score_rows:
        tables = format_scores_markdown(score_rows) + "\n" + tables
    if tuning_rows:
        tables += ("\n" if tables else "") + format_tuning_markdown(tuning_rows)
    n_tune = sum(1 for rec in records if is_tune(rec))
    tuned = f" ({n_tune} of them from tuning cells, in the Tuning section)" if n_tune else ""
    skipped = f"; {len(problems)} skipped (listed at the end)." if problems else "."
    document = [
        "# Comparison of variants",
        "",
        f"{len(records)} records{tuned}{skipped}",
        "",
        tables,
        *(["## Accuracy against test length", ""] if by_length else []),
        *[f"![{Path(p).stem}]({Path(p).name})" for p in by_length],
        *([""] if by_length else []),
        "## Learning curves",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in curves],
        "",
        f"## Final loss against `{reference}` (forest plots)",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in forests],
        "",
        "## Time to solve (Kaplan–Meier fraction of seeds not yet solved)",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in survival],
        "",
    ]
    if problems:
        document += ["## Skipped records", "", *[f"* {p}" for p in problems], ""]
    summary_md, summary_csv = output_dir / "summary.md", output_dir / "summary.csv"
    write_atomic(summary_md, "\n".join(document).encode("utf-8"))
    write_csv(rows, summary_csv)
    written = [summary_md, summary_csv]
    if tuning_rows:
        write_tuning_csv(tuning_rows, output_dir / "tuning.csv")
        written.append(output_dir / "tuning.csv")
    if score_rows:
        write_scores_csv(score_rows, output_dir / "scores.csv")
        written.append(output_dir / "scores.csv")
    figures = [*curves, *forests, *survival, *by_length]
    return tables, [*written, *map(Path, figures)]


def claims_text(kind: str, records, fraction: float, reference: str) -> str:
    """The ``claims.md`` of ``records`` for the claims ``kind``: ``"state_tracking"``
    (:mod:`experiments.compare.state_claims`) or a key of
    :data:`experiments.compare.claims.CLAIMS`, judged against ``reference``."""
    kinds = sorted([*claims.CLAIMS, "state_tracking"])
    if kind not in kinds:
        raise ValueError(f"claims kind must be one of {kinds}; got {kind!r}")
    if kind == "state_tracking":
        verdicts = state_claims.state_verdicts(state_claims.STATE_TRACKING_CLAIMS, records)
        parts = ["## Claims (state_tracking)", ""]
        parts += [state_claims.format_state_verdicts(verdicts)] if verdicts else [
            "No claim has records of its rows.", ""]  # fmt: skip
    else:
        rows = summarise(records, solve_fraction=fraction, reference=reference)
        found = claims.verdicts_by_group(claims.CLAIMS[kind], rows)
        parts = [f"## Claims ({kind}), against `{reference}`", ""]
        for (task, length), verdicts in found.items():
            parts += [f"### {task}, T = {length}", "", claims.format_verdicts(verdicts), ""]
        if not found:
            parts += ["No group has every row the claims name.", ""]
    return "\n".join(parts)
