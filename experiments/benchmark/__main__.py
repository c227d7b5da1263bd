r"""Times lstmx cells against Flax, Haiku and PyTorch: training step, inference, length sweep,
many seeds, long-sequence memory.

Everything runs in this one process, the contenders interleaved (see
experiments.benchmark.harness for the method, the FLOP formula and what "peak memory"
means). Haiku and PyTorch are optional (pip install -e '.[bench]'); a missing one is
skipped and the tables say so. Examples:

  python -m experiments.benchmark --workdir=bench_results
  python -m experiments.benchmark --shapes=128x100x10x128 --variants=lstm \
      --peers=flax,torch --repetitions=5 --mode=train --sweep_steps= --seed_counts= \
      --memory_steps=

Writes WORKDIR/benchmark.json and WORKDIR/benchmark.md and prints the Markdown.
"""

import sys

from absl import app, flags

from experiments.benchmark import harness as benchmarking
from experiments.shared import cli as _common
from experiments.shared import resume
from lstmx.cells import variant_names


def _valid(parse, values) -> bool:
    try:
        for value in values:
            parse(value)
    except (ValueError, TypeError):
        return False
    return True


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


FLAGS = flags.FLAGS
flags.DEFINE_list(
    "shapes",
    [str(shape) for shape in benchmarking.DEFAULT_SHAPES],
    "Comma-separated shapes BxTxIxH (batch x time steps x inputs x hidden units).",
)
flags.DEFINE_list(
    "variants",
    ["lstm", "gru"],
    f"lstmx variants to time; any of: {', '.join(variant_names())}.",
)
flags.DEFINE_list(
    "peers",
    list(benchmarking.PEER_LIBRARIES),
    "Peer libraries to time against (any of flax, haiku, torch; empty for none). "
    "Those not installed are skipped with the reason.",
)
flags.DEFINE_integer("repetitions", 20, "Timed calls per contender.", lower_bound=1)
flags.DEFINE_integer("warmup", 3, "Untimed calls per contender after compiling.", lower_bound=0)
flags.DEFINE_list(
    "mode",
    list(benchmarking.MODES),
    "What to time: train (forward + backward), inference (forward only), or both.",
)
flags.DEFINE_list(
    "sweep_steps",
    [str(steps) for steps in benchmarking.DEFAULT_SWEEP_STEPS],
    "Sequence lengths T of the sweep (--sweep_variants vs flax LSTMCell and torch nn.LSTM, "
    "training); empty for no sweep.",
)
flags.DEFINE_list(
    "sweep_variants",
    list(benchmarking.DEFAULT_SWEEP_VARIANTS),
    "lstmx variants in the sweep (default: the LSTM and the parallel-scan minGRU, minLSTM).",
)
flags.DEFINE_integer(
    "sweep_repetitions", 5, "Timed calls per contender and T in the sweep.", lower_bound=1
)
flags.DEFINE_list(
    "seed_counts",
    [str(n) for n in benchmarking.DEFAULT_SEED_COUNTS],
    "Numbers of seeds S of the many-seeds section (vmapped vs one after another, lstmx "
    "and Flax); empty to skip it.",
)
flags.DEFINE_list(
    "memory_steps",
    [str(n) for n in benchmarking.DEFAULT_MEMORY_STEPS],
    "Sequence lengths T of the long-sequence memory section (remat vs none); empty to skip it.",
)
flags.DEFINE_string(
    "sweep_shape",
    str(benchmarking.DEFAULT_SWEEP_SHAPE),
    "BxIxH of the sequence-length sweep.",
)
flags.DEFINE_integer("seed", 0, "Seed of the weights and the input.", lower_bound=0)
_common.define_workdir(
    "Where benchmark.json and benchmark.md are written (default: bench_results)."
)

flags.register_validator(
    "shapes",
    lambda values: bool(values) and _valid(benchmarking.parse_shape, values),
    message="--shapes must be a non-empty list of BxTxIxH with positive integers, "
    "e.g. 128x100x10x128,32x100x128x512.",
)
_common.require_variant_names("variants")
flags.register_validator(
    "peers",
    lambda names: all(name in benchmarking.PEER_LIBRARIES for name in names),
    message=f"--peers must be a list of: {', '.join(benchmarking.PEER_LIBRARIES)}.",
)
flags.register_validator(
    "mode",
    lambda modes: bool(modes) and all(mode in benchmarking.MODES for mode in modes),
    message=f"--mode must be a non-empty list of: {', '.join(benchmarking.MODES)}.",
)
flags.register_validator(
    "sweep_steps",
    lambda values: _valid(_positive_int, values),
    message="--sweep_steps must be a list of positive integers, e.g. 100,400,1600.",
)
flags.register_validator(
    "sweep_variants",
    lambda names: all(name in variant_names() for name in names),
    message=f"--sweep_variants must be a list of: {', '.join(variant_names())}.",
)
for _name in ("seed_counts", "memory_steps"):
    flags.register_validator(
        _name,
        lambda values: _valid(_positive_int, values),
        message=f"--{_name} must be a list of positive integers, e.g. 1,5,20.",
    )
flags.register_validator(
    "sweep_shape",
    lambda value: _valid(benchmarking.parse_sweep_shape, [value]),
    message="--sweep_shape must be BxIxH with positive integers, e.g. 32x10x128.",
)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_common.define_wait_for_lock()


def main(argv):
    _common.start("experiments.benchmark", argv)
    workdir = _common.workdir_from_flags("experiments.benchmark", "bench_results")
    try:
        _common.writable_directory("output_dir" if FLAGS.output_dir else "workdir", workdir)
    except (ValueError, OSError) as error:
        sys.exit(f"experiments.benchmark: error: {error}")
    try:
        with resume.lock_workdir(workdir, wait=FLAGS.wait_for_lock):
            _run(workdir)
    except (resume.WorkdirLockedError, resume.WriteError) as error:
        sys.exit(f"experiments.benchmark: error: {error}")


def _run(workdir: str) -> None:
    """Everything after the checks, under the workdir's lock."""
    # Flags are validated above; an exception from here on is a bug and keeps its traceback.
    result = benchmarking.run_benchmark(
        shapes=[benchmarking.parse_shape(text) for text in FLAGS.shapes],
        variants=FLAGS.variants,
        peers=FLAGS.peers,
        repetitions=FLAGS.repetitions,
        warmup=FLAGS.warmup,
        modes=FLAGS.mode,
        sweep_steps=[int(text) for text in FLAGS.sweep_steps],
        sweep_shape=benchmarking.parse_sweep_shape(FLAGS.sweep_shape),
        sweep_variants=FLAGS.sweep_variants,
        sweep_repetitions=FLAGS.sweep_repetitions,
        seed_counts=[int(text) for text in FLAGS.seed_counts],
        memory_steps=[int(text) for text in FLAGS.memory_steps],
        seed=FLAGS.seed,
        log=_log,
    )
    try:
        written = benchmarking.write_results(result, workdir)
    except OSError as error:
        sys.exit(f"experiments.benchmark: error: cannot write results: {error}")
    print(benchmarking.to_markdown(result))
    print(f"wrote {', '.join(written)}")


def console() -> None:
    """The ``lstmx-benchmark`` command (``pip install`` puts it on the PATH)."""
    app.run(main)


if __name__ == "__main__":
    console()
