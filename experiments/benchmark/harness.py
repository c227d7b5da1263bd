r"""Speed and memory of lstmx cells against the libraries a user would pick instead.

This module times (:func:`time_interleaved`, :func:`run_benchmark`) and re-exports the
rest: the contenders, their FLOPs and memory are in :mod:`experiments.benchmark.contenders`,
the machine description and the Markdown/JSON output in :mod:`experiments.benchmark.output`.

A *contender* is one recurrent layer from one library, named ``library:cell``:

* ``lstmx:NAME`` for any of :func:`lstmx.variant_names`, run with :func:`lstmx.scan`;
* ``flax:LSTMCell``, ``flax:OptimizedLSTMCell``, ``flax:GRUCell``, ``flax:SimpleCell`` in
  ``flax.linen.RNN`` (always available: Flax is a dependency of lstmx);
* ``haiku:LSTM``, ``haiku:GRU``, ``haiku:VanillaRNN`` with ``hk.dynamic_unroll`` (Haiku's
  GRU resets before the recurrent product, Cho et al.'s form; same FLOPs);
* ``torch:LSTM``, ``torch:GRU``, ``torch:RNN`` (``batch_first=True``).

Haiku and PyTorch are optional (the ``bench`` extra); a missing one is skipped with its
reason. Each contender gives two steps on an input ``xs [B, T, I]`` (one fixed standard
normal array, the same for every contender):

* **train**: the loss ``mean(ys ** 2)`` over all outputs ``ys [B, T, H]`` and its gradient
  with respect to the parameters (not the input): ``jax.jit(jax.value_and_grad(loss))``;
  for PyTorch ``zero_grad(set_to_none=True)``, forward, ``backward()``. No optimiser update.
* **inference**: the forward pass alone, returning ``ys`` (``torch.no_grad()`` for torch).

**Timing.** Every step is compiled and run ``warmup`` times first. Then the repetitions are
interleaved: one call of each contender in turn, the starting contender rotating by one
each round (A B C, B C A, C A B, ...), so that slow drifts of a shared machine hit all
contenders alike and none always runs right after the same neighbour. Each call is timed
with ``time.perf_counter`` up to ``jax.block_until_ready`` on its outputs (PyTorch on CPU
returns when done). The garbage collector is off while timing. Reported: the median and
the interquartile range in milliseconds (the JSON keeps every time and the minimum), and
``ratio = lstmx median / peer median`` (below 1 means lstmx is faster). A median whose IQR
exceeds a quarter of it is marked † in the tables, and the 1-minute load average before
and after is recorded: on a small shared machine other work disturbs PyTorch's OpenMP
threads far more than XLA's thread pool (a busy core stalls every OpenMP barrier), so
quote numbers only from an idle machine.

**FLOPs.** Only the matrix products count; elementwise work is ignored::

    forward  = 2 · B · T · (I + H) · G · H      G = 4 (LSTM), 3 (GRU), 1 (Elman RNN)
    training ≈ 3 · forward                      (forward, then two products per weight)

For lstmx variants ``(I + H) · G · H`` is replaced by the number of entries in the
variant's weight matrices (so CIFG counts 3 gate blocks and FGR its ``[kH, kH]`` gate
recurrence). Achieved GFLOP/s = FLOPs / median time. The training figure is a convention:
with no input gradient the backward pass needs ``(I + 2H) · G · H`` multiply-adds per
example and time step against the forward's ``(I + H) · G · H``, a little under twice.

**Memory** (MiB, the step's own footprint, weights and input included):

* JAX: what XLA's buffer assignment allocates for the compiled step, from
  ``jax.jit(f).lower(...).compile().memory_analysis()``: arguments + outputs + temporaries
  − aliased. A plan, exact for XLA's own buffers, not a reading of the process's RSS.
* PyTorch: parameters + input + the peak of live bytes that the CPU allocator hands out
  during one step, from ``torch.profiler`` memory events. Scratch that MKL or oneDNN take
  with their own allocators is not seen. "n/a" where the profiler gives no events.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from experiments.benchmark.contenders import (
    DEFAULT_SHAPES,
    DEFAULT_SWEEP_SHAPE,
    DEFAULT_SWEEP_STEPS,
    DEFAULT_SWEEP_VARIANTS,
    GATE_BLOCKS,
    MODES,
    PEER_LIBRARIES,
    RATIO_COLUMNS,
    JaxModel,
    Prepared,
    Shape,
    Step,
    SweepShape,
    available_peers,
    contender_flops,
    contenders_for,
    display_name,
    family,
    forward_flops,
    jax_model,
    library_of,
    parse_shape,
    parse_sweep_shape,
    peers_of,
    prepare,
    train_flops,
)
from experiments.benchmark.memory import DEFAULT_MEMORY_STEPS, run_memory_benchmark
from experiments.benchmark.output import machine_info, to_markdown, write_results
from experiments.benchmark.seeds import DEFAULT_SEED_COUNTS, run_seeds_benchmark

__all__ = [
    "DEFAULT_SHAPES",
    "DEFAULT_SWEEP_SHAPE",
    "DEFAULT_SWEEP_STEPS",
    "DEFAULT_SWEEP_VARIANTS",
    "FORMAT",
    "GATE_BLOCKS",
    "MODES",
    "PEER_LIBRARIES",
    "RATIO_COLUMNS",
    "JaxModel",
    "Prepared",
    "Shape",
    "Step",
    "SweepShape",
    "available_peers",
    "contender_flops",
    "contenders_for",
    "display_name",
    "family",
    "forward_flops",
    "jax_model",
    "machine_info",
    "parse_shape",
    "parse_sweep_shape",
    "peers_of",
    "prepare",
    "run_benchmark",
    "time_interleaved",
    "to_markdown",
    "train_flops",
    "write_results",
]

FORMAT = "lstmx.benchmark/1"
_MIB = 2.0**20


# ----------------------------------------------------------------------------------- timing


def time_interleaved(
    runs: Mapping[str, Callable[[], Any]], repetitions: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Times callables round-robin, rotating the start each round; milliseconds per call.

    Args:
      runs: name -> a callable that returns when its work is done.
      repetitions: timed calls of each callable.
      warmup: untimed calls of each callable first.

    Returns:
      name -> the ``repetitions`` times in milliseconds, in call order.
    """
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for repetition in range(repetitions):
            shift = repetition % len(names) if names else 0
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                runs[name]()
                times[name].append((time.perf_counter() - start) * 1e3)
    finally:
        if was_enabled:
            gc.enable()
    return times


def _summary(times_ms: Sequence[float]) -> dict[str, float]:
    q25, median, q75 = np.percentile(np.asarray(times_ms), [25, 50, 75])
    return {
        "median_ms": float(median),
        "iqr_ms": float(q75 - q25),
        "q25_ms": float(q25),
        "q75_ms": float(q75),
        "min_ms": float(np.min(times_ms)),
    }


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _rows_for_group(
    prepared: Sequence[Prepared], mode: str, times: Mapping[str, list[float]], extra: dict
) -> list[dict]:
    rows = []
    for item in prepared:
        step = item.steps[mode]
        stats = _summary(times[item.contender])
        rows.append(
            {
                **extra,
                "contender": item.contender,
                "name": item.name,
                "library": item.library,
                "family": item.family,
                "mode": mode,
                **stats,
                "times_ms": [round(t, 4) for t in times[item.contender]],
                "flops": step.flops,
                "gflops_per_s": step.flops / (stats["median_ms"] * 1e6),
                "peak_memory_mib": None if step.peak_bytes is None else step.peak_bytes / _MIB,
                "memory_source": step.memory_source,
                "compile_s": round(step.compile_seconds, 3),
            }
        )
    by_id = {row["contender"]: row for row in rows}
    for row in rows:
        if row["library"] != "lstmx":
            continue
        row["ratios"] = {
            peer: row["median_ms"] / by_id[peer]["median_ms"]
            for peer in peers_of(row["family"])
            if peer in by_id
        }
    return rows


def _measure_group(contenders, shape, modes, repetitions, warmup, seed, log) -> list[dict]:
    xs = np.asarray(
        jax.random.normal(jax.random.key(seed + 1), (shape.batch, shape.steps, shape.inputs))
    )
    prepared = []
    for contender in contenders:
        log(f"  compiling {display_name(contender)} at {shape}")
        prepared.append(prepare(contender, shape, xs, modes, seed))
    rows = []
    for mode in modes:
        log(f"  timing {mode} at {shape}: {len(prepared)} contenders x {repetitions} repetitions")
        runs = {item.contender: item.steps[mode].run for item in prepared}
        times = time_interleaved(runs, repetitions, warmup)
        rows += _rows_for_group(prepared, mode, times, {"shape": shape._asdict()})
    del prepared
    gc.collect()
    return rows


def run_benchmark(
    shapes: Sequence[Shape] = DEFAULT_SHAPES,
    variants: Sequence[str] = ("lstm", "gru"),
    peers: Sequence[str] = PEER_LIBRARIES,
    repetitions: int = 20,
    warmup: int = 3,
    modes: Sequence[str] = MODES,
    sweep_steps: Sequence[int] = DEFAULT_SWEEP_STEPS,
    sweep_shape: SweepShape = DEFAULT_SWEEP_SHAPE,
    sweep_variants: Sequence[str] = DEFAULT_SWEEP_VARIANTS,
    sweep_repetitions: int = 5,
    seed_counts: Sequence[int] = DEFAULT_SEED_COUNTS,
    memory_steps: Sequence[int] = DEFAULT_MEMORY_STEPS,
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Runs the whole benchmark in this process; returns a JSON-able dict.

    For each shape, the lstmx ``variants`` and every peer of their families from the
    available ``peers`` libraries are timed together, interleaved, one mode at a time. The
    sweep times the lstmx ``sweep_variants`` (the LSTM and the parallel-scan minGRU and
    minLSTM by default), ``flax:LSTMCell`` and ``torch:LSTM`` (if available) in training
    at ``sweep_shape`` for each sequence length in ``sweep_steps`` (empty: no sweep),
    ``sweep_repetitions`` times each. Then the many-seeds section
    (:mod:`experiments.benchmark.seeds`, for each of ``seed_counts``) and the long-sequence
    memory section (:mod:`experiments.benchmark.memory`, for each of ``memory_steps``);
    an empty list skips a section.

    Returns:
      ``{"format", "machine", "settings", "skipped", "results", "sweep", "seeds",
      "memory"}``; each result row
      holds ``shape``, ``contender``, ``name``, ``library``, ``family``, ``mode``,
      ``median_ms``, ``iqr_ms``, ``q25_ms``, ``q75_ms``, ``times_ms``, ``flops``,
      ``gflops_per_s``, ``peak_memory_mib``, ``memory_source``, ``compile_s`` and, for lstmx
      rows, ``ratios`` (peer id -> lstmx median / peer median).
    """
    import lstmx

    shapes = [Shape(*shape) for shape in shapes]
    variants = list(dict.fromkeys(variants))
    for variant in [*variants, *sweep_variants]:
        if variant not in lstmx.variant_names():
            raise ValueError(
                f"Unknown variant {variant!r}; valid names: {', '.join(lstmx.variant_names())}."
            )
    modes = list(dict.fromkeys(modes))
    if not modes or any(mode not in MODES for mode in modes):
        raise ValueError(f"modes must be a non-empty list of {', '.join(MODES)}, got {modes}.")
    if repetitions < 1 or warmup < 0:
        raise ValueError(f"need repetitions >= 1 and warmup >= 0, got {repetitions}, {warmup}.")
    sweep_steps = [int(t) for t in sweep_steps]
    if any(t < 1 for t in sweep_steps):
        raise ValueError(f"sweep steps must be positive, got {sweep_steps}.")
    libraries, skipped = available_peers(peers)
    for library, reason in skipped.items():
        log(f"skipping peer {library}: {reason}")
    load_before = _load_average()
    if load_before is not None and load_before > 0.5 * (os.cpu_count() or 1):
        log(
            f"warning: 1-minute load average {load_before} on {os.cpu_count()} cores: "
            "other work is running and will disturb the timings (PyTorch's OpenMP most)"
        )

    results = []
    for shape in shapes:
        contenders = contenders_for(variants, libraries)
        results += _measure_group(contenders, shape, modes, repetitions, warmup, seed, log)

    sweep = []
    sweep_contenders = [f"lstmx:{variant}" for variant in dict.fromkeys(sweep_variants)] + [
        peer for peer in ("flax:LSTMCell", "torch:LSTM") if library_of(peer) in libraries
    ]
    for steps in sweep_steps:
        shape = Shape(sweep_shape.batch, steps, sweep_shape.inputs, sweep_shape.hidden)
        sweep += _measure_group(
            sweep_contenders, shape, ["train"], sweep_repetitions, min(warmup, 1), seed, log
        )
    seeds = run_seeds_benchmark(seed_counts, repetitions, warmup, time_interleaved, log)
    memory = run_memory_benchmark(memory_steps, log=log) if memory_steps else None

    return {
        "format": FORMAT,
        "machine": {
            **machine_info(),
            "load_average_before": load_before,
            "load_average_after": _load_average(),
        },
        "settings": {
            "shapes": [str(shape) for shape in shapes],
            "variants": variants,
            "peers": list(dict.fromkeys(peers)),
            "repetitions": repetitions,
            "warmup": warmup,
            "modes": modes,
            "sweep_steps": sweep_steps,
            "sweep_shape": str(sweep_shape),
            "sweep_variants": list(dict.fromkeys(sweep_variants)),
            "sweep_repetitions": sweep_repetitions,
            "seed_counts": list(seed_counts),
            "memory_steps": list(memory_steps),
            "seed": seed,
            "loss": "mean(ys ** 2) over all outputs; gradient w.r.t. parameters only",
            "flops": "forward = 2*B*T*(I+H)*G*H (G = 4 LSTM, 3 GRU, 1 RNN); train = 3*forward",
        },
        "skipped": skipped,
        "results": results,
        "sweep": sweep,
        "seeds": seeds,
        "memory": memory,
    }
