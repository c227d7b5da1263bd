r"""Summarise and compare the trained variants under one or more workdirs.

Reads every record under ``WORKDIR/records/`` and, in a study workdir, under
``WORKDIR/cells/*/records/`` (:mod:`experiments.compare.loading`), and writes, to
``--output_dir`` (default: the workdir), ``summary.md``, ``summary.csv``,
``learning_curves_{task}_T{length}.png``, ``forest_{task}_T{length}.png`` and
``survival_{task}_T{length}.png`` (and ``tuning.csv`` when tuning cells have records);
prints the Markdown tables to stdout and one warning line per skipped record to stderr::

    python -m experiments.compare --workdir=runs/copy
    python -m experiments.compare --workdir=runs/copy --solve_fraction=0.05 --output_dir=/tmp/c
    python -m experiments.compare --workdir=runs/copy --reference=gru
    python -m experiments.compare --workdir=runs/a,runs/b --output_dir=/tmp/ab
    python -m experiments.compare --workdir=runs/sweep --reference='lstm lr=0.001'

Records are never pooled across settings: a label whose records differ in a setting is
split into rows named by it (``lstm lr=0.001``, ``lstm lr=0.01``); such a label is then
an ambiguous reference, refused with one line naming the rows, one of which
``--reference`` takes in full. A study's workdir may name its reference in ``study.json``
(see :func:`experiments.compare.loading.study_reference`); ``--reference`` overrides it.

The statistics, the test and the corrections are defined in :mod:`experiments.compare.tables`
and :mod:`experiments.compare.stats`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from absl import app, flags

from experiments.compare import claims, loading
from experiments.compare import report as compare
from experiments.shared.records import write_atomic

PROGRAM = "experiments.compare"

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "Experiment directory to read, or several as a comma-separated list compared together "
    "(then --output_dir is required): every *.json under WORKDIR/records/ and "
    "WORKDIR/cells/*/records/ is a record.",
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
    "Directory for summary.md, summary.csv and the PNGs (created if missing). Default: "
    "--workdir when it names one directory.",
)

_REFERENCE = flags.DEFINE_string(
    "reference",
    None,
    "The row (a record label, or a row's full name such as 'lstm lr=0.001' where the "
    "label's records have different settings) every other row of the same task and length "
    "is tested against: Welch's t-test, log-rank and Fisher tests, Holm-Bonferroni "
    'adjusted, and Hedges\' g. Default: the "reference" of WORKDIR/study.json if there is '
    f"one, else {compare.REFERENCE_VARIANT!r}.",
)

_CLAIMS = flags.DEFINE_enum(
    "claims",
    None,
    sorted([*claims.CLAIMS, "state_tracking"]),
    "Also label a set of published claims agreed / not / undecided by a rule fixed before "
    "the run, printed and written to claims.md: greff, Greff et al. 2017's, against the "
    "reference V (experiments.compare.claims); state_tracking, Delétang et al.'s, Beck et "
    "al.'s, Merrill et al.'s and Grazzi et al.'s (experiments.compare.state_claims).",
)

flags.register_validator(
    "reference",
    lambda v: v is None or bool(v.strip()),
    message="must be a variant name, not empty",
)


def workdirs(value: str) -> list[str]:
    """The directories of ``--workdir``: one, or a comma-separated list."""
    return [part.strip() for part in value.split(",")]


def _check_workdirs(value: str | None) -> bool:
    """``--workdir``'s validator: each directory must exist; the message names the first."""
    if value is None:
        return True
    for path in workdirs(value):
        if not path:
            raise flags.ValidationError(f"--workdir has an empty entry in {value!r}")
        if not os.path.isdir(path):
            why = "it is not a directory" if os.path.exists(path) else "no such directory"
            raise flags.ValidationError(f"--workdir {path} must be an existing directory ({why})")
    return True


flags.register_validator("workdir", _check_workdirs)
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
        prefix = "flag --workdir="  # absl's; our message names the flag and directory
        if message.startswith(prefix) and ": --workdir " in message:
            message = message.split(": ", 1)[1]
        print(f"{PROGRAM}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _reference(dirs: list[Path]) -> str:
    """``--reference``, else the one the workdirs' ``study.json`` name, else ``lstm``.

    Raises:
      ValueError: a ``study.json`` is bad, or two name different references.
    """
    if _REFERENCE.value:
        return _REFERENCE.value
    named = {d: loading.study_reference(d) for d in dirs if (d / "study.json").exists()}
    if len(set(named.values())) > 1:
        listed = ", ".join(f"{d}: {r!r}" for d, r in named.items())
        raise ValueError(f"the workdirs' study.json name different references ({listed}); "
                         "give --reference")  # fmt: skip
    return next(iter(named.values()), compare.REFERENCE_VARIANT)


def main(argv: list[str]) -> int | str:
    if len(argv) > 1:
        return f"{PROGRAM}: error: unexpected arguments: {' '.join(argv[1:])}"
    dirs = [Path(d) for d in workdirs(_WORKDIR.value)]
    if len(dirs) > 1 and not _OUTPUT_DIR.value:
        return f"{PROGRAM}: error: --output_dir is required with several --workdir directories"
    output_dir = Path(_OUTPUT_DIR.value) if _OUTPUT_DIR.value else dirs[0]
    fraction = _SOLVE_FRACTION.value
    try:
        reference = _reference(dirs)
    except ValueError as e:
        return f"{PROGRAM}: error: {e}"

    records, problems = compare.load_workdirs(dirs)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)  # Each names its file.
    if not records:
        where = " or ".join(f"{d / 'records'} (or {d / 'cells'})" for d in dirs)
        missing = all(not (d / "records").is_dir() and not (d / "cells").is_dir() for d in dirs)
        return f"{PROGRAM}: error: no valid records under {where}" + (
            " (no such directory)" if missing else ""
        )
    labels = {loading.label(rec) for rec in records if not loading.is_tune(rec)}
    if labels and reference.split()[0] not in labels:
        known = ", ".join(sorted(labels))
        if flags.FLAGS["reference"].present:  # asked for by name: a typo, not a choice
            return (
                f"{PROGRAM}: error: --reference={reference!r} has no records; "
                f"the labels are: {known}"
            )
        print(
            f"warning: no records of the reference variant {reference!r}; nothing is tested "
            f"(the labels are: {known}; choose one with --reference)",
            file=sys.stderr,
        )
    try:
        text, written = compare.write_summary(records, problems, output_dir, fraction, reference)
    except ValueError as e:  # an ambiguous reference
        return f"{PROGRAM}: error: {e}"
    except OSError as e:
        return f"{PROGRAM}: error: cannot write to --output_dir: {e}"

    print(text)
    if _CLAIMS.value:
        written.append(_write_claims(records, fraction, reference, output_dir))
    for path in written:
        print(f"wrote {path}")
    return 0


def _write_claims(records, fraction: float, reference: str, output_dir: Path) -> Path:
    """Prints the verdicts on ``--claims`` and writes them to ``claims.md``."""
    text = compare.claims_text(_CLAIMS.value, records, fraction, reference)
    print(text)
    path = output_dir / "claims.md"
    write_atomic(path, text.encode("utf-8"))
    return path


def console() -> None:
    """The ``lstmx-compare`` command (``pip install`` puts it on the PATH)."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    console()
