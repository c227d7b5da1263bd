r"""Trains recurrent variants on a long-dependency task over several seeds.

With no flags it runs the README's short default comparison (adding problem, five
variants, three seeds) and prints its table. Examples:

  python -m experiments.run
  python -m experiments.run --task=copy --length=100 --variants=lstm,gru,rnn \
      --seeds=5 --steps=20000 --workdir=runs/copy100
  python -m experiments.run --variants=lstm --zoneout_h=0.1 --recurrent_dropout=0.1

Regularisers (--zoneout_h, --zoneout_c, --input_dropout, --recurrent_dropout,
--candidate_dropout) act while
training only; evaluation runs the expectation. A regularised run is filed and compared
under a label that names them, e.g. lstm+zoneout_h0.1+recdrop0.1, so it can share a
workdir with the plain one.

Records go to WORKDIR/records, checkpoints to WORKDIR/checkpoints. Killed and started
again with the same flags, it skips finished runs and resumes unfinished ones.

One run per workdir: a second command on a workdir in use exits at once with one line
naming the holder's PID and host (--wait_for_lock waits instead). On SIGTERM or SIGINT
(Ctrl-C) it finishes the current chunk, writes a checkpoint, says where, and exits with
status 75 (EX_TEMPFAIL); the same command resumes from that step. A disk that is full or
refuses a write ends it with one line; what it wrote before stays intact.

Devices: the seeds are spread over every local device (GPUs, TPU cores) with no flag;
use a number of seeds that is a multiple of the device count (``experiments.shared.training``).
On CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` simulates N devices.

Several hosts: start the same command on every host with ``--distributed``, which calls
``jax.distributed.initialize()``. On Cloud TPU, SLURM (``srun``), Open MPI (``mpirun``)
and Kubernetes (JobSet) the cluster is detected from the environment; elsewhere give
``--coordinator_address=HOST:PORT`` (or set ``JAX_COORDINATOR_ADDRESS``),
``--num_processes`` and ``--process_id`` on each. Process 0 alone writes records,
checkpoints and the summary and prints progress; the workdir must be a filesystem every
process sees (resuming reads it on every process). For example, two processes::

  python -m experiments.run --distributed --coordinator_address=host0:1234 \
      --num_processes=2 --process_id=0 --seeds=8 --workdir=/shared/runs/a   # on host0
  python -m experiments.run --distributed --coordinator_address=host0:1234 \
      --num_processes=2 --process_id=1 --seeds=8 --workdir=/shared/runs/a   # on host1
"""

import sys

import jax
from absl import app, flags

from experiments.compare import loading
from experiments.run import loop as experiment
from experiments.run import model
from experiments.shared import cli as _common
from experiments.shared import progress, regularization
from lstmx.cells import variant_names

FLAGS = flags.FLAGS
flags.DEFINE_enum(
    "task",
    "adding",
    list(model.TASKS),
    "Task to train on: copy and adding (long dependencies) or the state-tracking tasks of "
    "Delétang et al. 2023 (parity, modular_arithmetic, cycle_navigation, even_pairs).",
)
flags.DEFINE_list(
    "variants",
    ["lstm", "peephole", "cifg", "gru", "rnn"],
    f"Comma-separated variants to compare; any of: {', '.join(variant_names())}.",
)
flags.DEFINE_integer("seeds", 3, "Number of seeds (seeds 0..N-1, trained together).", lower_bound=1)
flags.DEFINE_integer(
    "first_seed", 0, "First seed; seeds are first_seed..first_seed+N-1.", lower_bound=0
)
flags.DEFINE_integer(
    "steps",
    None,
    "Training steps (default: 1000 for adding, 2000 for copy and state tracking).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "length",
    None,
    "Copy task delay T (sequences are T+20 long), adding sequence length T, or the longest "
    "training string of a state-tracking task (--train_max_length; lengths uniform from 1) "
    "(default: 50 for adding, 100 for copy, 40 for state tracking).",
    lower_bound=1,
)
flags.DEFINE_alias("train_max_length", "length")
flags.DEFINE_string(
    "test_lengths",
    "41-500",
    "State tracking: the test lengths after training, A-B, A-B:S (every S-th, and B) or N; "
    "all above the training length (Delétang et al.: 41-500).",
)
flags.DEFINE_integer(
    "test_batch_size", 128, "State tracking: test strings per length and seed.", lower_bound=1
)
flags.DEFINE_integer(
    "modulus",
    5,
    "State tracking: modular_arithmetic's modulus and cycle_navigation's cycle length.",
    lower_bound=2,
)
flags.DEFINE_integer(
    "batch_size",
    None,
    "Batch size per seed (default: 50 for adding, 20 for copy, 128 for state tracking).",
    lower_bound=1,
)
flags.DEFINE_integer("hidden_size", 128, "Units per layer.", lower_bound=1)
flags.DEFINE_integer("num_layers", 1, "Stacked layers.", lower_bound=1)
flags.DEFINE_enum("optimizer", "rmsprop", list(model.OPTIMIZERS), "Optimiser (rmsprop: decay 0.9).")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate (> 0).")
flags.DEFINE_float("clip", 1.0, "Gradient clipping threshold (> 0).")
flags.DEFINE_enum(
    "clip_mode",
    "value",
    list(model.CLIP_MODES),
    "value: clip each gradient element to [-clip, clip] (Arjovsky et al. 2016); "
    "global_norm: rescale to global norm clip; none: no clipping.",
)
flags.DEFINE_enum(
    "init",
    "default",
    list(model.INITS),
    "Initialisation; chrono: Tallec & Ollivier 2018's gate biases with t_max = 3T/2 (copy) "
    "or T (adding); the rnn has no gates and keeps its default. li: Li et al. 2018's "
    "adding-problem init of the indrnn (w_x ~ N(0, 0.001^2); last layer's u ~ "
    "U[2^(-1/T), 2^(1/T)]), indrnn only.",
)
regularization.define_flags()
flags.adopt_module_key_flags(regularization)  # listed by --helpshort
flags.DEFINE_integer(
    "eval_every", 100, "Steps between evaluations on held-out batches.", lower_bound=1
)
flags.DEFINE_integer(
    "eval_batch_size", 500, "Held-out examples per seed per evaluation.", lower_bound=1
)
flags.DEFINE_integer("checkpoint_every", 1, "Evaluations between checkpoints.", lower_bound=1)
flags.DEFINE_string(
    "workdir", "runs/default", "Directory for records, checkpoints and the summary."
)
flags.DEFINE_bool(
    "tensorboard",
    True,
    "Write every evaluation for TensorBoard to WORKDIR/tensorboard (one run per variant, "
    "one series per seed): tensorboard --logdir=WORKDIR/tensorboard.",
)
flags.DEFINE_bool(
    "summarize",
    True,
    "Print and write the comparison of every record in --workdir at the end (the sweep "
    "turns it off for its cells and compares the whole study instead).",
)
_common.define_wait_for_lock()
_common.define_stall_timeout()
flags.DEFINE_bool(
    "distributed",
    False,
    "Call jax.distributed.initialize() first: one process of a multi-host run. The cluster "
    "is detected (Cloud TPU, SLURM, Open MPI, Kubernetes) unless the three flags below say "
    "it. Only process 0 writes; the workdir must be shared by all processes.",
)
flags.DEFINE_string(
    "coordinator_address",
    None,
    "With --distributed: HOST:PORT of process 0 (default: detected, or $JAX_COORDINATOR_ADDRESS).",
)
flags.DEFINE_integer(
    "num_processes",
    None,
    "With --distributed: number of processes (default: detected).",
    lower_bound=1,
)
flags.DEFINE_integer(
    "process_id",
    None,
    "With --distributed: this process's id in 0..num_processes-1 (default: detected).",
    lower_bound=0,
)

_common.require_variant_names("variants")
flags.register_validator(
    "learning_rate", lambda value: value > 0, message="--learning_rate must be > 0."
)
flags.register_validator("clip", lambda value: value > 0, message="--clip must be > 0.")
_common.require_directory_path("workdir")
flags.register_multi_flags_validator(
    ["distributed", "coordinator_address", "num_processes", "process_id"],
    lambda values: (
        values["distributed"]
        or all(
            values[name] is None for name in ("coordinator_address", "num_processes", "process_id")
        )
    ),
    message="--coordinator_address, --num_processes and --process_id need --distributed.",
)
flags.register_multi_flags_validator(
    ["num_processes", "process_id"],
    lambda values: None in values.values() or values["process_id"] < values["num_processes"],
    message="--process_id must be less than --num_processes.",
)


def _start_distributed() -> None:
    """jax.distributed.initialize() with the flags given; exits with one line on failure."""
    try:
        jax.distributed.initialize(
            coordinator_address=FLAGS.coordinator_address,
            num_processes=FLAGS.num_processes,
            process_id=FLAGS.process_id,
        )
    except (RuntimeError, ValueError, TypeError) as error:
        message = " ".join(str(error).split())
        sys.exit(
            f"experiments.run: error: --distributed could not start jax.distributed ({message}); "
            "outside a detected cluster give --coordinator_address, --num_processes and "
            "--process_id."
        )


def configs_from_flags() -> list[model.Config]:
    """One Config per variant; raises ValueError/TypeError for impossible combinations."""
    defaults = model.TASK_DEFAULTS[FLAGS.task]

    def pick(name):
        value = getattr(FLAGS, name)
        return defaults[name] if value is None else value

    seeds = tuple(range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds))
    return [
        model.Config(
            task=FLAGS.task,
            variant=name,
            length=pick("length"),
            steps=pick("steps"),
            batch_size=pick("batch_size"),
            hidden_size=FLAGS.hidden_size,
            num_layers=FLAGS.num_layers,
            optimizer=FLAGS.optimizer,
            learning_rate=FLAGS.learning_rate,
            clip=FLAGS.clip,
            clip_mode=FLAGS.clip_mode,
            init=FLAGS.init,
            eval_every=FLAGS.eval_every,
            eval_batch_size=FLAGS.eval_batch_size,
            seeds=seeds,
            rates=regularization.rates_from_flags(FLAGS),
            **(
                {
                    "test_lengths": FLAGS.test_lengths,
                    "test_batch_size": FLAGS.test_batch_size,
                    "modulus": FLAGS.modulus,
                }
                if FLAGS.task in model.STATE_TRACKING_TASKS
                else {}
            ),
        )
        for name in dict.fromkeys(FLAGS.variants)
    ]


def main(argv):
    _common.start("experiments.run", argv)
    try:
        configs = configs_from_flags()  # before JAX starts a backend: bad values fail fast
    except (ValueError, TypeError) as error:
        sys.exit(f"experiments.run: error: {error}")
    if FLAGS.distributed:
        _start_distributed()
    try:
        _common.writable_directory("workdir", FLAGS.workdir)
    except ValueError as error:
        sys.exit(f"experiments.run: error: {error}")
    writer = jax.process_index() == 0  # of several processes, only the first writes and prints

    try:
        # A live bar on a terminal, plain lines otherwise; only the writing process prints.
        with progress.display(live=writer and sys.stdout.isatty()) as shown:
            log = shown.log if writer else (lambda line: None)
            with _common.supervised(
                "experiments.run", FLAGS.workdir, wait=FLAGS.wait_for_lock, log=log, lock=writer
            ) as supervisor:
                for k, config in enumerate(configs, start=1):
                    if k > 1:
                        supervisor.reached(f"between variants, before {config.label}")
                    experiment.run_variant(
                        config,
                        FLAGS.workdir,
                        checkpoint_every=FLAGS.checkpoint_every,
                        log=log,
                        tensorboard=FLAGS.tensorboard,
                        position=(k, len(configs)),
                        advance=shown.advance,
                    )
                if writer and FLAGS.summarize:
                    supervisor.reached("writing the summary")
                    _summarise(configs[0].label)
    except OSError as error:  # the summary: written atomically, so the old one stays
        sys.exit(f"experiments.run: error: could not write the summary ({error}).")


def _summarise(first_label: str) -> None:
    """Prints and writes the comparison of every record in the workdir.

    The reference row is ``lstm`` when the workdir has it, else this run's first label
    (e.g. ``lstm+zoneout0.1`` when every variant was regularised).
    """
    # Imported here: SciPy and matplotlib take 0.9 s to import, which every start of a
    # sweep's cells (run with --summarize=false) and every refused run would pay.
    from experiments.compare import report as compare

    records, problems = compare.load_records(FLAGS.workdir)
    for problem in problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    labels = {loading.label(record) for record in records}
    reference = loading.REFERENCE_VARIANT if loading.REFERENCE_VARIANT in labels else first_label
    try:
        tables, written = compare.write_summary(
            records, problems, FLAGS.workdir, reference=reference
        )
    except ValueError as error:  # the reference's label holds several settings
        print(f"warning: no summary written: {error}", file=sys.stderr)
        return
    print(tables)
    print(f"wrote {', '.join(str(path) for path in written)}")


def console() -> None:
    """The ``lstmx-run`` command (``pip install`` puts it on the PATH)."""
    app.run(main)


if __name__ == "__main__":
    console()
