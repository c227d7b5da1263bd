"""The contenders of the benchmark: shapes, peers, FLOP counts, and steps ready to time.

A contender is one recurrent layer from one library, named ``library:cell`` (see
:mod:`experiments.benchmark.harness` for the list, the method and the FLOP formula).
:func:`prepare` builds one, compiles its training and inference steps and measures their
memory; nothing here times anything.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "DEFAULT_SHAPES",
    "DEFAULT_SWEEP_SHAPE",
    "DEFAULT_SWEEP_STEPS",
    "DEFAULT_SWEEP_VARIANTS",
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
    "jax_memory",
    "jax_model",
    "library_of",
    "parse_shape",
    "parse_sweep_shape",
    "peer_column",
    "peers_of",
    "prepare",
    "train_flops",
]

MODES = ("train", "inference")
PEER_LIBRARIES = ("flax", "haiku", "torch")
GATE_BLOCKS = {"lstm": 4, "gru": 3, "rnn": 1}


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
DEFAULT_SWEEP_STEPS = (128, 256, 512, 1024, 2048, 4096)
DEFAULT_SWEEP_VARIANTS = ("lstm", "min_gru", "min_lstm")
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


def library_of(contender: str) -> str:
    """The library of a contender id (``"torch:LSTM"`` -> ``"torch"``)."""
    return contender.split(":", 1)[0]


def _variant_family(variant: str) -> str:
    """The family an lstmx variant's options name (``"lstm"``, ``"gru"``, ``"min_gru"`` …):
    which peers compare with it. Families with no peer here get none."""
    import lstmx

    return lstmx.variant(variant, 4).options.family


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
        if peer.family == family_name and library_of(name) in libraries
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


def contender_flops(contender: str, shape: Shape, mode: str = "train") -> int:
    """The analytic FLOPs of one call of a contender's step (module docstring).

    Peers use :func:`forward_flops` with their family's ``G``; an lstmx variant's options
    count their own matrix products (``options.matmul_flops``, per example and step), so
    the FGR block, LSTMP's projection and sLSTM's head blocks count as they are.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; modes are {', '.join(MODES)}.")
    if contender.startswith("lstmx:"):
        import lstmx

        cell = lstmx.variant(contender.split(":", 1)[1], shape.hidden)
        forward = shape.batch * shape.steps * cell.options.matmul_flops(shape.inputs)
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


def jax_memory(compiled: Any) -> tuple[int | None, str]:
    """A compiled JAX program's footprint in bytes (or None) and how it was obtained."""
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
        peak, source = jax_memory(compiled)

        def run(compiled=compiled, params=model.params):
            return jax.block_until_ready(compiled(params, xs))

        steps[mode] = Step(run, peak, source, compile_seconds, flops)
    return Prepared(
        contender, display_name(contender), library_of(contender), family(contender), steps
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
    if library_of(contender) == "torch":
        if contender not in _PEERS:
            raise ValueError(f"Unknown contender {contender!r}; peers are {', '.join(_PEERS)}.")
        return _prepare_torch(contender, shape, xs, modes, seed)
    return _prepare_jax(contender, shape, xs, modes, seed)


def peer_column(contender: str) -> str:
    """The Markdown ratio column of a peer id (``"flax:OptimizedLSTMCell"`` -> ``"flax opt."``)."""
    return _PEERS[contender].column
