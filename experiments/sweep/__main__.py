r"""Runs a study: a grid of ``experiments.run`` settings, one compiled multi-seed program per cell.

The grid comes from flags (every ``experiments.run`` setting, comma lists where they vary)
or from a study file (``experiments/studies/NAME.py``, an ``ml_collections`` config with
``get_config()``; ``--study.FIELD=value`` overrides a field)::

  python -m experiments.sweep --task=adding --lengths=100,200 --variants=lstm,gru \
      --learning_rates=3e-4,1e-3,3e-3 --tune=learning_rate --seeds=10 --workdir=runs/s
  python -m experiments.sweep --study=experiments/studies/greff_adding_T100.py \
      --workdir=runs/greff_adding_T100
  python -m experiments.sweep --status --workdir=runs/greff_adding_T100
  python -m experiments.sweep --snapshot=docs/in_progress/greff_adding_T100 \
      --workdir=runs/greff_adding_T100

Backends (``--backend``): ``local`` (default; ``--workers`` processes, each pinned to its
share of the cores), ``ray`` (``--ray_address=auto|HOST:PORT``, or a local Ray started for
the sweep), ``slurm`` (submitit; ``--slurm_partition``, ``--slurm_time``, ...). Every
backend runs the same cell function and writes the same records. One ``--workdir`` holds
the whole study; any number of sweeps may share it (a per-cell lock keeps two from
training one cell), finished cells are never retrained, and running the same command
again resumes and retries. A study file that appends values to an axis (a new variant
or task) may extend the study already in ``--workdir`` with ``--grow``: only the new
cells train. Exit status: 0 when every cell is done, 1 when a cell failed
(its last line is in ``--status``), 75 when a signal stopped the sweep (the cells
checkpointed).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from experiments.compare import loading
from experiments.run.model import Config
from experiments.shared import cli, watchdog
from experiments.shared.regularization import RATES
from experiments.sweep import backends, engine, grid, study

_PROGRAM = "experiments.sweep"
_FLAG_OF_AXIS = grid.FLAG_NAMES
_TYPES = {f.name: f.type for f in dataclasses.fields(Config)} | dict.fromkeys(RATES, "float")

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "study", None, "A study file (experiments/studies/NAME.py with get_config()).",
    lock_config=True,
)  # fmt: skip
for _axis in grid.AXES:
    flags.DEFINE_list(
        _FLAG_OF_AXIS[_axis],
        None,
        f"Grid values of experiments.run's --{_axis} (comma-separated; default: its default).",
    )
for _axis, _flag in _FLAG_OF_AXIS.items():
    if _axis != _flag:
        flags.DEFINE_alias(_axis, _flag)  # --length, --variant, --learning_rate work too
flags.DEFINE_integer("seeds", 5, "Evaluation seeds per cell (first_seed and up).", lower_bound=1)
flags.DEFINE_integer("first_seed", 0, "First evaluation seed.", lower_bound=0)
flags.DEFINE_string(
    "tune", None, "A grid setting to tune per variant on the tuning seeds (e.g. learning_rate)."
)
flags.DEFINE_integer("tuning_seeds", 3, "Tuning seeds per tuning cell.", lower_bound=1)
flags.DEFINE_integer("first_tuning_seed", 1000, "First tuning seed.", lower_bound=0)
flags.DEFINE_integer(
    "seeds_per_cell", None,
    "Untuned studies: train each combination as cells of at most this many seeds (e.g. to "
    "fit a job's time limit); default: all its seeds in one cell.",
    lower_bound=1,
)  # fmt: skip
flags.DEFINE_string("name", "", "The study's name (a flag-given grid has none by default).")
flags.DEFINE_string("reference", None, "The variant the comparison tests against.")
flags.DEFINE_string("workdir", None, "The study directory.")
flags.DEFINE_bool("status", False, "Print the cells of --workdir by state and exit.")
flags.DEFINE_bool(
    "grow",
    False,
    "Let the study extend the one in --workdir by values appended to its grid axes (new "
    "variants, tasks, lengths; not the tuned axis or the seeds): only new cells are added, "
    "and every finished cell keeps its records.",
)
flags.DEFINE_string(
    "snapshot", None,
    "Copy --workdir's spec, picks, cells and valid records (no checkpoints or logs) to this "
    "directory and exit; a sweep goes on from the copy when given it as --workdir.",
)  # fmt: skip
flags.DEFINE_enum("backend", "local", list(backends.BACKENDS), "Where the cells run.")
flags.DEFINE_integer(
    "workers", len(backends.available_cores()), "Cells at a time (local, and a local Ray).",
    lower_bound=1,
)  # fmt: skip
flags.DEFINE_integer(
    "threads", 1, "Cores per cell on ray and slurm (local: the cores shared by --workers).",
    lower_bound=1,
)  # fmt: skip
flags.DEFINE_string("ray_address", None, "A running Ray cluster (auto or HOST:PORT).")
flags.DEFINE_string("slurm_partition", None, "Slurm partition of the cells' jobs.")
flags.DEFINE_integer("slurm_time", 24 * 60, "Slurm time limit per cell, minutes.", lower_bound=1)
flags.DEFINE_float("slurm_mem_gb", None, "Slurm memory per cell, GB.")
flags.DEFINE_enum(
    "submitit_cluster", "slurm", ["slurm", "local"],
    "slurm: submit to Slurm; local: submitit's local executor (jobs on this machine).",
)  # fmt: skip
flags.DEFINE_integer("retries", 1, "Attempts after a cell fails, per sweep.", lower_bound=0)
flags.DEFINE_bool("compare", True, "Print and write the study's comparison when it is done.")
cli.define_stall_timeout()
flags.mark_flag_as_required("workdir")


def _grid_from_flags() -> dict:
    grid_values = {}
    for axis in grid.AXES:
        values = FLAGS[_FLAG_OF_AXIS[axis]].value
        if values is None:
            continue
        kind = {"int": int, "float": float}.get(str(_TYPES[axis]), str)
        try:
            grid_values[axis] = [kind(value) for value in values]
        except ValueError:
            raise grid.GridError(
                f"--{_FLAG_OF_AXIS[axis]} takes {kind.__name__} values; got {values}."
            ) from None
    return grid_values


def _study_fields() -> dict:
    """The study file's fields; a file that is missing, fails or has no get_config is one line."""
    path = FLAGS["study"].config_filename
    try:
        return FLAGS.study.to_dict()
    except OSError:
        raise grid.GridError(f"--study={path}: no such study file.") from None
    except AttributeError as error:
        if "get_config" in str(error):
            raise grid.GridError(f"--study={path} has no get_config() function.") from None
        raise grid.GridError(f"--study={path} could not be loaded ({error}).") from None
    except Exception as error:  # the study file's own code failed
        message = " ".join(str(error).split())
        raise grid.GridError(
            f"--study={path} could not be loaded ({type(error).__name__}: {message})."
        ) from None


def spec_from_flags() -> dict:
    """The study's spec from ``--study`` or from the grid flags (not both)."""
    given = [_FLAG_OF_AXIS[a] for a in grid.AXES if FLAGS[_FLAG_OF_AXIS[a]].present]
    if FLAGS.study is not None:
        if given:
            raise grid.GridError(
                f"give the grid by --study or by flags, not both (got --{', --'.join(given)}); "
                "override a study's field with --study.FIELD=value."
            )
        return grid.spec_from_study_file(_study_fields())
    return grid.normalise_spec(
        {
            "name": FLAGS.name,
            "reference": FLAGS.reference,
            "grid": _grid_from_flags(),
            "seeds": FLAGS.seeds,
            "first_seed": FLAGS.first_seed,
            "tune": FLAGS.tune,
            "tuning_seeds": FLAGS.tuning_seeds,
            "first_tuning_seed": FLAGS.first_tuning_seed,
            "seeds_per_cell": FLAGS.seeds_per_cell,
        }
    )


def make_backend():
    """The backend the flags name; raises BackendUnavailableError with one line."""
    if FLAGS.backend == "local":
        return backends.LocalBackend(FLAGS.workers, FLAGS.stall_timeout)
    if FLAGS.backend == "ray":
        return backends.RayBackend(
            FLAGS.ray_address, FLAGS.workers, FLAGS.threads, FLAGS.stall_timeout
        )
    return backends.SlurmBackend(
        Path(FLAGS.workdir) / "submitit",
        FLAGS.threads,
        FLAGS.stall_timeout,
        cluster=FLAGS.submitit_cluster,
        partition=FLAGS.slurm_partition,
        time_minutes=FLAGS.slurm_time,
        memory_gb=FLAGS.slurm_mem_gb,
    )


def _print_status(workdir: str) -> None:
    rows, summary = engine.status_rows(workdir)
    width = max((len(row[1]) for row in rows), default=10)
    for state, cell_id, seeds, message in rows:
        print(f"{state:<8} {cell_id:<{width}} {seeds:>7}  {message}".rstrip())
    print(summary)


def _compare(workdir: str, reference: str) -> None:
    # Imported here: SciPy and matplotlib take 0.9 s to import, which every start of a
    # sweep's cells (run with --summarize=false) and every refused run would pay.
    from experiments.compare import report as compare

    records, problems = compare.load_records(workdir)
    if not records:
        return
    labels = {loading.label(record) for record in records}
    reference = reference if reference in labels else sorted(labels)[0]
    try:
        tables, written = compare.write_summary(records, problems, workdir, reference=reference)
    except ValueError as error:
        print(f"warning: no comparison written: {error}", file=sys.stderr)
        return
    print(tables)
    print(f"wrote {', '.join(str(path) for path in written)}")


def _parse_flags(argv: list[str]) -> list[str]:
    """Parses the flags; a bad flag or study file exits with one line, no traceback.

    A study file is loaded while its flag is parsed, so its own errors (no
    ``get_config``, an override of a field it lacks) surface here.
    """
    try:
        return FLAGS(argv)
    except flags.Error as error:
        message = " ".join(str(error).split())
    except AttributeError as error:
        if "get_config" in str(error):
            message = "the --study file has no get_config() function"
        else:
            message = (
                f"a --study.FIELD override names a field the study file lacks ({error}); "
                "overrides change fields the file defines"
            )
    except Exception as error:  # the study file's own code failed
        message = f"the --study file could not be loaded ({type(error).__name__}: {error})"
    print(f"{_PROGRAM}: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)


def main(argv):
    cli.start(_PROGRAM, argv)
    workdir = FLAGS.workdir
    if FLAGS.status:
        try:
            _print_status(workdir)
        except ValueError as error:
            sys.exit(f"{_PROGRAM}: error: {error}")
        return
    if FLAGS.snapshot:
        try:
            cli.writable_directory("snapshot", FLAGS.snapshot)
            cells, copied = study.snapshot(workdir, FLAGS.snapshot)
        except ValueError as error:
            sys.exit(f"{_PROGRAM}: error: {error}")
        print(f"copied {cells} cells and {copied} records from {workdir} to {FLAGS.snapshot}")
        return
    try:
        spec = spec_from_flags()
        cells = grid.expand(spec)
        cli.writable_directory("workdir", workdir)
        backend = make_backend()
    except (grid.GridError, ValueError, backends.BackendUnavailableError) as error:
        sys.exit(f"{_PROGRAM}: error: {error}")
    try:
        added = study.open_study(workdir, spec, grow=FLAGS.grow)
        if added:
            print(f"study {spec['name'] or workdir} grew: {', '.join(added)}", flush=True)
        tuned = f", tuning {spec['tune']} first" if spec["tune"] else ""
        print(
            f"study {spec['name'] or workdir}: {len(cells)} cells{tuned}, backend "
            f"{backend.name}, {getattr(backend, 'capacity', None) or 'cluster-sized'} at a time",
            flush=True,
        )
        with watchdog.supervise(0, program=_PROGRAM) as supervisor:
            outcome = engine.run_study(
                workdir,
                spec,
                backend,
                stop_requested=lambda: supervisor.signal is not None,
                retries=FLAGS.retries,
                log=lambda line: print(line, flush=True),
            )
    except study.StudyMismatchError as error:
        sys.exit(f"{_PROGRAM}: error: {error}")
    finally:
        backend.close()
    print(
        f"{len(outcome.done)} cells done, {len(outcome.failed)} failed, "
        f"{len(outcome.elsewhere)} being trained by another process, "
        f"{len(outcome.waiting)} tuning groups not finished"
    )
    if outcome.stopped:
        sys.exit(watchdog.EXIT_PREEMPTED)
    if outcome.failed:
        sys.exit(
            f"{_PROGRAM}: error: {len(outcome.failed)} cell(s) failed: "
            f"{', '.join(outcome.failed)}; see --status, fix, and run the same command again."
        )
    if FLAGS.compare and not outcome.elsewhere and not outcome.waiting:
        _compare(workdir, spec["reference"])


def console() -> None:
    """The ``lstmx-sweep`` command (``pip install`` puts it on the PATH)."""
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    console()
