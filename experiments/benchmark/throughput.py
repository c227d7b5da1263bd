r"""The sweep's local pool against the same cells one after another in one process.

The grid: adding T = 100, hidden 64, batch 50, 5 seeds, 300 steps; lstm, gru, cifg and the
tanh RNN at learning rates 1e-3 and 3e-3 (8 cells). Each repetition runs it both ways on
fresh workdirs, interleaved (one process, then the pool, then again):

* **one process**: every cell through ``experiments.run``'s loop
  (:func:`experiments.run.loop.run_variant`) one after another, in one Python process with
  all the cores, as ``experiments.run --variants=...`` trains today;
* **pool**: ``python -m experiments.sweep`` with ``--workers`` processes (default: the
  cores), each pinned to its share.

Prints the wall time of each and the ratio pool / one process (lower is better), with the
CPU; writes them to ``--output`` (JSON)::

  python -m experiments.benchmark.throughput --repetitions=2 --output=docs/throughput_cpu.json
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from absl import app, flags

from experiments.sweep import backends

ROOT = Path(__file__).resolve().parents[2]
GRID = {
    "task": "adding",
    "length": 100,
    "hidden_size": 64,
    "batch_size": 50,
    "steps": 300,
    "variants": ("lstm", "gru", "cifg", "rnn"),
    "learning_rates": (1e-3, 3e-3),
    "seeds": 5,
}

_ONE_PROCESS = """
import sys
from experiments.run import loop, model
g = {grid!r}
for lr in g["learning_rates"]:
    for variant in g["variants"]:
        config = model.Config(task=g["task"], variant=variant, length=g["length"],
                              hidden_size=g["hidden_size"], batch_size=g["batch_size"],
                              steps=g["steps"], learning_rate=lr,
                              seeds=tuple(range(g["seeds"])))
        loop.run_variant(config, sys.argv[1] + f"/lr{{lr:g}}", log=lambda line: None)
"""

_REPETITIONS = flags.DEFINE_integer("repetitions", 2, "Runs of each way.", lower_bound=1)
_WORKERS = flags.DEFINE_integer(
    "workers", len(backends.available_cores()), "The pool's processes.", lower_bound=1
)
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON of the measurements.")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - started


def one_process(workdir: str) -> float:
    """Seconds for the 8 cells one after another in one process."""
    return _timed([sys.executable, "-c", _ONE_PROCESS.format(grid=GRID), workdir])


def pool(workdir: str, workers: int) -> float:
    """Seconds for the 8 cells through the sweep's local pool."""
    return _timed(
        [
            sys.executable, "-m", "experiments.sweep", f"--task={GRID['task']}",
            f"--lengths={GRID['length']}", f"--hidden_size={GRID['hidden_size']}",
            f"--batch_size={GRID['batch_size']}", f"--steps={GRID['steps']}",
            f"--variants={','.join(GRID['variants'])}",
            f"--learning_rates={','.join(map(str, GRID['learning_rates']))}",
            f"--seeds={GRID['seeds']}", f"--workers={workers}", "--nocompare",
            f"--workdir={workdir}",
        ]
    )  # fmt: skip


def main(argv):
    if len(argv) > 1:
        sys.exit(f"experiments.benchmark.throughput: error: unexpected arguments {argv[1:]}")
    times = {"one_process": [], "pool": []}
    for repetition in range(_REPETITIONS.value):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            times["one_process"].append(one_process(a))
            times["pool"].append(pool(b, _WORKERS.value))
        print(
            f"repetition {repetition + 1}: one process {times['one_process'][-1]:.1f} s, "
            f"pool of {_WORKERS.value} {times['pool'][-1]:.1f} s",
            flush=True,
        )
    medians = {way: statistics.median(seconds) for way, seconds in times.items()}
    ratio = medians["pool"] / medians["one_process"]
    result = {
        "grid": GRID,
        "workers": _WORKERS.value,
        "cores": len(backends.available_cores()),
        "cpu": _cpu(),
        "seconds": times,
        "median_seconds": medians,
        "pool_over_one_process": ratio,
        "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    print(
        f"8 cells on {result['cores']} cores ({result['cpu']}): one process "
        f"{medians['one_process']:.1f} s, pool of {_WORKERS.value} {medians['pool']:.1f} s; "
        f"pool / one process = {ratio:.2f} (goal <= {1 / 1.6:.3f})"
    )
    if _OUTPUT.value:
        Path(_OUTPUT.value).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    app.run(main)
