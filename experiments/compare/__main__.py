r"""Summarise and compare the trained variants under a workdir.

Reads every record under ``WORKDIR/records/`` and writes, to ``--output_dir`` (default:
the workdir), ``summary.md``, ``summary.csv``, ``learning_curves_{task}_T{length}.png`` and
``forest_{task}_T{length}.png``; prints the Markdown tables to stdout and one warning line
per skipped record to stderr::

    python -m experiments.compare --workdir=runs/copy
    python -m experiments.compare --workdir=runs/copy --solve_fraction=0.05 --output_dir=/tmp/c
    python -m experiments.compare --workdir=runs/copy --reference=gru

A study's workdir may name its reference variant in ``study.json`` (see
:func:`experiments.compare.loading.study_reference`); ``--reference`` overrides it.

The statistics, the test and the corrections are defined in :mod:`experiments.compare.tables`
and :mod:`experiments.compare.stats`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags

from experiments.compare import loading
from experiments.compare import report as compare

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Experiment directory to read; every *.json under WORKDIR/records/ is a record.",
    required=True,
)
_SOLVE_FRACTION = flags.DEFINE_float(
    "solve_fraction",
    compare.DEFAULT_SOLVE_FRACTION,
    "A seed counts as solved when its final held-out loss is <= solve_fraction times the "
    "task's memoryless baseline loss. Must be in (0, 1].",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    None,
    "Directory for summary.md, summary.csv and the learning-curve PNGs (created if "
    "missing). Default: --workdir.",
)

_REFERENCE = flags.DEFINE_string(
    "reference",
    None,
    "The variant (record label) every other variant of the same task and length is tested "
    "against: Welch's t-test, Holm-Bonferroni adjusted, and Hedges' g. Default: the "
    f'"reference" of WORKDIR/study.json if there is one, else {compare.REFERENCE_VARIANT!r}.',
)

flags.register_validator(
    "reference",
    lambda v: v is None or bool(v.strip()),
    message="must be a variant name, not empty",
)
flags.register_validator(
    "workdir",
    lambda v: v is None or os.path.isdir(v),
    message="must be an existing directory",
)
flags.register_validator(
    "solve_fraction",
    lambda v: 0.0 < v <= 1.0,
    message="must be in (0, 1]",
)


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses flags; a bad flag exits with status 2 and one line on stderr, no traceback."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        message = " ".join(str(e).split())
        print(f"{Path(argv[0]).name}: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv: list[str]) -> int | str:
    if len(argv) > 1:
        return f"error: unexpected arguments: {' '.join(argv[1:])}"
    workdir = Path(_WORKDIR.value)
    output_dir = Path(_OUTPUT_DIR.value) if _OUTPUT_DIR.value else workdir
    fraction = _SOLVE_FRACTION.value
    try:
        reference = _REFERENCE.value or loading.study_reference(workdir)
    except ValueError as e:
        return f"error: {e}"

    records, problems = compare.load_records(workdir)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)  # Each names its file.
    if not records:
        where = workdir / "records"
        return f"error: no valid records under {where}" + (
            "" if where.is_dir() else " (no such directory)"
        )
    if not any(loading.label(rec) == reference for rec in records):
        print(
            f"warning: no records of the reference variant {reference!r}; nothing is tested",
            file=sys.stderr,
        )
    try:
        text, written = compare.write_summary(records, problems, output_dir, fraction, reference)
    except OSError as e:
        return f"error: cannot write to --output_dir: {e}"

    print(text)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
