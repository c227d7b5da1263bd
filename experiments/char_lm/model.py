r"""Character-level language modelling: any variant, stacked, with dropout between layers.

The model reads one character at a time and predicts the next one (Graves 2013;
Karpathy, Johnson & Fei-Fei 2015)::

    one_hot(c_t) [V] -> layer 1 -> dropout -> layer 2 -> ... -> layer L -> linear -> logits [V]

* **Input:** the one-hot code of the character. A learned embedding table would add
  nothing: the first layer's input kernel ``w_x [V, G*H]`` already is one row per character.
* **Layers:** ``num_layers`` cells of one variant (:func:`lstmx.variant`), held as the
  params of ``lstmx.stack([cell] * L)`` (:class:`lstmx.StackParams`), so a trained model
  also runs through :func:`lstmx.scan` of the stack.
* **Dropout** on non-recurrent connections as in Zaremba, Sutskever & Vinyals 2014, here
  between layers only (not on the input or before the read-out): inverted dropout on the
  output of every layer but the top one while training, ``y * m / (1 - p)`` with
  ``m ~ Bernoulli(1 - p)``; nothing in evaluation or sampling. With one layer there is no
  place for it, so ``dropout > 0`` needs ``num_layers >= 2``.
* **Training:** truncated backpropagation through time over random windows of
  ``sequence_length + 1`` characters from the training text (predict each of the last
  ``sequence_length`` characters from those before it inside the window; the state starts
  at zero in every window), mean cross-entropy, global-norm clipping, an optax optimiser.
* **Metric:** bits per character, :math:`\mathrm{bpc} = \frac{1}{N \ln 2}\sum_t -\ln
  p(c_{t+1} \mid c_{\le t})`, on the held-out text (the last 10 %) cut into consecutive
  windows of ``sequence_length + 1`` characters that overlap by one, so every held-out
  character but the first is predicted once, from the characters before it in its window
  (a fresh zero state per window, as in training). A uniform guess scores ``log2 V``.
* **Sampling:** the prompt is fed one character at a time, then each next character is
  drawn from ``softmax(logits / temperature)`` and fed back. Lower temperatures sharpen the
  distribution; as ``temperature -> 0`` sampling becomes greedy (argmax). The temperature
  must be a finite number > 0.

Randomness is a pure function of ``(seed, step)``, as in :mod:`lstmx.training`: the
batch of step ``n`` comes from ``fold_in(data_key, n)`` and its dropout masks from
``fold_in(dropout_key, n)``. The same settings give the same numbers, and a run resumed
from a checkpoint continues exactly as the uninterrupted run would have
(:func:`run_char_lm`).

On disk (:func:`run_char_lm`), under a work directory: ``char_lm_{variant}.json``, the
record (format ``"lstmx.char_lm/1"``: ``config``, ``corpus`` (name, SHA-256, sizes),
``num_params``, ``history`` of evaluations (``step``, ``train_bpc``: the mean over the
batches since the previous evaluation, dropout on; ``held_out_bpc``; ``steps_per_second``;
``wall_time``), ``final_bpc``, ``uniform_bpc`` = log2 V, ``samples`` (prompt,
temperature, text), ``versions``), and ``checkpoints/char_lm_{variant}.msgpack``, the
training state; both written atomically.

The default corpus (:func:`default_corpus`) is the text of the Python Language Reference
that CPython ships for ``help()`` (``pydoc_data.topics``): about 0.47 MB of English prose
with grammar snippets and code examples, no download needed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments.run.loop import ConfigMismatchError
from experiments.shared import records, training
from lstmx import _checks
from lstmx.cells import Cell, variant, variant_names
from lstmx.sequence import StackParams, scan, stack

Array = jax.Array

__all__ = [
    "HELD_OUT_FRACTION",
    "OPTIMIZERS",
    "RECORD_FORMAT",
    "CharLM",
    "CharLMParams",
    "Config",
    "Corpus",
    "TrainState",
    "Trainer",
    "Vocabulary",
    "bits_per_character",
    "checkpoint_path",
    "cross_entropy",
    "default_corpus",
    "default_corpus_name",
    "eval_windows",
    "load_text",
    "make_corpus",
    "make_model",
    "make_trainer",
    "record_path",
    "run_char_lm",
    "sample",
]

RECORD_FORMAT = "lstmx.char_lm/1"
OPTIMIZERS = ("adam", "rmsprop", "sgd")
HELD_OUT_FRACTION = 0.1
"""The last 10 % of the text is held out for evaluation."""

# --------------------------------------------------------------------------------------
# Text.
# --------------------------------------------------------------------------------------


def default_corpus() -> str:
    """The offline default corpus: the Python Language Reference as shipped with CPython.

    ``pydoc_data.topics.topics`` maps each of ``help()``'s 79 topics ("if", "assignment",
    "formatstrings", ...) to its section of the Language Reference as plain text; the
    topics are joined in sorted order with a blank line between them. It is in every
    CPython install since 2.x (about 465,000 characters and 103 distinct ones on 3.11),
    and the same Python version always gives the same text; other versions differ a
    little (records store the text's SHA-256).

    Raises:
      RuntimeError: this Python has no ``pydoc_data`` (some minimal embedded builds).
    """
    try:
        from pydoc_data import topics
    except ImportError:
        raise RuntimeError(
            "this Python has no pydoc_data module for the default corpus; pass a text file."
        ) from None
    return "\n\n".join(topics.topics[name] for name in sorted(topics.topics))


def default_corpus_name() -> str:
    """How records name the default corpus, with the Python version it came from."""
    return f"pydoc_data.topics (Python {platform.python_version()} Language Reference)"


def load_text(path: str | os.PathLike) -> str:
    """Reads a UTF-8 text file, raising ValueError with one clear line if it cannot."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"text file {path} does not exist or is not a file.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"text file {path} is not readable ({error.strerror}).") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"text file {path} is not UTF-8 text ({error.reason} at byte {error.start})."
        ) from None
    if not text:
        raise ValueError(f"text file {path} is empty.")
    return text


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The characters of a text, sorted by code point; a character's id is its index.

    Characters outside the vocabulary are refused (ValueError naming them), never mapped
    to a stand-in: a prompt with a character the model never saw is an error.

    Attributes:
      chars: the characters, sorted and distinct.
    """

    chars: str

    def __post_init__(self):
        if not isinstance(self.chars, str) or not self.chars:
            raise ValueError("a Vocabulary needs at least one character.")
        if list(self.chars) != sorted(set(self.chars)):
            raise ValueError("Vocabulary.chars must be sorted and distinct; use from_text.")

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        """The vocabulary of every character in ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError("a vocabulary needs a non-empty text.")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        """``V``, the number of characters."""
        return len(self.chars)

    def _code_points(self) -> np.ndarray:
        return np.frombuffer(self.chars.encode("utf-32-le"), dtype=np.uint32)

    def encode(self, text: str) -> np.ndarray:
        """``text`` as int32 ids ``[len(text)]``.

        Raises:
          ValueError: ``text`` holds characters outside the vocabulary (listed).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}.")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table = self._code_points()
        ids = np.minimum(np.searchsorted(table, codes), len(table) - 1)
        unknown = codes != table[ids]
        if unknown.any():
            missing = "".join(sorted(set(np.asarray(list(text))[unknown])))
            raise ValueError(
                f"{len(missing)} character(s) not in the vocabulary of {self.size}: {missing!r}."
            )
        return ids.astype(np.int32)

    def decode(self, ids: Any) -> str:
        """The characters of integer ids ``[N]``; raises ValueError for ids out of range."""
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must lie in [0, {self.size}), got {ids.min()}..{ids.max()}.")
        return "".join(self.chars[i] for i in ids.tolist())


class Corpus(NamedTuple):
    """A text split by position into training and held-out ids.

    Attributes:
      name: where the text came from (a path or :func:`default_corpus_name`).
      vocab: the :class:`Vocabulary` of the whole text.
      train: int32 ids ``[N_train]``, the first 90 %.
      held_out: int32 ids ``[N_held_out]``, the last 10 %.
      sha256: hex digest of the UTF-8 text, to tell corpora apart on resume.
    """

    name: str
    vocab: Vocabulary
    train: np.ndarray
    held_out: np.ndarray
    sha256: str

    def info(self) -> dict:
        """JSON-able description for records."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "vocab_size": self.vocab.size,
            "train_chars": int(self.train.size),
            "held_out_chars": int(self.held_out.size),
        }


def make_corpus(text: str, name: str, sequence_length: int) -> Corpus:
    """Encodes ``text`` and holds out its last 10 %.

    Raises:
      ValueError: either part is shorter than one window of ``sequence_length + 1``.
    """
    sequence_length = _checks.positive_int("sequence_length", sequence_length)
    if not isinstance(text, str) or not text:
        raise ValueError("the corpus is empty.")
    vocab = Vocabulary.from_text(text)
    ids = vocab.encode(text)
    split = len(ids) - int(round(HELD_OUT_FRACTION * len(ids)))
    train, held_out = ids[:split], ids[split:]
    needed = sequence_length + 1
    if min(train.size, held_out.size) < needed:
        raise ValueError(
            f"the corpus ({len(ids)} characters) is too short for sequence_length="
            f"{sequence_length}: its held-out last 10 % ({held_out.size} characters) and its "
            f"training part ({train.size}) each need at least {needed}."
        )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Corpus(name, vocab, train, held_out, digest)


def eval_windows(held_out: np.ndarray, sequence_length: int, max_windows: int) -> np.ndarray:
    """The held-out evaluation windows ``[W, sequence_length + 1]``.

    Window ``j`` is ``held_out[j*L : j*L + L + 1]`` (consecutive windows share one
    character, so each character but the first is a target once). When there are more
    than ``max_windows``, that many are taken evenly spaced through the held-out text.
    """
    L = _checks.positive_int("sequence_length", sequence_length)
    max_windows = _checks.positive_int("max_windows", max_windows)
    count = (len(held_out) - 1) // L
    if count < 1:
        raise ValueError(f"held-out text of {len(held_out)} characters has no window of {L + 1}.")
    starts = np.arange(count) * L
    if count > max_windows:
        starts = starts[np.linspace(0, count - 1, max_windows).round().astype(int)]
    return np.stack([held_out[s : s + L + 1] for s in starts]).astype(np.int32)


# --------------------------------------------------------------------------------------
# Model.
# --------------------------------------------------------------------------------------


class CharLMParams(NamedTuple):
    """Model parameters.

    Attributes:
      cell: :class:`lstmx.StackParams`, one entry per layer, bottom first; the bottom
        layer's input size is ``V`` (one-hot characters), the others' ``H``.
      w_out: read-out kernel ``[H, V]``.
      b_out: read-out bias ``[V]``.
    """

    cell: StackParams
    w_out: Array
    b_out: Array


class CharLM(NamedTuple):
    """A character-level language model as pure functions.

    Attributes:
      init: ``init(key) -> CharLMParams``.
      apply: ``apply(params, ids [*B, T], dropout_key=None) -> logits [*B, T, V]``;
        dropout between layers is on when ``dropout_key`` is given (training), off when
        it is None (evaluation).
      initial_state: ``initial_state(batch_shape=()) -> lstmx.StackState`` (zeros).
      step: ``step(params, state, ids [*B]) -> (state, logits [*B, V])``, one character,
        no dropout (for sampling).
      cell: the stacked cell (``lstmx.stack([layer] * num_layers)``).
      vocab_size: ``V``.
      num_layers: ``L``.
      dropout: the drop probability between layers.
    """

    init: Callable[[Array], CharLMParams]
    apply: Callable[..., Array]
    initial_state: Callable[..., Any]
    step: Callable[..., tuple[Any, Array]]
    cell: Cell
    vocab_size: int
    num_layers: int
    dropout: float


def _check_dropout(dropout: Any, num_layers: int) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a number, got {type(dropout).__name__}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}.")
    if dropout > 0 and num_layers < 2:
        raise ValueError(
            "dropout acts between stacked layers; with num_layers=1 there is none, "
            f"so set dropout=0 or num_layers >= 2 (got dropout={dropout})."
        )
    return float(dropout)


def _readout(params: CharLMParams, ys: Array) -> Array:
    logits = ys @ params.w_out
    return logits + jnp.broadcast_to(params.b_out, logits.shape)


@functools.lru_cache(maxsize=64)
def make_model(
    variant_name: str, vocab_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0
) -> CharLM:
    """Builds the model: one-hot input, ``num_layers`` cells, dropout, linear read-out.

    Cached: equal arguments return the same object, so jitted functions that take the
    model as a static argument compile once per configuration.

    Args:
      variant_name: a name from :func:`lstmx.variant_names`.
      vocab_size: ``V``.
      hidden_size: ``H``, units per layer.
      num_layers: ``L`` stacked layers of the variant.
      dropout: drop probability on the outputs of layers ``1 .. L-1`` while training.
    """
    vocab_size = _checks.positive_int("vocab_size", vocab_size)
    num_layers = _checks.positive_int("num_layers", num_layers)
    dropout = _check_dropout(dropout, num_layers)
    layer = variant(variant_name, hidden_size)
    stacked = stack([layer] * num_layers)
    V, H = vocab_size, layer.output_size

    def init(key: Array) -> CharLMParams:
        key_cell, key_out = jax.random.split(key)
        w_out = jax.nn.initializers.lecun_normal()(key_out, (H, V), jnp.float32)
        return CharLMParams(stacked.init(key_cell, V), w_out, jnp.zeros((V,), jnp.float32))

    def apply(params: CharLMParams, ids: Array, dropout_key: Array | None = None) -> Array:
        _checks.params_type("params", params, CharLMParams)
        xs = jax.nn.one_hot(ids, V, dtype=jnp.float32)
        keep = 1.0 - dropout
        for index, layer_params in enumerate(params.cell.layers):
            _, xs = scan(layer, layer_params, xs)
            if dropout_key is not None and dropout > 0 and index < num_layers - 1:
                mask = jax.random.bernoulli(jax.random.fold_in(dropout_key, index), keep, xs.shape)
                xs = jnp.where(mask, xs / keep, jnp.zeros_like(xs))
        return _readout(params, xs)

    def initial_state(batch_shape=()):
        return stacked.initial_state(tuple(batch_shape))

    def step(params: CharLMParams, state: Any, ids: Array) -> tuple[Any, Array]:
        x = jax.nn.one_hot(ids, V, dtype=jnp.float32)
        state, y = stacked.step(params.cell, state, x)
        return state, _readout(params, y)

    return CharLM(init, apply, initial_state, step, stacked, V, num_layers, dropout)


def cross_entropy(
    model: CharLM, params: CharLMParams, windows: Array, dropout_key: Array | None = None
) -> Array:
    """Mean cross-entropy in nats of predicting ``windows[:, 1:]`` from ``windows[:, :-1]``.

    Args:
      windows: int ``[B, T + 1]`` character ids.
      dropout_key: training mode (dropout on) when given.
    """
    logits = model.apply(params, windows[:, :-1], dropout_key)
    return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:]).mean()


@functools.partial(jax.jit, static_argnames=("model", "chunk_size"))
def _total_nats(model, params, windows, chunk_size):
    count = windows.shape[0]
    num_chunks = -(-count // chunk_size)
    padded = jnp.zeros((num_chunks * chunk_size, windows.shape[1]), windows.dtype)
    padded = padded.at[:count].set(windows)
    real = jnp.arange(num_chunks * chunk_size) < count

    def chunk_nats(args):
        chunk, weight = args
        logits = model.apply(params, chunk[:, :-1])
        nats = optax.softmax_cross_entropy_with_integer_labels(logits, chunk[:, 1:])
        return jnp.sum(nats.sum(axis=1) * weight)

    shape = (num_chunks, chunk_size)
    sums = lax.map(
        chunk_nats,
        (padded.reshape(*shape, -1), real.reshape(shape).astype(jnp.float32)),
    )
    return sums.sum()


def bits_per_character(
    model: CharLM, params: CharLMParams, windows: Any, *, chunk_size: int = 256
) -> float:
    r"""Bits per character on ``windows`` (int ``[W, T + 1]``), no dropout.

    :math:`\frac{1}{W T \ln 2} \sum -\ln p(\text{next} \mid \text{window so far})`,
    evaluated ``chunk_size`` windows at a time to bound memory.
    """
    windows = jnp.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] < 2:
        raise ValueError(f"windows must be [W, T + 1] with T >= 1, got {windows.shape}.")
    chunk_size = min(_checks.positive_int("chunk_size", chunk_size), windows.shape[0])
    total = _total_nats(model, params, windows, chunk_size)
    return float(total) / (windows.shape[0] * (windows.shape[1] - 1) * math.log(2))


def _check_temperature(temperature: Any) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}.")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature} "
            "(small values approach greedy argmax decoding)."
        )
    return float(temperature)


@functools.partial(jax.jit, static_argnames=("model", "length"))
def _sample_ids(model, params, prompt_ids, length, temperature, key):
    def feed(state, char):
        return model.step(params, state, char)

    state, logits = lax.scan(feed, model.initial_state(()), prompt_ids)

    def draw(carry, step_key):
        state, last_logits = carry
        char = jax.random.categorical(step_key, last_logits / temperature)
        return model.step(params, state, char), char

    _, chars = lax.scan(draw, (state, logits[-1]), jax.random.split(key, length))
    return chars


def sample(
    model: CharLM,
    params: CharLMParams,
    vocab: Vocabulary,
    prompt: str,
    length: int,
    temperature: float,
    key: Array,
) -> str:
    """Feeds ``prompt`` and draws ``length`` characters after it.

    Each character is drawn with ``jax.random.categorical(key_t, logits / temperature)``
    and fed back; the same key gives the same text.

    Args:
      prompt: at least one character, all in ``vocab``.
      length: characters to draw (>= 0).
      temperature: a finite number > 0; 1 samples the model's distribution, lower values
        sharpen it (towards argmax), higher ones flatten it.
      key: PRNG key.

    Returns:
      The drawn characters (without the prompt).

    Raises:
      ValueError: an empty prompt or one with characters outside ``vocab``; a
        temperature that is not > 0; a negative length.
    """
    temperature = _check_temperature(temperature)
    length = _checks.int_at_least("length", length, 0)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string.")
    prompt_ids = jnp.asarray(vocab.encode(prompt))
    if length == 0:
        return ""
    return vocab.decode(_sample_ids(model, params, prompt_ids, length, temperature, key))


# --------------------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run.

    Attributes:
      variant: a name from :func:`lstmx.variant_names`.
      num_layers: stacked layers.
      hidden_size: units per layer.
      dropout: drop probability between layers while training, in [0, 1); needs
        ``num_layers >= 2`` when > 0.
      sequence_length: characters of context per training window (each window holds
        ``sequence_length + 1`` characters).
      batch_size: windows per step.
      steps: optimiser steps.
      optimizer: "adam", "rmsprop" (decay 0.9) or "sgd".
      learning_rate: > 0.
      clip: global-norm gradient clipping threshold, > 0.
      eval_every: steps between evaluations (and checkpoints).
      max_eval_windows: cap on the number of held-out windows scored per evaluation.
      seed: seeds initialisation, batches, dropout and sampling.
    """

    variant: str = "lstm"
    num_layers: int = 2
    hidden_size: int = 256
    dropout: float = 0.0
    sequence_length: int = 50
    batch_size: int = 64
    steps: int = 3000
    optimizer: str = "adam"
    learning_rate: float = 2e-3
    clip: float = 1.0
    eval_every: int = 100
    max_eval_windows: int = 1000
    seed: int = 0

    def __post_init__(self):
        if self.variant not in variant_names():
            raise ValueError(
                f"Unknown variant {self.variant!r}; valid names: {', '.join(variant_names())}."
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}."
            )
        for name in (
            "num_layers",
            "hidden_size",
            "sequence_length",
            "batch_size",
            "steps",
            "eval_every",
            "max_eval_windows",
        ):
            _checks.positive_int(name, getattr(self, name))
        _checks.int_at_least("seed", self.seed, 0)
        for name in ("learning_rate", "clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}.")
        _check_dropout(self.dropout, self.num_layers)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class TrainState(NamedTuple):
    """Parameters, optimiser state and the number of steps taken."""

    params: CharLMParams
    opt_state: Any
    step: Array


class Trainer(NamedTuple):
    """Compiled functions for one :class:`Config` and :class:`Corpus`.

    Attributes:
      init: ``init() -> TrainState``.
      train: ``train(state, num_steps) -> (state, losses [num_steps])``, mean
        cross-entropy (nats) of each step's batch, dropout on.
      evaluate: ``evaluate(state) -> float``, held-out bits per character.
      model: the :class:`CharLM`.
      num_params: trainable parameters.
    """

    init: Callable[[], TrainState]
    train: Callable[[TrainState, int], tuple[TrainState, Array]]
    evaluate: Callable[[TrainState], float]
    model: CharLM
    num_params: int


def _keys(seed: int) -> tuple[Array, Array, Array, Array]:
    """(init, data, dropout, sampling) keys of a seed."""
    keys = jax.random.split(jax.random.key(seed), 4)
    return keys[0], keys[1], keys[2], keys[3]


@functools.partial(jax.jit, static_argnames=("model", "optimizer"))
def _init_state(key, *, model, optimizer):
    params = model.init(key)
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


@functools.partial(
    jax.jit,
    static_argnames=("model", "optimizer", "batch_size", "window", "num_steps"),
    donate_argnums=0,
)
def _train_steps(
    state, ids, data_key, dropout_key, *, model, optimizer, batch_size, window, num_steps
):
    """``num_steps`` optimiser steps; batch and dropout keys are folded with the step."""
    num_starts = ids.shape[0] - window + 1

    def one_step(state: TrainState, _):
        starts = jax.random.randint(
            jax.random.fold_in(data_key, state.step), (batch_size,), 0, num_starts
        )
        windows = ids[starts[:, None] + jnp.arange(window)[None, :]]  # [B, L + 1]
        step_dropout_key = jax.random.fold_in(dropout_key, state.step)
        loss, grads = jax.value_and_grad(functools.partial(cross_entropy, model))(
            state.params, windows, step_dropout_key
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), loss

    return lax.scan(one_step, state, None, length=num_steps)


def make_trainer(config: Config, corpus: Corpus) -> Trainer:
    """Builds the init/train/evaluate functions; the data is passed to jit, not baked in.

    Equal settings share compiled code (the model and optimiser are cached by value), so
    a second trainer for the same configuration does not compile again.
    """
    model = make_model(
        config.variant, corpus.vocab.size, config.hidden_size, config.num_layers, config.dropout
    )
    optimizer = training.make_optimizer(
        config.optimizer, config.learning_rate, config.clip, "global_norm"
    )
    init_key, data_key, dropout_key, _ = _keys(config.seed)
    train_ids = jnp.asarray(corpus.train)
    held_out = jnp.asarray(
        eval_windows(corpus.held_out, config.sequence_length, config.max_eval_windows)
    )

    def init() -> TrainState:
        return _init_state(init_key, model=model, optimizer=optimizer)

    def train(state: TrainState, num_steps: int) -> tuple[TrainState, Array]:
        return _train_steps(
            state,
            train_ids,
            data_key,
            dropout_key,
            model=model,
            optimizer=optimizer,
            batch_size=config.batch_size,
            window=config.sequence_length + 1,
            num_steps=_checks.positive_int("num_steps", num_steps),
        )

    def evaluate(state: TrainState) -> float:
        return bits_per_character(model, state.params, held_out)

    shapes = jax.eval_shape(model.init, init_key)
    num_params = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes))
    return Trainer(init, train, evaluate, model, num_params)


def record_path(workdir: str | os.PathLike, variant_name: str) -> Path:
    """Where the final record of a variant's run lives."""
    return Path(workdir) / f"char_lm_{variant_name}.json"


def checkpoint_path(workdir: str | os.PathLike, variant_name: str) -> Path:
    """Where the variant's training state lives; kept after training (the trained model)."""
    return Path(workdir) / "checkpoints" / f"char_lm_{variant_name}.msgpack"


def _checkpoint_extra(path: Path) -> dict:
    """The ``extra`` dict of a checkpoint, read without a template (ValueError if unusable)."""
    import flax.serialization

    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        if payload.get("format") != records.CHECKPOINT_FORMAT:
            raise ValueError(f"format is {payload.get('format')!r}")
        extra = json.loads(payload["extra"])
        if not isinstance(extra, dict):
            raise ValueError("extra is not a dict")
        return extra
    except Exception as error:
        raise ValueError(
            f"{path}: unusable checkpoint ({type(error).__name__}: {error})."
        ) from None


def _check_same_run(where: Path, extra: dict, config: Config, corpus: Corpus) -> None:
    """Refuses a checkpoint made with other settings; ``steps`` may grow (train on)."""
    wanted = config.to_dict()
    recorded = extra.get("config", {})
    differences = [
        f"{name}: {recorded.get(name)!r} on disk vs {wanted[name]!r} now"
        for name in wanted
        if name != "steps" and recorded.get(name) != wanted[name]
    ]
    history = extra.get("history") or [{"step": 0}]
    if history[-1]["step"] > config.steps:
        differences.append(
            f"it holds a model trained for {history[-1]['step']} steps, more than "
            f"steps={config.steps}"
        )
    if extra.get("corpus", {}).get("sha256") != corpus.sha256:
        differences.append("the corpus text differs (SHA-256)")
    if differences:
        raise ConfigMismatchError(
            f"{where} was made with other settings ({'; '.join(differences)}); "
            "use another workdir or the same settings."
        )


def run_char_lm(
    config: Config,
    corpus: Corpus,
    workdir: str | os.PathLike,
    *,
    prompt: str = "The ",
    temperature: float = 1.0,
    sample_length: int = 300,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> dict | None:
    """Trains (or resumes), evaluates held-out bpc, samples, and writes the record.

    The training state is checkpointed (atomically) at every evaluation and kept when
    training ends: it is the trained model. Started again with the same settings, the run
    resumes from its checkpoint; once training is complete it only samples again (so other
    prompts and temperatures can be tried) and rewrites the record. Started again with a
    larger ``config.steps`` (and otherwise the same settings), it trains on from where it
    stopped, with the numbers of a run that had asked for that many steps from the start
    (the learning rate is constant).

    Args:
      config: the training settings.
      corpus: from :func:`make_corpus` with ``config.sequence_length``.
      workdir: where ``char_lm_{variant}.json`` and ``checkpoints/`` go.
      prompt: text to feed before sampling; every character must be in the corpus.
      temperature: sampling temperature, > 0.
      sample_length: characters to sample after the prompt.
      log: receives one progress line per evaluation and a few status lines.
      stop_after: stop (as if killed) after this many steps of this call; for tests.

    Returns:
      The record, or None if stopped by ``stop_after`` before the end.

    Raises:
      ValueError: bad sampling settings (checked before any training).
      ConfigMismatchError: the workdir holds this variant's run with other settings.
    """
    _check_temperature(temperature)
    _checks.int_at_least("sample_length", sample_length, 0)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string.")
    try:
        corpus.vocab.encode(prompt)
    except ValueError as error:
        raise ValueError(f"the prompt has {error}") from None
    workdir = Path(workdir)
    trainer = make_trainer(config, corpus)
    checkpoint = checkpoint_path(workdir, config.variant)
    state, history, wall_time = trainer.init(), [], 0.0
    if checkpoint.exists():
        try:
            # Settings first: a checkpoint of other settings is refused, never set aside.
            _check_same_run(checkpoint, _checkpoint_extra(checkpoint), config, corpus)
            state, extra = records.load_checkpoint(checkpoint, state)
        except ConfigMismatchError:
            raise
        except ValueError as error:
            log(f"warning: {error} Set aside as {records.set_aside(checkpoint).name}.")
        else:
            history, wall_time = extra["history"], extra["wall_time"]
            log(f"resuming {checkpoint} at step {int(state.step)}")

    steps_done_here = 0
    while int(state.step) < config.steps:
        if stop_after is not None and steps_done_here >= stop_after:
            return None
        chunk = min(config.eval_every, config.steps - int(state.step))
        started = time.perf_counter()
        state, losses = trainer.train(state, chunk)
        losses = np.asarray(jax.device_get(losses))
        elapsed = time.perf_counter() - started
        wall_time += elapsed
        steps_done_here += chunk
        point = {
            "step": int(state.step),
            "train_bpc": float(losses.mean() / math.log(2)),
            "held_out_bpc": trainer.evaluate(state),
            "steps_per_second": chunk / elapsed,
            "wall_time": round(wall_time, 3),
        }
        history.append(point)
        log(
            f"char_lm {config.variant} step {point['step']:>6}/{config.steps}  "
            f"train bpc {point['train_bpc']:.3f}  held-out bpc {point['held_out_bpc']:.3f}  "
            f"{point['steps_per_second']:.1f} steps/s"
        )
        extra = {
            "config": config.to_dict(),
            "corpus": corpus.info(),
            "history": history,
            "wall_time": wall_time,
        }
        records.save_checkpoint(checkpoint, state, extra)

    sample_key = jax.random.fold_in(_keys(config.seed)[3], 0)
    text = sample(
        trainer.model, state.params, corpus.vocab, prompt, sample_length, temperature, sample_key
    )
    # The first evaluation interval of a run includes compilation; leave it out if possible.
    rates = [point["steps_per_second"] for point in history]
    record = {
        "format": RECORD_FORMAT,
        "variant": config.variant,
        "config": config.to_dict(),
        "corpus": corpus.info(),
        "num_params": trainer.num_params,
        "history": history,
        "final_bpc": history[-1]["held_out_bpc"],
        "uniform_bpc": math.log2(corpus.vocab.size),
        "samples": [{"prompt": prompt, "temperature": temperature, "text": text}],
        "steps_per_second": float(np.median(rates[1:] if len(rates) > 1 else rates)),
        "wall_time": wall_time,
        "versions": records.software_versions(),
    }
    records.write_json_atomic(record_path(workdir, config.variant), record)
    return record
