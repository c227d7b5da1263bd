r"""Character-level language modelling: any variant, stacked, with dropout between layers.

The model reads one character at a time and predicts the next one (Graves 2013;
Karpathy, Johnson & Fei-Fei 2015)::

    one_hot(c_t) [V] -> layer 1 -> dropout -> layer 2 -> ... -> layer L -> linear -> logits [V]

* **Input:** the one-hot code of the character. A learned embedding table would add
  nothing: the first layer's input kernel ``w_x [V, G*H]`` already is one row per character.
* **Read-out:** a :class:`~experiments.shared.training.Readout` (``w_out [H, V]``,
  ``b_out [V]``) on the top layer's output.
* **Layers:** ``num_layers`` cells of one variant (:func:`lstmx.variant`), held as the
  params of ``lstmx.stack([cell] * L)`` (:class:`lstmx.StackParams`), so a trained model
  also runs through :func:`lstmx.scan` of the stack.
* **Dropout** on non-recurrent connections as in Zaremba, Sutskever & Vinyals 2014, here
  between layers only (not on the input or before the read-out): inverted dropout on the
  output of every layer but the top one while training, ``y * m / (1 - p)`` with
  ``m ~ Bernoulli(1 - p)``; nothing in evaluation or sampling. With one layer there is no
  place for it, so ``dropout > 0`` needs ``num_layers >= 2``.
* **Recurrent regularisers** (optional, :mod:`experiments.shared.regularization`):
  zoneout (Krueger et al. 2016) and variational input/recurrent dropout (Gal &
  Ghahramani 2016) inside every layer (:func:`lstmx.regularized`) while training; their
  masks come from ``fold_in(fold_in(step_key, 1), layer)``. Evaluation and sampling run
  the expectation. With every rate 0 the layers are not wrapped.
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

Training runs on the shared multi-seed trainer (:mod:`experiments.shared.training`, one
seed) and resumable loop (:mod:`experiments.shared.resume`). Randomness is a pure
function of ``(seed, step)``: the batch of step ``n`` and its dropout masks come from
``fold_in(train_key, n)``. The same settings give the same numbers, and a run resumed
from a checkpoint continues exactly as the uninterrupted run would have
(:func:`run_char_lm`). Sampling draws from the seed's own sampling key.

On disk (:func:`run_char_lm`), under a work directory: ``char_lm_{label}.json``, the
record (format ``"lstmx.char_lm/1"``: ``config``, ``corpus`` (name, SHA-256, sizes),
``num_params``, ``history`` of evaluations (``step``, ``train_bpc``: the mean over the
batches since the previous evaluation, dropout and regularisers on; ``held_out_bpc``;
``steps_per_second``; ``wall_time``), ``final_bpc``, ``uniform_bpc`` = log2 V, ``samples`` (prompt,
temperature, text), ``versions``), and ``checkpoints/char_lm_{label}.msgpack``, the
training state; both written atomically. The label (:attr:`Config.label`) is the variant,
followed by the recurrent regularisers if any (e.g. ``lstm+zoneout_h0.1``; the dropout
between layers is not in it).

The default corpus (:func:`default_corpus`) is the text of the Python Language Reference
that CPython ships for ``help()`` (``pydoc_data.topics``): about 0.47 MB of English prose
with grammar snippets and code examples, no download needed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from experiments.shared import records, regularization, resume, training
from experiments.shared.resume import ConfigMismatchError
from experiments.shared.training import Readout, Trainer, apply_readout, init_readout
from lstmx import _checks
from lstmx.cells import Cell, variant, variant_names
from lstmx.sequence import scan, stack

Array = jax.Array

__all__ = [
    "HELD_OUT_FRACTION",
    "OPTIMIZERS",
    "RECORD_FORMAT",
    "CharLM",
    "CharLMExperiment",
    "Config",
    "ConfigMismatchError",
    "Corpus",
    "Vocabulary",
    "bits_per_character",
    "checkpoint_path",
    "config_model",
    "cross_entropy",
    "default_corpus",
    "default_corpus_name",
    "default_prompt",
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
OPTIMIZERS = training.OPTIMIZERS
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


class CharLM(NamedTuple):
    """A character-level language model as pure functions.

    Attributes:
      init: ``init(key) -> Readout``.
      apply: ``apply(params, ids [*B, T], dropout_key=None, recurrent_key=None) -> logits
        [*B, T, V]``; dropout between layers is on when ``dropout_key`` is given
        (training), off when it is None (evaluation); the recurrent regularisers draw
        masks from ``recurrent_key`` (layer ``l`` from ``fold_in(recurrent_key, l)``) and
        run their expectation without it.
      initial_state: ``initial_state(batch_shape=()) -> lstmx.StackState`` (zeros).
      step: ``step(params, state, ids [*B]) -> (state, logits [*B, V])``, one character,
        no dropout, regularisers at their expectation (for sampling).
      cell: the stacked cell (``lstmx.stack([layer] * num_layers)``).
      vocab_size: ``V``.
      num_layers: ``L``.
      dropout: the drop probability between layers.
    """

    init: Callable[[Array], Readout]
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


@functools.lru_cache(maxsize=64)
def make_model(
    variant_name: str,
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 1,
    dropout: float = 0.0,
    *,
    rates: regularization.Rates = regularization.NONE,
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
      rates: the recurrent regularisers of every layer, a
        :class:`~experiments.shared.regularization.Rates`; all 0 (the default): none.
    """
    vocab_size = _checks.positive_int("vocab_size", vocab_size)
    num_layers = _checks.positive_int("num_layers", num_layers)
    dropout = _check_dropout(dropout, num_layers)
    rates = regularization.Rates.of(rates)
    layer = regularization.regularize(variant(variant_name, hidden_size), rates, variant_name)
    stacked = stack([layer] * num_layers)
    V = vocab_size

    def init(key: Array) -> Readout:
        return init_readout(key, stacked, V, V)

    def apply(
        params: Readout,
        ids: Array,
        dropout_key: Array | None = None,
        recurrent_key: Array | None = None,
    ) -> Array:
        _checks.params_type("params", params, Readout)
        xs = jax.nn.one_hot(ids, V, dtype=jnp.float32)
        keep = 1.0 - dropout
        for index, layer_params in enumerate(params.cell.layers):
            layer_key = None
            if recurrent_key is not None and regularization.is_regularized(rates):
                layer_key = jax.random.fold_in(recurrent_key, index)
            _, xs = scan(layer, layer_params, xs, key=layer_key)
            if dropout_key is not None and dropout > 0 and index < num_layers - 1:
                mask = jax.random.bernoulli(jax.random.fold_in(dropout_key, index), keep, xs.shape)
                xs = jnp.where(mask, xs / keep, jnp.zeros_like(xs))
        return apply_readout(params, xs)

    def initial_state(batch_shape=()):
        return stacked.initial_state(tuple(batch_shape))

    def step(params: Readout, state: Any, ids: Array) -> tuple[Any, Array]:
        x = jax.nn.one_hot(ids, V, dtype=jnp.float32)
        state, y = stacked.step(params.cell, state, x)
        return state, apply_readout(params, y)

    return CharLM(init, apply, initial_state, step, stacked, V, num_layers, dropout)


def cross_entropy(
    model: CharLM,
    params: Readout,
    windows: Array,
    dropout_key: Array | None = None,
    recurrent_key: Array | None = None,
) -> Array:
    """Mean cross-entropy in nats of predicting ``windows[:, 1:]`` from ``windows[:, :-1]``.

    Args:
      windows: int ``[B, T + 1]`` character ids.
      dropout_key: training mode (dropout on) when given.
      recurrent_key: the recurrent regularisers' masks when given (training mode).
    """
    logits = model.apply(params, windows[:, :-1], dropout_key, recurrent_key)
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
    model: CharLM, params: Readout, windows: Any, *, chunk_size: int = 256
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
    params: Readout,
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
      rates: the recurrent regularisers' five rates, a
        :class:`~experiments.shared.regularization.Rates` (a dict of them is converted);
        all 0 (the default): none.
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
    rates: regularization.Rates = regularization.NONE

    def __post_init__(self):
        object.__setattr__(self, "rates", regularization.Rates.of(self.rates))
        if self.variant not in variant_names():
            raise ValueError(
                f"Unknown variant {self.variant!r}; valid names: {', '.join(variant_names())}."
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
        training.check_optimizer_settings(
            self.optimizer, self.learning_rate, self.clip, "global_norm"
        )
        _check_dropout(self.dropout, self.num_layers)
        # refuses rates the cell cannot take (zoneout_c for a gru), naming them
        cell = variant(self.variant, self.hidden_size)
        regularization.regularize(cell, self.rates, self.variant)

    @property
    def label(self) -> str:
        """The name files are written under: the variant and the recurrent regularisers.

        E.g. ``"lstm+zoneout_h0.1+recdrop0.1"``
        (:func:`experiments.shared.regularization.label_suffix`); the dropout between
        layers is not in it, so plain runs keep their ``char_lm_{variant}`` files.
        """
        return self.variant + regularization.label_suffix(self.rates)

    def to_dict(self) -> dict:
        """Every setting; regulariser rates of 0 are left out (records as before)."""
        return regularization.to_dict(dataclasses.asdict(self))


_trainers: dict[tuple[Config, str], Trainer] = {}


def config_model(config: Config, corpus: Corpus) -> CharLM:
    """The :func:`make_model` of ``config`` over ``corpus``'s vocabulary."""
    return make_model(
        config.variant,
        corpus.vocab.size,
        config.hidden_size,
        config.num_layers,
        config.dropout,
        rates=config.rates,
    )


def _sample_key(seed: int) -> Array:
    """The sampling key of a seed: a fourth stream beside (init, train, eval)."""
    return jax.random.split(jax.random.key(seed), 4)[3]


def make_trainer(config: Config, corpus: Corpus) -> Trainer:
    """The trainer of ``config`` on ``corpus`` (one seed: ``config.seed``).

    Step ``n`` trains on ``batch_size`` windows of ``sequence_length + 1`` characters drawn
    from the training text, with dropout masks, both from ``fold_in(train_key, n)``, and
    the recurrent regularisers' masks (if any) from ``fold_in(fold_in(train_key, n), 1)``;
    ``evaluate`` gives ``{"held_out_bpc": [1]}`` on the held-out windows
    (:func:`eval_windows`). The text is passed to the compiled functions, not baked in,
    and equal settings on the same text share one trainer (compiled once).
    """
    cache_key = (config, corpus.sha256)
    if cache_key in _trainers:
        return _trainers[cache_key]
    model = config_model(config, corpus)
    optimizer = training.make_optimizer(
        config.optimizer, config.learning_rate, config.clip, "global_norm"
    )
    window = config.sequence_length + 1
    num_starts = corpus.train.size - window + 1
    held_out = eval_windows(corpus.held_out, config.sequence_length, config.max_eval_windows)
    data = (jnp.asarray(corpus.train), jnp.asarray(held_out))
    regularized = regularization.is_regularized(config.rates)

    def loss_one(params: Readout, key: Array, data: tuple[Array, Array]) -> Array:
        train_ids, _ = data
        data_key, dropout_key = jax.random.split(key)
        recurrent_key = regularization.training_key(key) if regularized else None
        starts = jax.random.randint(data_key, (config.batch_size,), 0, num_starts)
        windows = train_ids[starts[:, None] + jnp.arange(window)[None, :]]  # [B, L + 1]
        return cross_entropy(model, params, windows, dropout_key, recurrent_key)

    def evaluate_one(params: Readout, _key: Array, data: tuple[Array, Array]) -> dict:
        _, windows = data
        chunk_size = min(256, windows.shape[0])
        nats = _total_nats(model, params, windows, chunk_size)
        return {"held_out_bpc": nats / (windows.shape[0] * (windows.shape[1] - 1) * math.log(2))}

    keys = training.seed_keys((config.seed,))
    trainer = training.make_trainer(model.init, loss_one, optimizer, keys, evaluate_one, data)
    _trainers[cache_key] = trainer
    return trainer


def record_path(workdir: str | os.PathLike, label: str) -> Path:
    """Where the final record of a run lives; ``label``: :attr:`Config.label` (or the variant)."""
    return Path(workdir) / f"char_lm_{label}.json"


def checkpoint_path(workdir: str | os.PathLike, label: str) -> Path:
    """Where the run's training state lives; kept after training (the trained model)."""
    return Path(workdir) / "checkpoints" / f"char_lm_{label}.msgpack"


def default_prompt(corpus: Corpus, length: int = 4) -> str:
    """The first ``length`` characters of a line of the held-out text, so always in its vocabulary.

    The first line start in the held-out text with ``length`` characters after it, or the
    held-out text's first characters if it has none.
    """
    text = corpus.vocab.decode(corpus.held_out)
    start = text.find("\n") + 1
    if start == 0 or start + length > len(text):
        start = 0
    return text[start : start + length]


def _history_points(chunk: resume.Chunk, wall_time: float) -> list[dict]:
    return [
        {
            "step": chunk.step,
            "train_bpc": float(chunk.train_losses.mean() / math.log(2)),
            "held_out_bpc": float(chunk.metrics["held_out_bpc"][0]),
            "steps_per_second": chunk.train_losses.shape[0] / chunk.seconds,
            "wall_time": round(wall_time, 3),
        }
    ]


def _progress(config: Config, points: list[dict]) -> str:
    point = points[0]
    return (
        f"char_lm {config.label} step {point['step']:>6}/{config.steps}  "
        f"train bpc {point['train_bpc']:.3f}  held-out bpc {point['held_out_bpc']:.3f}  "
        f"{point['steps_per_second']:.1f} steps/s"
    )


@dataclasses.dataclass(eq=False)
class CharLMExperiment(resume.Experiment):
    """The resumable loop's view of one character-level run (one seed): its checkpoint is
    kept (the trained model), ``steps`` may grow between calls, and the record holds a
    sample drawn from the trained model.

    Attributes:
      config: the training settings.
      corpus: the corpus trained on (its sha256 guards the checkpoint).
      workdir: where the record and ``checkpoints/`` go.
      prompt, temperature, sample_length: what the record's sample is drawn with.
    """

    config: Config
    corpus: Corpus
    workdir: Path
    prompt: str
    temperature: float
    sample_length: int
    neutral_settings: tuple[str, ...] = ("steps",)
    keep_checkpoint: bool = True

    def __post_init__(self):
        config = self.config
        self.name = f"char_lm {config.label}"
        self.settings = config.to_dict()
        self.seeds = (config.seed,)
        self.steps = config.steps
        self.eval_every = config.eval_every
        self.checkpoint = checkpoint_path(self.workdir, config.label)
        self.data_fingerprint = ("corpus text", self.corpus.sha256)
        self._model = config_model(config, self.corpus)

    def record_path(self, seed: int) -> Path:
        return record_path(self.workdir, self.config.label)

    def make_trainer(self, seeds: tuple[int, ...]) -> Trainer:
        return make_trainer(self.config, self.corpus)

    def history_points(self, chunk: resume.Chunk, wall_time: float) -> list[dict]:
        return _history_points(chunk, wall_time)

    def progress(self, step: int, points: list[dict], steps_per_second: float) -> str:
        return _progress(self.config, points)

    def make_record(self, outcome: resume.Outcome, index: int) -> dict:
        config, corpus = self.config, self.corpus
        params = jax.tree_util.tree_map(lambda leaf: leaf[index], outcome.state.params)
        text = sample(
            self._model,
            params,
            corpus.vocab,
            self.prompt,
            self.sample_length,
            self.temperature,
            _sample_key(config.seed),
        )
        history = [points[index] for points in outcome.history]
        return {
            "format": RECORD_FORMAT,
            "variant": config.variant,
            "config": config.to_dict(),
            "corpus": corpus.info(),
            "num_params": outcome.num_params,
            "history": history,
            "final_bpc": history[-1]["held_out_bpc"],
            "uniform_bpc": math.log2(corpus.vocab.size),
            "samples": [{"prompt": self.prompt, "temperature": self.temperature, "text": text}],
            "steps_per_second": outcome.steps_per_second,
            "wall_time": outcome.wall_time,
            "versions": records.software_versions(),
        }


def run_char_lm(
    config: Config,
    corpus: Corpus,
    workdir: str | os.PathLike,
    *,
    prompt: str | None = None,
    temperature: float = 1.0,
    sample_length: int = 300,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
) -> dict | None:
    """Trains (or resumes), evaluates held-out bpc, samples, and writes the record.

    Runs through the shared resumable loop (:func:`experiments.shared.resume.run`): the
    workdir is locked, the training state is checkpointed (atomically) at every
    evaluation and kept when training ends: it is the trained model. Started again with
    the same settings, the run resumes from its checkpoint; once training is complete it
    only samples again (so other prompts and temperatures can be tried) and rewrites the
    record. Started again with a larger ``config.steps`` (and otherwise the same
    settings), it trains on from where it stopped, with the numbers of a run that had
    asked for that many steps from the start (the learning rate is constant).

    Args:
      config: the training settings.
      corpus: from :func:`make_corpus` with ``config.sequence_length``.
      workdir: where ``char_lm_{variant}.json`` and ``checkpoints/`` go.
      prompt: text to feed before sampling; every character must be in the corpus.
        None: :func:`default_prompt`.
      temperature: sampling temperature, > 0.
      sample_length: characters to sample after the prompt.
      log: receives one progress line per evaluation and a few status lines.
      stop_after: stop (as if killed) after this many steps of this call; for tests.

    Returns:
      The record, or None if stopped by ``stop_after`` before the end.

    Raises:
      ValueError: bad sampling settings (checked before any training).
      ConfigMismatchError: the workdir holds this variant's run with other settings.
      WorkdirLockedError, PreemptedError, WriteError: see :func:`experiments.shared.resume.run`.
    """
    _check_temperature(temperature)
    _checks.int_at_least("sample_length", sample_length, 0)
    if prompt is None:
        prompt = default_prompt(corpus)
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("prompt must be a non-empty string.")
    try:
        corpus.vocab.encode(prompt)
    except ValueError as error:
        raise ValueError(f"the prompt has {error}") from None
    experiment = CharLMExperiment(config, corpus, Path(workdir), prompt, temperature, sample_length)
    result = resume.run(experiment, log=log, stop_after=stop_after)
    return result.records[0] if result.records else None
