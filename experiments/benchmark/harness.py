r"""Speed and memory of lstmx cells against the libraries a user would pick instead.

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
import importlib
import importlib.metadata
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DEFAULT_SHAPES",
    "DEFAULT_SWEEP_SHAPE",
    "DEFAULT_SWEEP_STEPS",
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
MODES = ("train", "inference")
PEER_LIBRARIES = ("flax", "haiku", "torch")
GATE_BLOCKS = {"lstm": 4, "gru": 3, "rnn": 1}

_MIB = 2.0**20


class Shape(NamedTuple):
    """A benchmark input: ``xs [batch, steps, inputs]`` into ``hidden`` units."""

    batch: int
    steps: int
    inputs: int
    hidden: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.steps}x{self.inputs}x{self.hidden}"


class SweepShape(NamedTuple):
    """The fixed part of the sequence-length sweep: ``batch``, ``inputs``, ``hidden``."""

    batch: int
    inputs: int
    hidden: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.inputs}x{self.hidden}"


DEFAULT_SHAPES = (Shape(128, 100, 10, 128), Shape(32, 100, 128, 512))
DEFAULT_SWEEP_STEPS = (100, 400, 1600)
DEFAULT_SWEEP_SHAPE = SweepShape(32, 10, 128)


def _parse_ints(text: str, count: int, what: str, layout: str) -> tuple[int, ...]:
    parts = str(text).strip().lower().split("x")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != count or any(value < 1 for value in values):
        raise ValueError(f"{what} must be {layout} with positive integers, got {text!r}.")
    return values


def parse_shape(text: str) -> Shape:
    """``"128x100x10x128"`` (BxTxIxH) to ``Shape(128, 100, 10, 128)``; ValueError if not."""
    return Shape(*_parse_ints(text, 4, "a shape", "BxTxIxH, e.g. 128x100x10x128,"))


def parse_sweep_shape(text: str) -> SweepShape:
    """``"32x10x128"`` (BxIxH) to ``SweepShape(32, 10, 128)``; ValueError if not."""
    return SweepShape(*_parse_ints(text, 3, "the sweep shape", "BxIxH, e.g. 32x10x128,"))


# ------------------------------------------------------------------------------- contenders


class _Peer(NamedTuple):
    family: str  # "lstm", "gru" or "rnn"
    column: str  # the Markdown table's ratio column
    name: str  # as shown in tables


_PEERS: dict[str, _Peer] = {
    "flax:LSTMCell": _Peer("lstm", "flax", "flax LSTMCell"),
    "flax:OptimizedLSTMCell": _Peer("lstm", "flax opt.", "flax OptimizedLSTMCell"),
    "haiku:LSTM": _Peer("lstm", "haiku", "haiku LSTM"),
    "torch:LSTM": _Peer("lstm", "torch", "torch nn.LSTM"),
    "flax:GRUCell": _Peer("gru", "flax", "flax GRUCell"),
    "haiku:GRU": _Peer("gru", "haiku", "haiku GRU"),
    "torch:GRU": _Peer("gru", "torch", "torch nn.GRU"),
    "flax:SimpleCell": _Peer("rnn", "flax", "flax SimpleCell"),
    "haiku:VanillaRNN": _Peer("rnn", "haiku", "haiku VanillaRNN"),
    "torch:RNN": _Peer("rnn", "torch", "torch nn.RNN"),
}
RATIO_COLUMNS = ("flax", "flax opt.", "haiku", "torch")
_IMPORT_NAME = {"flax": "flax.linen", "haiku": "haiku", "torch": "torch"}
_PACKAGE = {"flax": "flax", "haiku": "dm-haiku", "torch": "torch"}


def _library(contender: str) -> str:
    return contender.split(":", 1)[0]


def _variant_family(variant: str) -> str:
    """``"lstm"``, ``"gru"`` or ``"rnn"``: which peers compare with an lstmx variant."""
    import lstmx

    params = jax.eval_shape(lambda: lstmx.variant(variant, 4).init(jax.random.key(0), 2))
    if isinstance(params, lstmx.GRUParams):
        return "gru"
    if isinstance(params, lstmx.RNNParams):
        return "rnn"
    return "lstm"


def family(contender: str) -> str:
    """The cell family of a contender id (``"lstmx:cifg"`` -> ``"lstm"``)."""
    if contender.startswith("lstmx:"):
        return _variant_family(contender.split(":", 1)[1])
    if contender not in _PEERS:
        raise ValueError(f"Unknown contender {contender!r}; peers are {', '.join(_PEERS)}.")
    return _PEERS[contender].family


def display_name(contender: str) -> str:
    """How a contender id is shown in tables (``"torch:LSTM"`` -> ``"torch nn.LSTM"``)."""
    if contender.startswith("lstmx:"):
        return "lstmx " + contender.split(":", 1)[1]
    return _PEERS[contender].name


def peers_of(family_name: str, libraries: Iterable[str] = PEER_LIBRARIES) -> list[str]:
    """The peer contenders of a family from the given libraries, in table order."""
    libraries = set(libraries)
    return [
        name
        for name, peer in _PEERS.items()
        if peer.family == family_name and _library(name) in libraries
    ]


def available_peers(requested: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """Which requested peer libraries import here.

    Returns:
      ``(available, skipped)``: the importable libraries in the order asked, and for each
      one that is not, the reason (``"not installed (pip install dm-haiku)"`` or the error).

    Raises:
      ValueError: for a name that is not one of :data:`PEER_LIBRARIES`.
    """
    available, skipped = [], {}
    for library in dict.fromkeys(requested):
        if library not in PEER_LIBRARIES:
            raise ValueError(f"Unknown peer {library!r}; peers are {', '.join(PEER_LIBRARIES)}.")
        try:
            importlib.import_module(_IMPORT_NAME[library])
        except ImportError as error:
            reason = "not installed" if isinstance(error, ModuleNotFoundError) else "import failed"
            skipped[library] = (
                f"{reason} ({type(error).__name__}: {error}); "
                f"pip install -e '.[bench]' or pip install {_PACKAGE[library]}"
            )
        except Exception as error:  # a broken install must not stop the benchmark
            skipped[library] = f"import failed ({type(error).__name__}: {error})"
        else:
            available.append(library)
    return available, skipped


def contenders_for(variants: Sequence[str], libraries: Iterable[str]) -> list[str]:
    """The lstmx variants then every peer of their families from ``libraries``, no repeats."""
    libraries = list(libraries)
    names = [f"lstmx:{variant}" for variant in variants]
    for variant in variants:
        names += peers_of(_variant_family(variant), libraries)
    return list(dict.fromkeys(names))


# ------------------------------------------------------------------------------------ FLOPs


def forward_flops(shape: Shape, gate_blocks: int) -> int:
    """``2 · B · T · (I + H) · G · H``: the matrix-product FLOPs of one forward pass."""
    batch, steps, inputs, hidden = shape
    return 2 * batch * steps * (inputs + hidden) * gate_blocks * hidden


def train_flops(shape: Shape, gate_blocks: int) -> int:
    """``3 × forward_flops``: the conventional count for forward + backward."""
    return 3 * forward_flops(shape, gate_blocks)


def _weight_entries(params: Any) -> int:
    """Entries of the 2-D weight matrices of lstmx params (``w_x``, ``w_h``, ``w_gates``)."""
    return sum(
        int(np.prod(getattr(params, name).shape))
        for name in ("w_x", "w_h", "w_gates")
        if getattr(params, name, None) is not None
    )


def contender_flops(contender: str, shape: Shape, mode: str = "train") -> int:
    """The analytic FLOPs of one call of a contender's step (module docstring).

    Peers use :func:`forward_flops` with their family's ``G``; lstmx variants count the
    entries of their own weight matrices, found with ``jax.eval_shape`` (nothing runs).
    """
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; modes are {', '.join(MODES)}.")
    if contender.startswith("lstmx:"):
        import lstmx

        cell = lstmx.variant(contender.split(":", 1)[1], shape.hidden)
        params = jax.eval_shape(lambda: cell.init(jax.random.key(0), shape.inputs))
        forward = 2 * shape.batch * shape.steps * _weight_entries(params)
    else:
        forward = forward_flops(shape, GATE_BLOCKS[family(contender)])
    return 3 * forward if mode == "train" else forward


# ------------------------------------------------------------------------------- the models


class JaxModel(NamedTuple):
    """A JAX contender as pure functions of its parameters.

    Attributes:
      params: the parameter pytree.
      forward: ``forward(params, xs [B, T, I]) -> ys [B, T, H]``.
      loss: ``loss(params, xs) = mean(forward(params, xs) ** 2)``.
    """

    params: Any
    forward: Callable[[Any, jax.Array], jax.Array]
    loss: Callable[[Any, jax.Array], jax.Array]


def _mean_square(ys: jax.Array) -> jax.Array:
    return jnp.mean(jnp.square(ys))


def jax_model(contender: str, shape: Shape, key: jax.Array) -> JaxModel:
    """Builds a JAX contender (``lstmx:*``, ``flax:*`` or ``haiku:*``) for ``shape``."""
    library, cell_name = contender.split(":", 1)
    H = shape.hidden
    example = jax.ShapeDtypeStruct((shape.batch, shape.steps, shape.inputs), jnp.float32)
    if library == "lstmx":
        import lstmx

        cell = lstmx.variant(cell_name, H)
        params = cell.init(key, shape.inputs)

        def forward(params, xs):
            return lstmx.scan(cell, params, xs)[1]

    elif library == "flax":
        import flax.linen as nn

        if contender not in _PEERS:
            raise ValueError(f"Unknown contender {contender!r}; peers are {', '.join(_PEERS)}.")
        module = nn.RNN(getattr(nn, cell_name)(features=H))
        params = module.init(key, jnp.zeros(example.shape, example.dtype))

        def forward(params, xs):
            return module.apply(params, xs)

    elif library == "haiku":
        import haiku as hk

        if contender not in _PEERS:
            raise ValueError(f"Unknown contender {contender!r}; peers are {', '.join(_PEERS)}.")

        def unroll(xs):
            core = getattr(hk, cell_name)(H)
            ys, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[0]), time_major=False)
            return ys

        transformed = hk.without_apply_rng(hk.transform(unroll))
        params = transformed.init(key, jnp.zeros(example.shape, example.dtype))
        forward = transformed.apply
    else:
        raise ValueError(f"{contender!r} is not a JAX contender (lstmx:*, flax:*, haiku:*).")

    def loss(params, xs):
        return _mean_square(forward(params, xs))

    return JaxModel(params, forward, loss)


class Step(NamedTuple):
    """One ready-to-time step of a contender.

    Attributes:
      run: no arguments; runs the step once and returns when its results are ready.
      peak_bytes: the step's memory footprint (module docstring), or None if unknown.
      memory_source: how ``peak_bytes`` was obtained, or why it is missing.
      compile_seconds: time to compile (JAX) or 0.
      flops: the analytic FLOPs of one call.
    """

    run: Callable[[], Any]
    peak_bytes: int | None
    memory_source: str
    compile_seconds: float
    flops: int


class Prepared(NamedTuple):
    """A contender ready for timing: its id, names and one :class:`Step` per mode."""

    contender: str
    name: str
    library: str
    family: str
    steps: dict[str, Step]


def _jax_memory(compiled: Any) -> tuple[int | None, str]:
    try:
        stats = compiled.memory_analysis()
    except Exception as error:  # some backends do not implement it
        return None, f"n/a (memory_analysis failed: {type(error).__name__})"
    if stats is None:
        return None, "n/a (memory_analysis returned None)"
    total = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
    return int(total), "XLA buffer assignment: arguments + outputs + temporaries - aliased"


def _prepare_jax(contender: str, shape: Shape, xs: np.ndarray, modes, seed: int) -> Prepared:
    model = jax_model(contender, shape, jax.random.key(seed))
    xs = jnp.asarray(xs)
    functions = {"train": jax.value_and_grad(model.loss), "inference": model.forward}
    steps = {}
    for mode in modes:
        function, flops = functions[mode], contender_flops(contender, shape, mode)
        start = time.perf_counter()
        compiled = jax.jit(function).lower(model.params, xs).compile()
        compile_seconds = time.perf_counter() - start
        peak, source = _jax_memory(compiled)

        def run(compiled=compiled, params=model.params):
            return jax.block_until_ready(compiled(params, xs))

        steps[mode] = Step(run, peak, source, compile_seconds, flops)
    return Prepared(
        contender, display_name(contender), _library(contender), family(contender), steps
    )


def _torch_peak_bytes(run: Callable[[], Any]) -> tuple[int | None, str]:
    """Peak live bytes of the CPU allocator during one ``run()``, from profiler events."""
    try:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            run()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except Exception as error:  # private-ish API: say so rather than fail the benchmark
        return None, f"n/a (torch.profiler memory events unavailable: {type(error).__name__})"
    if not events:
        return None, "n/a (torch.profiler recorded no memory events)"
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak, "parameters + input + peak live bytes of the CPU allocator (torch.profiler)"


def _prepare_torch(contender: str, shape: Shape, xs: np.ndarray, modes, seed: int) -> Prepared:
    import torch

    cell_name = contender.split(":", 1)[1]
    torch.manual_seed(seed)
    module = getattr(torch.nn, cell_name)(shape.inputs, shape.hidden, batch_first=True)
    x = torch.from_numpy(np.array(xs, dtype=np.float32, order="C", copy=True))

    def train():
        module.zero_grad(set_to_none=True)
        ys, _ = module(x)
        loss = ys.square().mean()
        loss.backward()
        return loss.detach()

    def inference():
        with torch.no_grad():
            return module(x)[0]

    resident = sum(p.numel() * p.element_size() for p in module.parameters())
    resident += x.numel() * x.element_size()
    steps = {}
    for mode, run in (("train", train), ("inference", inference)):
        if mode not in modes:
            continue
        flops = contender_flops(contender, shape, mode)
        run()  # first call allocates lazily-created buffers outside the measurement
        if mode == "train":
            module.zero_grad(set_to_none=True)
        peak, source = _torch_peak_bytes(run)
        steps[mode] = Step(run, None if peak is None else resident + peak, source, 0.0, flops)
    return Prepared(contender, display_name(contender), "torch", family(contender), steps)


def prepare(
    contender: str, shape: Shape, xs: np.ndarray, modes: Sequence[str] = MODES, seed: int = 0
) -> Prepared:
    """Builds, compiles and measures the memory of one contender on input ``xs [B, T, I]``."""
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"Unknown mode {mode!r}; modes are {', '.join(MODES)}.")
    if _library(contender) == "torch":
        if contender not in _PEERS:
            raise ValueError(f"Unknown contender {contender!r}; peers are {', '.join(_PEERS)}.")
        return _prepare_torch(contender, shape, xs, modes, seed)
    return _prepare_jax(contender, shape, xs, modes, seed)


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
    seed: int = 0,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Runs the whole benchmark in this process; returns a JSON-able dict.

    For each shape, the lstmx ``variants`` and every peer of their families from the
    available ``peers`` libraries are timed together, interleaved, one mode at a time. The
    sweep times ``lstmx:lstm``, ``flax:LSTMCell`` and ``torch:LSTM`` (if available) in
    training at ``sweep_shape`` for each sequence length in ``sweep_steps`` (empty: no
    sweep).

    Returns:
      ``{"format", "machine", "settings", "skipped", "results", "sweep"}``; each result row
      holds ``shape``, ``contender``, ``name``, ``library``, ``family``, ``mode``,
      ``median_ms``, ``iqr_ms``, ``q25_ms``, ``q75_ms``, ``times_ms``, ``flops``,
      ``gflops_per_s``, ``peak_memory_mib``, ``memory_source``, ``compile_s`` and, for lstmx
      rows, ``ratios`` (peer id -> lstmx median / peer median).
    """
    import lstmx

    shapes = [Shape(*shape) for shape in shapes]
    variants = list(dict.fromkeys(variants))
    for variant in variants:
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
    sweep_contenders = ["lstmx:lstm"] + [
        peer for peer in ("flax:LSTMCell", "torch:LSTM") if _library(peer) in libraries
    ]
    for steps in sweep_steps:
        shape = Shape(sweep_shape.batch, steps, sweep_shape.inputs, sweep_shape.hidden)
        sweep += _measure_group(sweep_contenders, shape, ["train"], repetitions, warmup, seed, log)

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
            "seed": seed,
            "loss": "mean(ys ** 2) over all outputs; gradient w.r.t. parameters only",
            "flops": "forward = 2*B*T*(I+H)*G*H (G = 4 LSTM, 3 GRU, 1 RNN); train = 3*forward",
        },
        "skipped": skipped,
        "results": results,
        "sweep": sweep,
    }


# -------------------------------------------------------------------------- machine, output


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU, cores, device and the versions of everything timed."""
    import flax

    import lstmx

    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lstmx": lstmx.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_device": str(jax.devices()[0].device_kind),
        "thread_environment": {
            name: os.environ[name]
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS")
            if name in os.environ
        },
    }
    for key, distribution in (("haiku", "dm-haiku"), ("torch", "torch")):
        try:
            info[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            info[key] = None
    torch = sys.modules.get("torch")  # thread counts only if the benchmark imported torch
    if torch is not None and hasattr(torch, "get_num_threads"):
        info["torch_threads"] = torch.get_num_threads()
        info["torch_interop_threads"] = torch.get_num_interop_threads()
    return info


def _machine_line(machine: Mapping[str, Any]) -> str:
    parts = [
        f"{machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable)",
        f"jax {machine['jax']} ({machine['jax_backend']}: {machine['jax_device']})",
        f"flax {machine['flax']}",
    ]
    if machine.get("haiku"):
        parts.append(f"dm-haiku {machine['haiku']}")
    if machine.get("torch"):
        threads = machine.get("torch_threads")
        parts.append(f"torch {machine['torch']}" + (f" ({threads} threads)" if threads else ""))
    parts.append(f"Python {machine['python']}, {machine['platform']}")
    if machine.get("load_average_before") is not None:
        parts.append(
            f"1-minute load average {machine['load_average_before']} before, "
            f"{machine.get('load_average_after')} after"
        )
    return "; ".join(parts)


NOISY_IQR_FRACTION = 0.25


def _format_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _is_noisy(row: Mapping[str, Any]) -> bool:
    return row["iqr_ms"] > NOISY_IQR_FRACTION * row["median_ms"]


def _median_cell(row: Mapping[str, Any]) -> str:
    return _format_ms(row["median_ms"]) + (" †" if _is_noisy(row) else "")


def _format_memory(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _ratio_cells(row: Mapping[str, Any]) -> list[str]:
    ratios = row.get("ratios")
    if ratios is None:
        return [""] * len(RATIO_COLUMNS)
    by_column = {_PEERS[peer].column: value for peer, value in ratios.items()}
    return [
        f"{by_column[column]:.2f}"
        if column in by_column and math.isfinite(by_column[column])
        else "–"
        for column in RATIO_COLUMNS
    ]


def _shape_text(shape: Mapping[str, int]) -> str:
    return str(Shape(**shape))


def to_markdown(result: Mapping[str, Any]) -> str:
    """The benchmark as Markdown: machine, settings, the main table, the sweep, skipped peers."""
    settings = result["settings"]
    lines = [
        "# lstmx benchmark",
        "",
        f"Machine: {_machine_line(result['machine'])}.",
        "",
        f"Median of {settings['repetitions']} interleaved repetitions after "
        f"{settings['warmup']} warm-up call(s). train = loss mean(ys²) and its gradient with "
        "respect to the parameters; inference = forward only. Shape = BxTxIxH. "
        "Ratio columns: lstmx median / peer median (below 1: lstmx faster). "
        "GFLOP/s from matrix products only: forward 2·B·T·(I+H)·G·H (G = 4 LSTM, 3 GRU), "
        "train 3× forward. Memory: JAX, XLA's buffer assignment for the compiled step "
        "(arguments + outputs + temporaries); torch, parameters + input + the allocator's "
        "peak during the step (torch.profiler).",
        "",
    ]
    header = ["shape", "contender", "mode", "median ms", "IQR ms"]
    header += [f"÷ {column}" for column in RATIO_COLUMNS] + ["GFLOP/s", "peak MiB"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in result["results"]:
        cells = [
            _shape_text(row["shape"]),
            row["name"],
            row["mode"],
            _median_cell(row),
            _format_ms(row["iqr_ms"]),
            *_ratio_cells(row),
            f"{row['gflops_per_s']:.2f}",
            _format_memory(row["peak_memory_mib"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if result.get("sweep"):
        sweep_shape = settings["sweep_shape"]
        lines += [
            "",
            f"## Sequence length sweep (train, BxIxH = {sweep_shape})",
            "",
            "| T | contender | median ms | IQR ms | µs per time step | ÷ flax | ÷ torch | "
            "peak MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in result["sweep"]:
            ratios = row.get("ratios") or {}
            flax_ratio = ratios.get("flax:LSTMCell")
            torch_ratio = ratios.get("torch:LSTM")
            cells = [
                str(row["shape"]["steps"]),
                row["name"],
                _median_cell(row),
                _format_ms(row["iqr_ms"]),
                f"{1e3 * row['median_ms'] / row['shape']['steps']:.0f}",
                "" if flax_ratio is None else f"{flax_ratio:.2f}",
                "" if torch_ratio is None else f"{torch_ratio:.2f}",
                _format_memory(row["peak_memory_mib"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    rows = list(result["results"]) + list(result.get("sweep") or [])
    if any(_is_noisy(row) for row in rows):
        lines += [
            "",
            f"† IQR above {NOISY_IQR_FRACTION:.0%} of the median: the machine was disturbed "
            "during these repetitions; rerun on an idle machine before quoting the number.",
        ]
    if result.get("skipped"):
        lines += ["", "Skipped peers:"]
        lines += [f"* {library}: {reason}" for library, reason in result["skipped"].items()]
    return "\n".join(lines) + "\n"


def write_results(result: Mapping[str, Any], output_dir: str | os.PathLike) -> list[str]:
    """Writes ``benchmark.json`` and ``benchmark.md`` atomically; returns their paths."""
    from pathlib import Path

    from experiments.shared import records as results_io

    output_dir = Path(output_dir)
    json_path, md_path = output_dir / "benchmark.json", output_dir / "benchmark.md"
    results_io.write_json_atomic(json_path, result)
    results_io.write_atomic(md_path, to_markdown(result).encode())
    return [str(json_path), str(md_path)]
