"""Lag-window forecasting: RNN variants against last-value and linear AR baselines.

Predicts the next --horizon values from the last --lag on a synthetic series and prints a
table of test MSE (original units) per model. Examples:

  python -m experiments.forecast
  python -m experiments.forecast --series=sines --variants=lstm,gru,rnn,cifg --steps=3000

Writes forecast.csv, forecast.json and forecast.png (forecasts against the truth on the
start of the test series) to --workdir (default runs/forecast/SERIES), with one record per
variant in WORKDIR/records and its trained model in WORKDIR/checkpoints. Killed and
started again with the same flags, it resumes; finished variants are not trained again.
--output_dir is a deprecated alias of --workdir. The series, split, baselines and models
are described in experiments/forecast/model.py.

One run per workdir: a second command on a workdir in use exits at once with one line
naming the holder's PID and host (--wait_for_lock waits instead). On SIGTERM or SIGINT it
finishes the current chunk, writes a checkpoint, says where, and exits with status 75
(EX_TEMPFAIL); the same command resumes.
"""

import math
import os
import sys

from absl import app, flags

from experiments.forecast import model as forecast
from experiments.shared import cli as _common
from lstmx.cells import variant_names

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "series",
    "mackey_glass",
    list(forecast.SERIES),
    "sines: three sines plus Gaussian noise; mackey_glass: the chaotic delay equation (tau=17).",
)
flags.DEFINE_list(
    "variants",
    ["lstm", "gru", "rnn"],
    f"Comma-separated variants to train; any of: {', '.join(variant_names())}.",
)
flags.DEFINE_integer("lag", 30, "n: past values the models read.", lower_bound=1)
flags.DEFINE_integer("horizon", 10, "m: future values the models predict.", lower_bound=1)
flags.DEFINE_integer("length", 3000, "Samples in the series.", lower_bound=1)
flags.DEFINE_float("test_fraction", 0.2, "Last share of the series used for testing, in (0, 1).")
flags.DEFINE_integer("steps", 2000, "Training steps per variant.", lower_bound=1)
flags.DEFINE_integer("batch_size", 64, "Windows per training step.", lower_bound=1)
flags.DEFINE_integer("hidden_size", 32, "Units of each cell.", lower_bound=1)
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate (> 0).")
flags.DEFINE_float("noise_std", 0.1, "Noise standard deviation of --series=sines (>= 0).")
flags.DEFINE_integer("seed", 0, "Seed of the sines series and of training.", lower_bound=0)
flags.DEFINE_integer("plot_length", 200, "Test steps drawn in forecast.png.", lower_bound=1)
_common.define_workdir("Where outputs, records and checkpoints go (default: runs/forecast/SERIES).")
_common.define_wait_for_lock()
_common.define_stall_timeout()

_common.require_variant_names("variants")
flags.register_validator(
    "learning_rate",
    lambda value: math.isfinite(value) and value > 0,
    message="--learning_rate must be > 0.",
)
flags.register_validator(
    "noise_std",
    lambda value: math.isfinite(value) and value >= 0,
    message="--noise_std must be >= 0.",
)
flags.register_validator(
    "test_fraction",
    lambda value: 0.0 < value < 1.0,
    message="--test_fraction must lie in (0, 1).",
)


def main(argv):
    name = "experiments.forecast"
    _common.start(name, argv)
    workdir = _common.workdir_from_flags(name, os.path.join("runs", "forecast", FLAGS.series))
    try:
        config = forecast.Config(
            series=FLAGS.series,
            variants=tuple(dict.fromkeys(FLAGS.variants)),
            length=FLAGS.length,
            lag=FLAGS.lag,
            horizon=FLAGS.horizon,
            test_fraction=FLAGS.test_fraction,
            steps=FLAGS.steps,
            batch_size=FLAGS.batch_size,
            hidden_size=FLAGS.hidden_size,
            learning_rate=FLAGS.learning_rate,
            noise_std=FLAGS.noise_std,
            seed=FLAGS.seed,
            plot_length=FLAGS.plot_length,
        )
        _common.writable_directory("output_dir" if FLAGS.output_dir else "workdir", workdir)
    except (ValueError, TypeError, OSError) as error:
        sys.exit(f"{name}: error: {error}")
    try:
        with _common.supervised(name, workdir, wait=FLAGS.wait_for_lock):
            _run(config, workdir)
    except OSError as error:  # the outputs: each written atomically, so the old ones stay
        sys.exit(f"{name}: error: could not write the outputs ({error}).")


def _run(config: forecast.Config, workdir: str) -> None:
    """Trains (or resumes), prints the table and writes the outputs."""
    result = forecast.run_forecast(config, workdir)
    print(
        f"\n{config.series}: predict {config.horizon} values from {config.lag}; test MSE in "
        f"original units over {len(result['test_targets'])} test windows (NMSE = MSE / "
        f"variance of the test targets, {result['test_variance']:.4g})\n"
    )
    print(forecast.format_table(result))
    written = forecast.write_outputs(result, workdir)
    print(f"\nwrote {', '.join(str(path) for path in written)}")


def console() -> None:
    """The ``lstmx-forecast`` command (``pip install`` puts it on the PATH)."""
    app.run(main)


if __name__ == "__main__":
    console()
