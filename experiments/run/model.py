"""The synthetic tasks' model: a cell, a linear read-out, the task's loss and accuracy.

The model is a cell (optionally stacked) and a :class:`~experiments.shared.training.Readout`:
a softmax over the 10 classes at every step for the copy task, a scalar at the last step
for the adding problem, a softmax over the classes at the answer position for the
state-tracking tasks (:func:`state_tracking_loss_and_accuracy`). All seeds of one
:class:`Config` train together with :func:`experiments.shared.training.make_trainer`;
the batch of step ``n`` is drawn from ``fold_in(train_key, n)`` and each evaluation's
held-out batch from ``fold_in(eval_key, n)``.

Regularisers (zoneout, variational dropout; :mod:`experiments.shared.regularization`)
wrap every layer when a rate is > 0. Training then draws their masks from
``fold_in(fold_in(train_key, n), 1)``; evaluation runs the cell's deterministic
expectation (no key). With every rate 0 nothing changes: same cell, same numbers, same
records.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax

from experiments.shared import regularization, training
from experiments.shared.training import (
    CLIP_MODES,
    OPTIMIZERS,
    Readout,
    Trainer,
    TrainState,
    apply_readout,
    init_readout,
)
from lstmx import _checks, tasks
from lstmx.cells import Cell, variant, variant_names
from lstmx.sequence import scan, stack

Array = jax.Array

__all__ = [
    "ADDING_TOLERANCE",
    "STATE_TRACKING_TASKS",
    "CLIP_MODES",
    "INITS",
    "LI_INPUT_STD",
    "OPTIMIZERS",
    "TASKS",
    "TASK_DEFAULTS",
    "Config",
    "TrainState",
    "Trainer",
    "loss_and_accuracy",
    "make_cell",
    "make_tester",
    "make_trainer",
    "parse_test_lengths",
    "state_tracking_loss_and_accuracy",
    "task_baseline",
    "task_chance",
]

STATE_TRACKING_TASKS = tasks.STATE_TRACKING_TASKS
TASKS = ("copy", "adding", *STATE_TRACKING_TASKS)
INITS = ("default", "chrono", "li")
LI_INPUT_STD = 1e-3
"""Li et al. (2018)'s input-kernel scale for the IndRNN on the adding problem (their code)."""
ADDING_TOLERANCE = 0.04
"""An adding prediction counts as correct when ``|error| < 0.04`` (Hochreiter & Schmidhuber)."""
TASK_DEFAULTS = {
    "adding": {"length": 50, "batch_size": 50, "steps": 1000},
    "copy": {"length": 100, "batch_size": 20, "steps": 2000},
    **{name: {"length": 40, "batch_size": 128, "steps": 2000} for name in STATE_TRACKING_TASKS},
}
"""Per-task defaults of ``experiments.run`` from the literature (Arjovsky et al. 2016;
Tallec & Ollivier 2018; Delétang et al. 2023's training lengths and batch), shortened
where the README's default comparison must finish in minutes on a laptop (Delétang et
al. train 1,000,000 steps)."""
_STATE_TRACKING_FIELDS = ("test_lengths", "test_batch_size", "modulus")
"""Config fields of the state-tracking tasks only; left out of the other tasks' records."""


def parse_test_lengths(text: str) -> tuple[int, ...]:
    """The test lengths of ``--test_lengths``: ``"A-B"`` (A to B), ``"A-B:S"`` (every S-th
    from A, and B), or one length ``"N"``.

    Raises:
      ValueError: anything else, or a range that is empty or starts below 1.
    """
    shape = "A-B (e.g. 41-500), A-B:S (every S-th, e.g. 41-500:10) or one length N"
    try:
        span, _, stride = str(text).partition(":")
        first, _, last = span.partition("-")
        first, last = int(first), int(last or first)
        stride = int(stride) if stride else 1
    except ValueError:
        raise ValueError(f"test_lengths must be {shape}; got {text!r}.") from None
    if first < 1 or last < first or stride < 1:
        raise ValueError(f"test_lengths must be {shape} with 1 <= A <= B and S >= 1; got {text!r}.")
    lengths = tuple(range(first, last + 1, stride))
    return lengths if lengths[-1] == last else (*lengths, last)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines one training run of one variant (all its seeds).

    Attributes:
      task: "copy", "adding" or a state-tracking task (:data:`STATE_TRACKING_TASKS`).
      variant: a name from :func:`lstmx.variant_names`.
      length: the copy task's delay ``T`` (sequences are ``T + 20`` long), the adding
        problem's sequence length ``T``, or a state-tracking task's longest training
        string (lengths drawn uniformly from 1 to it; ``--train_max_length``).
      steps: optimiser steps.
      batch_size: training examples per step and seed.
      hidden_size: units per layer.
      num_layers: stacked layers of the variant.
      optimizer: "rmsprop" (decay 0.9, as Arjovsky et al. 2016), "adam" or "sgd".
      learning_rate: positive step size.
      clip: gradient clipping threshold (> 0).
      clip_mode: "value" clips each gradient element to ``[-clip, clip]`` (Arjovsky et
        al.'s setting), "global_norm" rescales to global norm ``clip``, "none" disables it.
      init: "default", "chrono" (Tallec & Ollivier 2018, ``t_max`` = 3T/2 for copy and
        T for adding; cells without gates, the rnn, keep their default init) or "li" (the
        indrnn only: Li et al. 2018's adding-problem init, :func:`make_cell`).
      eval_every: steps between evaluations on fresh held-out batches.
      eval_batch_size: examples per seed in each evaluation.
      seeds: the seeds, trained together.
      rates: the recurrent regularisers' five rates, a
        :class:`~experiments.shared.regularization.Rates` (a dict of them is converted);
        all 0 (the default): none.
      test_lengths: state tracking: the test lengths after training (:func:`parse_test_lengths`),
        each above ``length``; Delétang et al. test 41 to 500.
      test_batch_size: state tracking: test strings per length and seed (Delétang et al.: 512).
      modulus: state tracking: modular arithmetic's modulus and cycle navigation's cycle
        length (both 5 in Delétang et al.), >= 2.
    """

    task: str = "adding"
    variant: str = "lstm"
    length: int = 100
    steps: int = 1000
    batch_size: int = 50
    hidden_size: int = 128
    num_layers: int = 1
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-3
    clip: float = 1.0
    clip_mode: str = "value"
    init: str = "default"
    eval_every: int = 100
    eval_batch_size: int = 500
    seeds: tuple[int, ...] = (0, 1, 2)
    rates: regularization.Rates = regularization.NONE
    test_lengths: str = "41-500"
    test_batch_size: int = 128
    modulus: int = 5

    def __post_init__(self):
        if isinstance(self.seeds, list):  # e.g. from JSON; a tuple keeps the config hashable
            object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "rates", regularization.Rates.of(self.rates))
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}.")
        if self.variant not in variant_names():
            raise ValueError(
                f"Unknown variant {self.variant!r}; valid names: {', '.join(variant_names())}."
            )
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; got {self.init!r}.")
        if self.init == "li" and self.variant != "indrnn":
            raise ValueError(
                f'init "li" (Li et al. 2018\'s IndRNN init) is for the indrnn variant only; '
                f"got variant {self.variant!r}."
            )
        minimum_length = 2 if self.task == "adding" else 1
        _checks.int_at_least("length", self.length, minimum_length)
        for name in ("steps", "batch_size", "hidden_size", "num_layers", "eval_every"):
            _checks.positive_int(name, getattr(self, name))
        _checks.positive_int("eval_batch_size", self.eval_batch_size)
        training.check_optimizer_settings(
            self.optimizer, self.learning_rate, self.clip, self.clip_mode
        )
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        for seed in self.seeds:
            _checks.int_at_least("seed", seed, 0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}.")
        if self.state_tracking:
            _checks.positive_int("test_batch_size", self.test_batch_size)
            _checks.int_at_least("modulus", self.modulus, 2)
            lengths = parse_test_lengths(self.test_lengths)
            if lengths[0] <= self.length:
                raise ValueError(
                    f"test_lengths must all be above the training length {self.length} (they "
                    f"test length generalisation); got {self.test_lengths!r}, from {lengths[0]}."
                )
        make_cell(self)  # refuses impossible combinations: chrono init for nfg, zoneout_c for gru

    @property
    def label(self) -> str:
        """The name results are filed and compared under.

        The variant, "+chrono" if so, then the regularisers with their rates
        (:func:`experiments.shared.regularization.label_suffix`), e.g.
        ``"lstm+chrono+zoneout_h0.1+recdrop0.1"``.
        """
        chrono = self.init == "chrono" and self.variant != "rnn"  # the rnn keeps its init
        name = f"{self.variant}+{self.init}" if chrono or self.init == "li" else self.variant
        return name + regularization.label_suffix(self.rates)

    @property
    def state_tracking(self) -> bool:
        """Whether the task is one of :data:`STATE_TRACKING_TASKS`."""
        return self.task in STATE_TRACKING_TASKS

    @property
    def regularized(self) -> bool:
        """Whether a regulariser rate is > 0 (then training draws masks)."""
        return regularization.is_regularized(self.rates)

    @property
    def t_max(self) -> int:
        """Chrono's longest expected dependency: 3T/2 for copy, T for adding."""
        return max(3, 3 * self.length // 2 if self.task == "copy" else self.length)

    def to_dict(self) -> dict:
        """Every setting, JSON-able; regulariser rates of 0 and, for copy and adding, the
        state-tracking settings are left out (records as before)."""
        settings = {**dataclasses.asdict(self), "seeds": list(self.seeds)}
        if not self.state_tracking:
            for name in _STATE_TRACKING_FIELDS:
                del settings[name]
        return regularization.to_dict(settings)


def sequence_length(config: Config) -> int:
    """Steps the cell runs: ``T + 20`` for copy (delay plus the symbols), ``T`` for adding,
    the longest training string and its answer position, ``T + 1``, for state tracking."""
    if config.state_tracking:
        return config.length + 1
    return config.length + tasks.COPY_LENGTH * 2 if config.task == "copy" else config.length


def task_baseline(task: str, length: int, modulus: int = 5) -> float:
    """The memoryless baseline loss of a task (copy: 10 ln 8 / (T + 20); adding: 1/6; state
    tracking: ln C, the cross-entropy of predicting all C classes as equally likely)."""
    if task in STATE_TRACKING_TASKS:
        return math.log(tasks.state_tracking_task(task, modulus).num_classes)
    return tasks.copy_baseline(length) if task == "copy" else tasks.adding_baseline()


def task_chance(task: str, modulus: int = 5) -> float:
    """A state-tracking task's chance accuracy, 1 / C (parity, even pairs: 0.5; modulus 5: 0.2)."""
    return 1.0 / tasks.state_tracking_task(task, modulus).num_classes


def make_cell(config: Config) -> Cell:
    """The config's variant, each layer regularised if a rate is > 0, ``num_layers`` deep.

    ``indrnn`` runs with Li et al. (2018)'s recurrent-weight bound ``2 ** (1 / T)`` for the
    task's sequence length ``T`` (the rule of their adding-problem experiments). With
    ``init="li"`` it also takes the rest of their adding-problem init (their code,
    ``adding/adding.py``): ``w_x ~ N(0, 0.001^2)`` in every layer and, in the last layer,
    ``u ~ U[2 ** (-1 / T), 2 ** (1 / T)]``.
    """
    options: dict[str, Any] = {}
    last_options: dict[str, Any] = {}
    if config.init == "chrono" and config.variant != "rnn":
        options = {"init": "chrono", "t_max": config.t_max}
    if config.variant == "indrnn":
        T = sequence_length(config)
        options["recurrent_max"] = 2 ** (1 / T)
        if config.init == "li":
            options["input_std"] = LI_INPUT_STD
            last_options = {"recurrent_min": 2 ** (-1 / T)}

    def layer(**extra: Any) -> Cell:
        cell = variant(config.variant, config.hidden_size, **options, **extra)
        return regularization.regularize(cell, config.rates, config.variant)

    layers = [layer() for _ in range(config.num_layers - 1)] + [layer(**last_options)]
    return layers[0] if config.num_layers == 1 else stack(layers)


def _batch(config: Config, key: Array, batch_size: int) -> tuple[Any, Any]:
    if config.state_tracking:
        key_lengths, key_strings = jax.random.split(key)
        lengths = tasks.sample_lengths(key_lengths, batch_size, config.length)
        task = tasks.state_tracking_task(config.task, config.modulus)
        return task.generate(key_strings, batch_size, config.length, lengths, config.modulus), None
    if config.task == "copy":
        return tasks.copy_task(key, batch_size, config.length)
    return tasks.adding_task(key, batch_size, config.length)


def loss_and_accuracy(
    config: Config,
    cell: Cell,
    params: Readout,
    inputs: Array,
    targets: Array,
    key: Array | None = None,
) -> tuple[Array, Array]:
    """The task's loss and accuracy of one seed on one batch.

    Copy: mean cross-entropy over all T+20 steps of the logits ``[B, T+20, 10]``; accuracy
    over the 10 recalled symbols. Adding: mean squared error of the prediction ``[B]`` at
    the last step; accuracy = share with ``|error| < 0.04``.

    Args:
      inputs: copy: int ``[B, T + 20]`` tokens; adding: ``[B, T, 2]``; state tracking: a
        :class:`lstmx.tasks.StateTrackingBatch`.
      targets: copy: int ``[B, T + 20]``; adding: ``[B]``; state tracking: unused.
      key: the regularisers' masks while training (a regularised cell only); None runs
        the cell's expectation.
    """
    if config.state_tracking:
        return state_tracking_loss_and_accuracy(config, cell, params, inputs, key)
    if config.task == "copy":
        _, ys = scan(cell, params.cell, jax.nn.one_hot(inputs, tasks.NUM_CLASSES), key=key)
        logits = apply_readout(params, ys)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        recalled = logits[:, -tasks.COPY_LENGTH :].argmax(-1) == targets[:, -tasks.COPY_LENGTH :]
        return loss, recalled.mean()
    _, ys = scan(cell, params.cell, inputs, key=key)
    error = apply_readout(params, ys[:, -1])[:, 0] - targets
    return jnp.mean(error**2), jnp.mean(jnp.abs(error) < ADDING_TOLERANCE)


def state_tracking_loss_and_accuracy(
    config: Config,
    cell: Cell,
    params: Readout,
    batch: tasks.StateTrackingBatch,
    key: Array | None = None,
) -> tuple[Array, Array]:
    """Cross-entropy and accuracy at the answer position of a state-tracking batch.

    As Delétang et al. 2023 (their ``make_model_with_empty_targets``): each string of
    length ``n`` is one-hot encoded over the vocabulary and one extra token, the *answer
    token*, which follows it at position ``n``; the read-out of the cell's output there is
    the prediction. The cell runs each string for its own ``n + 1`` steps (``lengths``).
    Their read-out is ReLU then linear; here it is linear, as for every other task.
    """
    vocab = tasks.state_tracking_task(config.task, config.modulus).vocab_size
    B, T = batch.tokens.shape
    tokens = jnp.concatenate([batch.tokens, jnp.full((B, 1), tasks.PAD, jnp.int32)], axis=1)
    answer_here = jnp.arange(T + 1)[None, :] == batch.lengths[:, None]
    inputs = jax.nn.one_hot(jnp.where(answer_here, vocab, tokens), vocab + 1)  # PAD: zeros
    _, ys = scan(cell, params.cell, inputs, lengths=batch.lengths + 1, key=key)
    at_answer = jnp.take_along_axis(ys, batch.lengths[:, None, None], axis=1)[:, 0]
    logits = apply_readout(params, at_answer)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels).mean()
    return loss, jnp.mean(logits.argmax(-1) == batch.labels)


@functools.lru_cache(maxsize=16)
def make_tester(config: Config):
    """``test(params) -> accuracy [S, len(test_lengths)]``, a state-tracking config's test.

    For each test length, ``test_batch_size`` fresh strings of exactly that length per
    seed, drawn from ``fold_in(fold_in(eval_key, steps + 1), length)``: a stream no
    evaluation during training uses (those fold in steps ``<= steps``). All lengths run in
    one compiled program, padded to the longest. ``params`` are every seed's, stacked.
    """
    cell = make_cell(config)
    lengths = parse_test_lengths(config.test_lengths)
    longest = lengths[-1]
    task = tasks.state_tracking_task(config.task, config.modulus)
    # The eval key of each seed, as experiments.shared.training.make_trainer splits it.
    eval_keys = jax.vmap(lambda key: jax.random.split(key, 3)[2])(training.seed_keys(config.seeds))
    test_keys = jax.vmap(lambda key: jax.random.fold_in(key, config.steps + 1))(eval_keys)

    def accuracy_at(params: Readout, key: Array, length: Array) -> Array:
        batch = task.generate(
            jax.random.fold_in(key, length),
            config.test_batch_size,
            longest,
            jnp.full((config.test_batch_size,), length, jnp.int32),
            config.modulus,
        )
        return state_tracking_loss_and_accuracy(config, cell, params, batch)[1]

    def test_one(params: Readout, key: Array) -> Array:
        return jax.lax.map(lambda n: accuracy_at(params, key, n), jnp.asarray(lengths))

    compiled = jax.jit(jax.vmap(test_one))
    return lambda params: compiled(params, test_keys)


@functools.lru_cache(maxsize=16)
def make_trainer(config: Config) -> Trainer:
    """The multi-seed trainer of ``config``; ``evaluate`` gives ``{"loss", "accuracy"}`` [S].

    A regularised config trains with masks from ``fold_in(step_key, 1)`` and evaluates
    the expectation (no masks).

    Cached: equal configs share one trainer, so its functions compile once.
    """
    cell = make_cell(config)
    optimizer = training.make_optimizer(
        config.optimizer, config.learning_rate, config.clip, config.clip_mode
    )
    input_size = tasks.NUM_CLASSES if config.task == "copy" else 2
    num_outputs = tasks.NUM_CLASSES if config.task == "copy" else 1
    if config.state_tracking:
        task = tasks.state_tracking_task(config.task, config.modulus)
        input_size, num_outputs = task.vocab_size + 1, task.num_classes  # + the answer token

    def init_one(key: Array) -> Readout:
        return init_readout(key, cell, input_size, num_outputs)

    def loss_one(params: Readout, key: Array, _data) -> Array:
        inputs, targets = _batch(config, key, config.batch_size)
        masks = regularization.training_key(key) if config.regularized else None
        return loss_and_accuracy(config, cell, params, inputs, targets, masks)[0]

    def evaluate_one(params: Readout, key: Array, _data) -> dict[str, Array]:
        inputs, targets = _batch(config, key, config.eval_batch_size)
        loss, accuracy = loss_and_accuracy(config, cell, params, inputs, targets)
        return {"loss": loss, "accuracy": accuracy}

    keys = training.seed_keys(config.seeds)
    return training.make_trainer(init_one, loss_one, optimizer, keys, evaluate_one)
