"""The multi-seed trainer every experiment uses, the linear read-out, and the optimiser.

An experiment says what one seed's model and loss are (:func:`make_trainer`'s
``init_one``, ``loss_one`` and ``evaluate_one``); this module trains all its seeds in one
compiled program (``jax.vmap`` over seeds), so a 5-seed comparison costs far less than 5
runs.

Randomness is a pure function of ``(seed, step)``: seed ``s`` has a root key (usually
``key(s)``) split into ``(init, train, eval)`` keys; the model initialises from the init
key, the loss of step ``n`` gets ``fold_in(train_key, n)`` and the evaluation after step
``n`` gets ``fold_in(eval_key, n)``. Training is therefore deterministic, and a run
resumed from a checkpoint at step ``n`` continues exactly as the uninterrupted run would
have.

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

from lstmx.cells import Cell

Array = jax.Array

__all__ = [
    "CLIP_MODES",
    "OPTIMIZERS",
    "SEED_AXIS",
    "Readout",
    "TrainState",
    "Trainer",
    "apply_readout",
    "check_optimizer_settings",
    "init_readout",
    "make_optimizer",
    "make_trainer",
    "seed_keys",
]

OPTIMIZERS = ("rmsprop", "adam", "sgd")
CLIP_MODES = ("value", "global_norm", "none")
SEED_AXIS = "seeds"
"""The name of the device mesh axis the seeds are spread over."""


# --------------------------------------------------------------------------------------
# The read-out on top of a cell.
# --------------------------------------------------------------------------------------


class Readout(NamedTuple):
    """A cell's parameters and a linear head on its outputs.

    Attributes:
      cell: the cell's params (any lstmx cell, stacked ones included).
      w_out: read-out kernel ``[O, C]``; ``O`` is the cell's output size.
      b_out: read-out bias ``[C]``.
    """

    cell: Any
    w_out: Array
    b_out: Array


def init_readout(key: Array, cell: Cell, input_size: int, num_outputs: int) -> Readout:
    """The cell's own init and a LeCun-normal ``w_out [O, C]``, zero ``b_out [C]``."""
    key_cell, key_out = jax.random.split(key)
    w_out = jax.nn.initializers.lecun_normal()(
        key_out, (cell.output_size, num_outputs), jnp.float32
    )
    return Readout(cell.init(key_cell, input_size), w_out, jnp.zeros((num_outputs,), jnp.float32))


def apply_readout(params: Readout, ys: Array) -> Array:
    """The linear head: cell outputs ``[*B, O]`` to ``[*B, C]``."""
    out = ys @ params.w_out
    return out + jnp.broadcast_to(params.b_out, out.shape)


# --------------------------------------------------------------------------------------
# Optimiser.
# --------------------------------------------------------------------------------------


def check_optimizer_settings(optimizer: str, learning_rate: Any, clip: Any, clip_mode: str) -> None:
    """The one check of every experiment Config's optimiser fields; raises naming the field."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {optimizer!r}.")
    if clip_mode not in CLIP_MODES:
        raise ValueError(f"clip_mode must be one of {', '.join(CLIP_MODES)}; got {clip_mode!r}.")
    for name, value in (("learning_rate", learning_rate), ("clip", clip)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value}.")


@functools.lru_cache(maxsize=64)
def make_optimizer(
    name: str, learning_rate: float, clip: float, clip_mode: str = "value"
) -> optax.GradientTransformation:
    """Clipping, then "rmsprop" (decay 0.9, as Arjovsky et al. 2016), "adam" or "sgd".

    ``clip_mode`` "value" clips each gradient element to ``[-clip, clip]``, "global_norm"
    rescales to global norm ``clip``, "none" does not clip. Cached, so equal settings give
    the same object and jitted steps are reused.
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


# --------------------------------------------------------------------------------------
# The trainer.
# --------------------------------------------------------------------------------------


class TrainState(NamedTuple):
    """Training state of all seeds; every leaf but ``step`` has a leading seed axis [S].

    Attributes:
      params: the model parameters per seed (e.g. a :class:`Readout`).
      opt_state: optimiser state per seed.
      step: steps taken so far (shared by all seeds).
      diverged_step: ``[S]`` the step at which a seed's loss or gradients became
        non-finite, or -1 while it trains.
    """

    params: Any
    opt_state: Any
    step: Array
    diverged_step: Array


class Trainer(NamedTuple):
    """Compiled functions for one experiment's seeds.

    Attributes:
      init: ``init() -> TrainState`` for all seeds, placed with ``sharding``.
      train: ``train(state, num_steps) -> (state, train_losses [num_steps, S])``; donates
        ``state``, which may also be a host copy (numpy leaves, e.g. from a checkpoint).
      evaluate: ``evaluate(state) -> {name: [S]}``, what ``evaluate_one`` returns, per seed.
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
    sharding: TrainState
    place: Callable[[Any], TrainState]


def seed_keys(seeds: tuple[int, ...]) -> Array:
    """The root key of each seed, ``key(seed)``: ``[S]``."""
    return jax.vmap(jax.random.key)(jnp.asarray(seeds))


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
            f"experiments.shared.training: {num_seeds} seeds do not split evenly over "
            f"{len(devices)} devices; every device trains all of them. Use a multiple of "
            f"{len(devices)} seeds to spread them."
        )
        return Mesh(np.array(devices), (SEED_AXIS,)), PartitionSpec()
    used = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
    _warn_once(
        f"experiments.shared.training: {num_seeds} seeds do not split evenly over {len(devices)} "
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


def _all_finite(loss: Array, grads: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]
    return jnp.isfinite(loss) & jnp.all(jnp.array(leaves))


def make_trainer(
    init_one: Callable[[Array], Any],
    loss_one: Callable[[Any, Array, Any], Array],
    optimizer: optax.GradientTransformation,
    keys: Array,
    evaluate_one: Callable[[Any, Array, Any], dict[str, Array]],
    data: Any = (),
) -> Trainer:
    """Builds the jitted init/train/evaluate functions of all seeds.

    Args:
      init_one: ``init_one(key) -> params`` of one seed.
      loss_one: ``loss_one(params, key, data) -> loss []`` of one seed's training batch;
        ``key`` is ``fold_in(train_key, step)``.
      optimizer: an optax transformation (e.g. from :func:`make_optimizer`).
      keys: ``[S]`` one root key per seed (e.g. :func:`seed_keys`); each is split into
        ``(init, train, eval)`` keys.
      evaluate_one: ``evaluate_one(params, key, data) -> {name: []}`` of one seed;
        ``key`` is ``fold_in(eval_key, step)``.
      data: a pytree of arrays the loss and evaluation read (e.g. a text), passed to the
        compiled functions rather than baked into them; replicated on every device.

    Returns:
      The :class:`Trainer`.
    """
    num_seeds = keys.shape[0]
    split = jax.vmap(lambda key: jax.random.split(key, 3))(keys)
    init_keys, train_keys, eval_keys = split[:, 0], split[:, 1], split[:, 2]

    mesh, seed_spec = _seed_mesh(num_seeds)
    by_seed = NamedSharding(mesh, seed_spec)
    replicated = NamedSharding(mesh, PartitionSpec())
    sharding = TrainState(by_seed, by_seed, replicated, by_seed)
    losses_sharding = NamedSharding(mesh, PartitionSpec(None, *seed_spec))
    data = jax.tree_util.tree_map(lambda leaf: _put(leaf, replicated), data)

    def place(state: Any) -> TrainState:
        return jax.tree_util.tree_map(
            lambda where, part: jax.tree_util.tree_map(lambda leaf: _put(leaf, where), part),
            sharding,
            TrainState(*state),
        )

    def init_with_optimizer(key: Array) -> tuple[Any, Any]:
        params = init_one(key)
        return params, optimizer.init(params)

    @partial(jax.jit, out_shardings=sharding)
    def init() -> TrainState:
        params, opt_state = jax.vmap(init_with_optimizer)(init_keys)
        diverged = jnp.full((num_seeds,), -1, jnp.int32)
        return TrainState(params, opt_state, jnp.zeros((), jnp.int32), diverged)

    def train_one(params, opt_state, diverged_step, train_key, step, data):
        key = jax.random.fold_in(train_key, step)
        loss, grads = jax.value_and_grad(loss_one)(params, key, data)
        training = diverged_step < 0
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        finite = _all_finite(loss, grads)
        keep = finite & training

        def select(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), new, old)

        diverged_step = jnp.where(training & ~finite, step, diverged_step)
        return select(new_params, params), select(new_opt_state, opt_state), diverged_step, loss

    @partial(
        jax.jit,
        static_argnums=1,
        donate_argnums=0,
        in_shardings=(sharding, replicated),
        out_shardings=(sharding, losses_sharding),
    )
    def train_placed(state: TrainState, num_steps: int, data: Any) -> tuple[TrainState, Array]:
        def one_step(state: TrainState, _):
            params, opt_state, diverged, loss = jax.vmap(train_one, (0, 0, 0, 0, None, None))(
                state.params, state.opt_state, state.diverged_step, train_keys, state.step, data
            )
            return TrainState(params, opt_state, state.step + 1, diverged), loss

        return jax.lax.scan(one_step, state, None, length=num_steps)

    def train(state: TrainState, num_steps: int) -> tuple[TrainState, Array]:
        return train_placed(place(state), num_steps, data)

    @partial(jax.jit, in_shardings=(sharding, replicated), out_shardings=by_seed)
    def evaluate_placed(state: TrainState, data: Any) -> dict[str, Array]:
        def one_seed(params, eval_key):
            return evaluate_one(params, jax.random.fold_in(eval_key, state.step), data)

        return jax.vmap(one_seed)(state.params, eval_keys)

    def evaluate(state: TrainState) -> dict[str, Array]:
        return evaluate_placed(place(state), data)

    one_seed = jax.eval_shape(init_one, jax.random.key(0))
    num_params = sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(one_seed))
    return Trainer(init, train, evaluate, num_params, sharding, place)
