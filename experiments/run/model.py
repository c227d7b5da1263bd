"""The long-dependency tasks' model: a cell, a linear read-out, the task's loss and accuracy.

The model is a cell (optionally stacked) and a :class:`~experiments.shared.training.Readout`:
a softmax over the 10 classes at every step for the copy task, a scalar at the last step
for the adding problem. All seeds of one :class:`Config` train together with
:func:`experiments.shared.training.make_trainer`; the batch of step ``n`` is drawn from
``fold_in(train_key, n)`` and each evaluation's held-out batch from
``fold_in(eval_key, n)``.

Regularisers (zoneout, variational dropout; :mod:`experiments.shared.regularization`)
wrap every layer when a rate is > 0. Training then draws their masks from
``fold_in(fold_in(train_key, n), 1)``; evaluation runs the cell's deterministic
expectation (no key). With every rate 0 nothing changes: same cell, same numbers, same
records.
"""

from __future__ import annotations

import dataclasses
import functools
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
    "make_trainer",
    "task_baseline",
]

TASKS = ("copy", "adding")
INITS = ("default", "chrono", "li")
LI_INPUT_STD = 1e-3
"""Li et al. (2018)'s input-kernel scale for the IndRNN on the adding problem (their code)."""
ADDING_TOLERANCE = 0.04
"""An adding prediction counts as correct when ``|error| < 0.04`` (Hochreiter & Schmidhuber)."""
TASK_DEFAULTS = {
    "adding": {"length": 50, "batch_size": 50, "steps": 1000},
    "copy": {"length": 100, "batch_size": 20, "steps": 2000},
}
"""Per-task defaults of ``experiments.run`` from the literature (Arjovsky et al. 2016;
Tallec & Ollivier 2018), shortened where the README's default comparison must finish in
minutes on a laptop."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines one training run of one variant (all its seeds).

    Attributes:
      task: "copy" or "adding".
      variant: a name from :func:`lstmx.variant_names`.
      length: the copy task's delay ``T`` (sequences are ``T + 20`` long) or the adding
        problem's sequence length ``T``.
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
      zoneout_h: zoneout probability on ``h`` while training, [0, 1] (Krueger et al. 2016).
      zoneout_c: zoneout probability on ``c``, [0, 1]; cells whose state has ``c`` only.
      input_dropout: variational dropout on the input, [0, 1) (Gal & Ghahramani 2016).
      recurrent_dropout: variational dropout on ``h_{t-1}`` as the step reads it, [0, 1).
      candidate_dropout: dropout on the LSTM block input ``g`` per step, [0, 1) (Semeniuta
        et al. 2016); LSTM variants only.
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
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    candidate_dropout: float = 0.0

    def __post_init__(self):
        if isinstance(self.seeds, list):  # e.g. from JSON; a tuple keeps the config hashable
            object.__setattr__(self, "seeds", tuple(self.seeds))
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
        regularization.check_rates(self)
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
        return name + regularization.label_suffix(self)

    @property
    def regularized(self) -> bool:
        """Whether a regulariser rate is > 0 (then training draws masks)."""
        return regularization.is_regularized(self)

    @property
    def t_max(self) -> int:
        """Chrono's longest expected dependency: 3T/2 for copy, T for adding."""
        return max(3, 3 * self.length // 2 if self.task == "copy" else self.length)

    def to_dict(self) -> dict:
        """Every setting, JSON-able; regulariser rates of 0 are left out (records as before)."""
        settings = {**dataclasses.asdict(self), "seeds": list(self.seeds)}
        return regularization.to_dict(settings)


def sequence_length(config: Config) -> int:
    """Steps the cell runs: ``T + 20`` for copy (delay plus the symbols), ``T`` for adding."""
    return config.length + tasks.COPY_LENGTH * 2 if config.task == "copy" else config.length


def task_baseline(task: str, length: int) -> float:
    """The memoryless baseline loss of a task (copy: 10 ln 8 / (T + 20); adding: 1/6)."""
    return tasks.copy_baseline(length) if task == "copy" else tasks.adding_baseline()


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
        return regularization.regularize(cell, config, config.variant)

    layers = [layer() for _ in range(config.num_layers - 1)] + [layer(**last_options)]
    return layers[0] if config.num_layers == 1 else stack(layers)


def _batch(config: Config, key: Array, batch_size: int) -> tuple[Array, Array]:
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
      inputs: copy: int ``[B, T + 20]`` tokens; adding: ``[B, T, 2]``.
      targets: copy: int ``[B, T + 20]``; adding: ``[B]``.
      key: the regularisers' masks while training (a regularised cell only); None runs
        the cell's expectation.
    """
    if config.task == "copy":
        _, ys = scan(cell, params.cell, jax.nn.one_hot(inputs, tasks.NUM_CLASSES), key=key)
        logits = apply_readout(params, ys)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        recalled = logits[:, -tasks.COPY_LENGTH :].argmax(-1) == targets[:, -tasks.COPY_LENGTH :]
        return loss, recalled.mean()
    _, ys = scan(cell, params.cell, inputs, key=key)
    error = apply_readout(params, ys[:, -1])[:, 0] - targets
    return jnp.mean(error**2), jnp.mean(jnp.abs(error) < ADDING_TOLERANCE)


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
