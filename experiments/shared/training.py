"""Training a cell on the long-dependency tasks, every seed at once.

The model is a cell (optionally stacked) and a linear read-out: a softmax over the 10
classes at every step for the copy task, a scalar at the last step for the adding
problem. All seeds of one configuration train in one compiled program (``jax.vmap`` over
seeds), so a 5-seed comparison costs far less than 5 runs.

Randomness is a pure function of ``(seed, step)``: seed ``s`` initialises from
``key(s)``, and the training batch of step ``n`` is drawn from ``fold_in(data_key, n)``.
Training is therefore deterministic and a run resumed from a checkpoint at step ``n``
continues exactly as the uninterrupted run would have.

A seed whose loss or gradients become NaN/Inf stops updating (its parameters freeze) and
records the step; the other seeds in the same program go on.

Devices: the seed axis of the training state is spread over all devices (``jax.devices()``,
every process's under ``jax.distributed``) with a 1-D :class:`jax.sharding.Mesh` whose axis
is ``"seeds"`` and a ``NamedSharding(mesh, PartitionSpec("seeds"))``; each device trains
its own seeds, and the per-seed numerics are those of the one-device run (``vmap`` per
seed; results agree to float rounding). When the seeds do not split evenly over the
devices, a single process uses the largest number of its devices that does split them
(possibly one) and warns once; several processes then replicate the state on every device.
Padding with dummy seeds would use more devices but change the state's shape, and with it
the checkpoints, between machines. The batch of a seed is not split over devices.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lstmx import _checks, tasks
from lstmx.cells import Cell, variant, variant_names
from lstmx.sequence import scan, stack

Array = jax.Array

__all__ = [
    "OPTIMIZERS",
    "SEED_AXIS",
    "TASKS",
    "Config",
    "ModelParams",
    "TrainState",
    "Trainer",
    "make_cell",
    "make_optimizer",
    "make_trainer",
    "task_baseline",
]

TASKS = ("copy", "adding")
OPTIMIZERS = ("rmsprop", "adam", "sgd")
CLIP_MODES = ("value", "global_norm", "none")
SEED_AXIS = "seeds"
"""The name of the device mesh axis the seeds are spread over."""
ADDING_TOLERANCE = 0.04
"""An adding prediction counts as correct when ``|error| < 0.04`` (Hochreiter & Schmidhuber)."""


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
      init: "default" or "chrono" (Tallec & Ollivier 2018, ``t_max`` = 3T/2 for copy and
        T for adding). Cells without gates (rnn) keep their default init.
      eval_every: steps between evaluations on fresh held-out batches.
      eval_batch_size: examples per seed in each evaluation.
      seeds: the seeds, trained together.
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

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}.")
        if self.variant not in variant_names():
            raise ValueError(
                f"Unknown variant {self.variant!r}; valid names: {', '.join(variant_names())}."
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {self.optimizer!r}."
            )
        if self.clip_mode not in CLIP_MODES:
            raise ValueError(
                f"clip_mode must be one of {', '.join(CLIP_MODES)}; got {self.clip_mode!r}."
            )
        if self.init not in ("default", "chrono"):
            raise ValueError(f'init must be "default" or "chrono"; got {self.init!r}.')
        minimum_length = 2 if self.task == "adding" else 1
        _checks.int_at_least("length", self.length, minimum_length)
        for name in ("steps", "batch_size", "hidden_size", "num_layers", "eval_every"):
            _checks.positive_int(name, getattr(self, name))
        _checks.positive_int("eval_batch_size", self.eval_batch_size)
        for name in ("learning_rate", "clip"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value}.")
        if not self.seeds:
            raise ValueError("seeds must name at least one seed.")
        for seed in self.seeds:
            _checks.int_at_least("seed", seed, 0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct, got {list(self.seeds)}.")
        make_cell(self)  # refuses impossible combinations, e.g. chrono init for nfg

    @property
    def label(self) -> str:
        """The name results are filed and compared under: the variant, "+chrono" if so."""
        chrono = self.init == "chrono" and self.variant != "rnn"  # the rnn keeps its init
        return f"{self.variant}+chrono" if chrono else self.variant

    @property
    def t_max(self) -> int:
        """Chrono's longest expected dependency: 3T/2 for copy, T for adding."""
        return max(3, 3 * self.length // 2 if self.task == "copy" else self.length)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "seeds": list(self.seeds)}


def task_baseline(task: str, length: int) -> float:
    """The memoryless baseline loss of a task (copy: 10 ln 8 / (T + 20); adding: 1/6)."""
    return tasks.copy_baseline(length) if task == "copy" else tasks.adding_baseline()


def make_cell(config: Config) -> Cell:
    """The config's variant, stacked ``num_layers`` deep."""
    options: dict[str, Any] = {}
    if config.init == "chrono" and config.variant != "rnn":
        options = {"init": "chrono", "t_max": config.t_max}
    layers = [variant(config.variant, config.hidden_size, **options)] * config.num_layers
    return layers[0] if config.num_layers == 1 else stack(layers)


@functools.lru_cache(maxsize=64)
def make_optimizer(
    name: str, learning_rate: float, clip: float, clip_mode: str = "value"
) -> optax.GradientTransformation:
    """Clipping, then "rmsprop" (decay 0.9, as Arjovsky et al. 2016), "adam" or "sgd".

    Cached, so equal settings give the same object and jitted steps are reused.
    """
    if name == "rmsprop":
        optimizer = optax.rmsprop(learning_rate, decay=0.9)
    elif name == "adam":
        optimizer = optax.adam(learning_rate)
    else:
        optimizer = optax.sgd(learning_rate)
    if clip_mode == "value":
        return optax.chain(optax.clip(clip), optimizer)
    if clip_mode == "global_norm":
        return optax.chain(optax.clip_by_global_norm(clip), optimizer)
    return optimizer


class ModelParams(NamedTuple):
    """Cell parameters and the linear read-out ``w_out [O, C]``, ``b_out [C]``."""

    cell: Any
    w_out: Array
    b_out: Array


class TrainState(NamedTuple):
    """Training state of all seeds; every leaf but ``step`` has a leading seed axis [S].

    Attributes:
      params: :class:`ModelParams` per seed.
      opt_state: optimiser state per seed.
      step: steps taken so far (shared by all seeds).
      diverged_step: ``[S]`` the step at which a seed's loss or gradients became
        non-finite, or -1 while it trains.
    """

    params: ModelParams
    opt_state: Any
    step: Array
    diverged_step: Array


class Trainer(NamedTuple):
    """Compiled functions for one :class:`Config`.

    Attributes:
      init: ``init() -> TrainState`` for all seeds, placed with ``sharding``.
      train: ``train(state, num_steps) -> (state, train_losses [num_steps, S])``; donates
        ``state``, which may also be a host copy (numpy leaves, e.g. from a checkpoint).
      evaluate: ``evaluate(state) -> {"loss": [S], "accuracy": [S]}`` on a fresh
        held-out batch drawn for this step.
      num_params: trainable parameters of one seed's model.
      sharding: the :class:`TrainState` layout, a prefix pytree of ``NamedSharding``: the
        seed axis (``PartitionSpec("seeds")``) of every leaf but ``step`` (replicated).
      place: ``place(state) -> state``: puts a state (jax or numpy leaves) on the
        devices with ``sharding``; ``train`` and ``evaluate`` do it themselves.
    """

    init: Callable[[], TrainState]
    train: Callable[[TrainState, int], tuple[TrainState, Array]]
    evaluate: Callable[[TrainState], dict[str, Array]]
    num_params: int
    sharding: TrainState | None = None
    place: Callable[[Any], TrainState] | None = None


def _batch(config: Config, key: Array, batch_size: int) -> tuple[Array, Array]:
    if config.task == "copy":
        return tasks.copy_task(key, batch_size, config.length)
    return tasks.adding_task(key, batch_size, config.length)


def _loss_and_accuracy(
    config: Config, cell: Cell, params: ModelParams, inputs: Array, targets: Array
) -> tuple[Array, Array]:
    """Copy: mean cross-entropy over all T+20 steps, accuracy over the 10 recalled symbols.

    Adding: mean squared error at the last step, accuracy = share with |error| < 0.04.
    """
    if config.task == "copy":
        xs = jax.nn.one_hot(inputs, tasks.NUM_CLASSES)
        _, ys = scan(cell, params.cell, xs)
        logits = ys @ params.w_out
        logits = logits + jnp.broadcast_to(params.b_out, logits.shape)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()
        recalled = logits[:, -tasks.COPY_LENGTH :].argmax(-1) == targets[:, -tasks.COPY_LENGTH :]
        return loss, recalled.mean()
    _, ys = scan(cell, params.cell, inputs)
    prediction = ys[:, -1] @ params.w_out[:, 0] + params.b_out[0]
    error = prediction - targets
    return jnp.mean(error**2), jnp.mean(jnp.abs(error) < ADDING_TOLERANCE)


def _seed_keys(seeds: tuple[int, ...]) -> tuple[Array, Array, Array]:
    """Per-seed (init, data, eval) keys, each [S]."""
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(jnp.asarray(seeds))
    return keys[:, 0], keys[:, 1], keys[:, 2]


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=4)


def _seed_mesh(num_seeds: int) -> tuple[Mesh, PartitionSpec]:
    """The mesh the seeds are spread over and the partition of the seed axis.

    All devices when they split the seeds evenly. Otherwise, in one process, the largest
    number of devices that does (down to one); in several processes every device must
    take part, so the state is replicated instead. Either way a warning says so, once.
    """
    devices = jax.devices()
    if num_seeds % len(devices) == 0:
        return Mesh(np.array(devices), (SEED_AXIS,)), PartitionSpec(SEED_AXIS)
    if jax.process_count() > 1:
        _warn_once(
            f"lstmx.training: {num_seeds} seeds do not split evenly over {len(devices)} "
            f"devices; every device trains all of them. Use a multiple of {len(devices)} "
            "seeds to spread them."
        )
        return Mesh(np.array(devices), (SEED_AXIS,)), PartitionSpec()
    used = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    _warn_once(
        f"lstmx.training: {num_seeds} seeds do not split evenly over {len(devices)} "
        f"devices; training on {used} of them. Use a multiple of {len(devices)} seeds to "
        "use them all."
    )
    return Mesh(np.array(devices[:used]), (SEED_AXIS,)), PartitionSpec(SEED_AXIS)


def _put(leaf: Any, sharding: NamedSharding) -> Array:
    """One array onto ``sharding``; host data through a callback so it works multi-host."""
    if isinstance(leaf, jax.Array):
        return leaf if leaf.sharding == sharding else jax.device_put(leaf, sharding)
    value = np.asarray(leaf)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def make_trainer(config: Config) -> Trainer:
    """Builds the jitted init/train/evaluate functions for ``config``."""
    cell = make_cell(config)
    optimizer = make_optimizer(
        config.optimizer, config.learning_rate, config.clip, config.clip_mode
    )
    input_size = tasks.NUM_CLASSES if config.task == "copy" else 2
    num_outputs = tasks.NUM_CLASSES if config.task == "copy" else 1
    init_keys, data_keys, eval_keys = _seed_keys(config.seeds)
    loss_fn = partial(_loss_and_accuracy, config, cell)

    def init_one(key: Array) -> tuple[ModelParams, Any]:
        key_cell, key_out = jax.random.split(key)
        w_out = jax.nn.initializers.lecun_normal()(key_out, (cell.output_size, num_outputs))
        params = ModelParams(cell.init(key_cell, input_size), w_out, jnp.zeros((num_outputs,)))
        return params, optimizer.init(params)

    mesh, seed_spec = _seed_mesh(len(config.seeds))
    by_seed = NamedSharding(mesh, seed_spec)
    replicated = NamedSharding(mesh, PartitionSpec())
    sharding = TrainState(by_seed, by_seed, replicated, by_seed)
    losses_sharding = NamedSharding(mesh, PartitionSpec(None, *seed_spec))

    def place(state: Any) -> TrainState:
        return jax.tree_util.tree_map(
            lambda where, part: jax.tree_util.tree_map(lambda leaf: _put(leaf, where), part),
            sharding,
            TrainState(*state),
        )

    @partial(jax.jit, out_shardings=sharding)
    def init() -> TrainState:
        params, opt_state = jax.vmap(init_one)(init_keys)
        diverged = jnp.full((len(config.seeds),), -1, jnp.int32)
        return TrainState(params, opt_state, jnp.zeros((), jnp.int32), diverged)

    def train_one(params, opt_state, diverged_step, data_key, step):
        inputs, targets = _batch(config, jax.random.fold_in(data_key, step), config.batch_size)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, inputs, targets)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        training = diverged_step < 0
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        keep = finite & training

        def select(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, old)

        diverged_step = jnp.where(training & ~finite, step, diverged_step)
        return select(new_params, params), select(new_opt_state, opt_state), diverged_step, loss

    @partial(
        jax.jit,
        static_argnums=1,
        donate_argnums=0,
        in_shardings=(sharding,),
        out_shardings=(sharding, losses_sharding),
    )
    def train_placed(state: TrainState, num_steps: int) -> tuple[TrainState, Array]:
        def one_step(state: TrainState, _):
            params, opt_state, diverged, loss = jax.vmap(train_one, (0, 0, 0, 0, None))(
                state.params, state.opt_state, state.diverged_step, data_keys, state.step
            )
            return TrainState(params, opt_state, state.step + 1, diverged), loss

        return jax.lax.scan(one_step, state, None, length=num_steps)

    def train(state: TrainState, num_steps: int) -> tuple[TrainState, Array]:
        return train_placed(place(state), num_steps)

    @partial(jax.jit, in_shardings=(sharding,), out_shardings=by_seed)
    def evaluate_placed(state: TrainState) -> dict[str, Array]:
        def evaluate_one(params, eval_key):
            key = jax.random.fold_in(eval_key, state.step)
            inputs, targets = _batch(config, key, config.eval_batch_size)
            loss, accuracy = loss_fn(params, inputs, targets)
            return {"loss": loss, "accuracy": accuracy}

        return jax.vmap(evaluate_one)(state.params, eval_keys)

    def evaluate(state: TrainState) -> dict[str, Array]:
        return evaluate_placed(place(state))

    one_seed = jax.eval_shape(init_one, jax.random.key(0))[0]
    num_params = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(one_seed))
    return Trainer(init, train, evaluate, num_params, sharding, place)
