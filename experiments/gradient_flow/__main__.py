"""Gradient flow through time: the vanishing gradient, made visible, per variant.

For each variant, measures ||dh_T/dh_t|| and ||dh_T/dx_t|| against the time lag T - t on
adding-problem sequences (:func:`lstmx.diagnostics.gradient_norms`, averaged over
--batch_size sequences), with the gate statistics, at initialisation and, with
--train_steps > 0, again after training on the adding problem of the same length
(:mod:`experiments.run.model` defaults: RMSProp 1e-3, batch 50, value clipping
at 1). Examples:

  python -m experiments.gradient_flow --workdir=runs/gradient_flow
  python -m experiments.gradient_flow --variants=rnn,lstm,gru --length=200 --train_steps=500

Writes WORKDIR/gradient_flow.csv (variant, stage, train_steps, lag, norm_wrt_input,
norm_wrt_state), gradient_flow.png and gate_statistics.csv, and prints a summary.
"""

import os
import sys

import jax
from absl import app, flags

from experiments.gradient_flow import report
from experiments.run import model as task_model
from experiments.shared import cli as _common
from experiments.shared import resume, training
from lstmx import diagnostics, tasks
from lstmx.cells import variant_names

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "variants",
    ["rnn", "lstm", "gru"],
    f"Comma-separated variants; any of: {', '.join(variant_names())}.",
)
flags.DEFINE_integer("length", 100, "Sequence length T of the adding problem.", lower_bound=2)
flags.DEFINE_integer("hidden_size", 128, "Units of the cell.", lower_bound=1)
flags.DEFINE_integer(
    "batch_size", 16, "Sequences the gradient norms are averaged over.", lower_bound=1
)
flags.DEFINE_integer(
    "train_steps", 0, "If > 0, also measure after this many adding-task steps.", lower_bound=0
)
flags.DEFINE_integer(
    "seed", 0, "Seed of the initialisation, training and sequences.", lower_bound=0
)
_common.define_workdir("Directory for the CSV files and plot (default: runs/gradient_flow).")

_common.require_variant_names("variants")


def measure(name: str, xs: jax.Array) -> list[report.FlowCurve]:
    """The variant's curves at initialisation and, with --train_steps, after training."""
    config = task_model.Config(
        task="adding",
        variant=name,
        length=FLAGS.length,
        steps=max(FLAGS.train_steps, 1),
        hidden_size=FLAGS.hidden_size,
        eval_every=max(FLAGS.train_steps, 1),
        seeds=(FLAGS.seed,),
    )
    cell = task_model.make_cell(config)
    trainer = task_model.make_trainer(config)
    state = trainer.init()

    def curve(state: training.TrainState, stage: str, steps: int) -> report.FlowCurve:
        params = jax.tree_util.tree_map(lambda leaf: leaf[0], state.params.cell)  # seed axis
        flow = diagnostics.gradient_norms(cell, params, xs)
        gates = diagnostics.gate_statistics(cell, params, xs)
        return report.FlowCurve(name, stage, steps, flow, gates)

    curves = [curve(state, "init", 0)]
    if FLAGS.train_steps > 0:
        state, _ = trainer.train(state, FLAGS.train_steps)
        loss = float(trainer.evaluate(state)["loss"][0])
        print(
            f"{name}: adding T={FLAGS.length}, {FLAGS.train_steps} steps, held-out MSE "
            f"{loss:.4f} (baseline {tasks.adding_baseline():.4f})"
        )
        curves.append(curve(state, "trained", FLAGS.train_steps))
    return curves


_common.define_wait_for_lock()


def main(argv):
    _common.start("experiments.gradient_flow", argv)
    workdir = _common.workdir_from_flags("experiments.gradient_flow", "runs/gradient_flow")
    try:
        _common.writable_directory("output_dir" if FLAGS.output_dir else "workdir", workdir)
    except (ValueError, OSError) as error:
        sys.exit(f"experiments.gradient_flow: error: {error}")
    try:
        with resume.lock_workdir(workdir, wait=FLAGS.wait_for_lock):
            _run(workdir)
    except (resume.WorkdirLockedError, resume.WriteError) as error:
        sys.exit(f"experiments.gradient_flow: error: {error}")


def _run(workdir: str) -> None:
    """Everything after the checks, under the workdir's lock."""
    data_key = jax.random.fold_in(jax.random.key(FLAGS.seed), 2**20)  # apart from training's
    xs, _ = tasks.adding_task(data_key, FLAGS.batch_size, FLAGS.length)
    curves = [curve for name in dict.fromkeys(FLAGS.variants) for curve in measure(name, xs)]
    csv_path = os.path.join(workdir, "gradient_flow.csv")
    gates_path = os.path.join(workdir, "gate_statistics.csv")
    png_path = os.path.join(workdir, "gradient_flow.png")
    report.write_flow_csv(curves, csv_path)
    report.write_gate_csv(curves, gates_path)
    title = (
        f"Gradient flow on the adding problem, T={FLAGS.length}, H={FLAGS.hidden_size}, "
        f"mean over {FLAGS.batch_size} sequences"
    )
    report.plot_flow(curves, png_path, title)
    print(report.format_flow_summary(curves))
    print(f"wrote {csv_path}, {gates_path}, {png_path}")


def console() -> None:
    """The ``lstmx-gradient-flow`` command (``pip install`` puts it on the PATH)."""
    app.run(main)


if __name__ == "__main__":
    console()
