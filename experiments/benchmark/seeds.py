"""Many seeds for the price of few: one vmapped training step against a loop over seeds.

The experiments train every seed of a variant in one compiled program, ``jax.vmap`` over
the seed axis (:mod:`experiments.shared.training`). This section of the benchmark times
one training step of the default adding run (T = 50, batch 50 per seed, hidden 128, one
layer, a linear read-out of the last output, RMSProp 1e-3 after elementwise clipping at 1:
``python -m experiments.run``'s settings) for S seeds in three ways, interleaved:

* **vmapped**: one jitted ``vmap`` over S seeds of loss, gradient and optax update;
* **one after another**: the 1-seed program called S times (what a loop over seeds costs);
* the same two with Flax's ``nn.RNN(nn.LSTMCell)`` and a ``nn.Dense`` read-out in place of
  lstmx, built the same way.

Each seed has its own parameters, optimiser state and batch (fixed, generated once).
Reported per S: the median milliseconds of each, and ``vmapped(S) / vmapped(1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.shared.training import make_optimizer

__all__ = ["DEFAULT_SEED_COUNTS", "SETTINGS", "run_seeds_benchmark"]

DEFAULT_SEED_COUNTS = (1, 5, 20)
SETTINGS = {"task": "adding", "length": 50, "batch_size": 50, "hidden_size": 128}
LIBRARIES = ("lstmx", "flax")


def _model(library: str) -> tuple[Callable, Callable]:
    """``(init(key) -> params, predict(params, xs [B, T, 2]) -> [B])`` of one seed."""
    hidden = SETTINGS["hidden_size"]
    if library == "lstmx":
        import lstmx
        from experiments.shared.training import apply_readout, init_readout

        cell = lstmx.lstm(hidden)

        def init(key):
            return init_readout(key, cell, 2, 1)

        def predict(params, xs):
            final, _ = lstmx.scan(cell, params.cell, xs)
            return apply_readout(params, final.h)[..., 0]

        return init, predict
    import flax.linen as nn

    class Model(nn.Module):
        @nn.compact
        def __call__(self, xs):
            carry, _ = nn.RNN(nn.LSTMCell(hidden), return_carry=True)(xs)
            return nn.Dense(1)(carry[1])[..., 0]  # the LSTMCell carry is (c, h)

    model = Model()
    example = jnp.zeros((1, SETTINGS["length"], 2))
    return (lambda key: model.init(key, example)), model.apply


def _train_step(library: str) -> tuple[Callable, Callable]:
    """``(init(keys [S]) -> (params, opt_state), step(params, opt_state, xs, ys))`` vmapped
    over a leading seed axis; ``step`` is jitted and returns the new params, state, loss."""
    init_one, predict = _model(library)
    optimizer = make_optimizer("rmsprop", 1e-3, 1.0, "value")

    def init(keys):
        # One key at a time: Flax's orthogonal initialiser under vmap is a batched LAPACK
        # QR, which can deadlock XLA:CPU (see lstmx.cells.base.orthogonal).
        params = jax.lax.map(init_one, keys)
        return params, jax.vmap(optimizer.init)(params)

    def one_seed(params, opt_state, xs, ys):
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((predict(p, xs) - ys) ** 2))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return init, jax.jit(jax.vmap(one_seed))


def _data(num_seeds: int) -> tuple[jax.Array, jax.Array]:
    import lstmx

    keys = jax.random.split(jax.random.key(1), num_seeds)
    return jax.vmap(
        lambda key: lstmx.tasks.adding_task(key, SETTINGS["batch_size"], SETTINGS["length"])
    )(keys)


def _prepared(library: str, num_seeds: int) -> Callable[[], Any]:
    """A no-argument call of one training step of ``num_seeds`` vmapped seeds."""
    init, step = _train_step(library)
    params, opt_state = init(jax.random.split(jax.random.key(0), num_seeds))
    xs, ys = _data(num_seeds)
    jax.block_until_ready(step(params, opt_state, xs, ys))  # compile

    def run():
        return jax.block_until_ready(step(params, opt_state, xs, ys))

    return run


def run_seeds_benchmark(
    seed_counts: Sequence[int] = DEFAULT_SEED_COUNTS,
    repetitions: int = 10,
    warmup: int = 2,
    time_interleaved: Callable | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> list[dict]:
    """Times the three ways for each S in ``seed_counts``; one row per library and S.

    Returns:
      Rows ``{"library", "seeds", "vmapped_ms", "sequential_ms", "vmapped_over_one_seed"}``
      (medians; ``sequential_ms`` is S calls of the 1-seed program).
    """
    from experiments.benchmark.harness import time_interleaved as default_timer

    if not seed_counts:
        return []
    timer = time_interleaved or default_timer
    one_seed = {library: _prepared(library, 1) for library in LIBRARIES}
    medians: dict[tuple[str, int], dict[str, float]] = {}
    for num_seeds in seed_counts:
        log(f"  seeds: compiling S = {num_seeds}")
        runs = {}
        for library in LIBRARIES:
            runs[f"{library} vmapped"] = (
                one_seed[library] if num_seeds == 1 else _prepared(library, num_seeds)
            )
            if num_seeds > 1:
                runs[f"{library} sequential"] = lambda run=one_seed[library], n=num_seeds: [
                    run() for _ in range(n)
                ]
        log(f"  seeds: timing S = {num_seeds}: {len(runs)} ways x {repetitions} repetitions")
        times = timer(runs, repetitions, warmup)
        for library in LIBRARIES:
            vmapped = float(np.median(times[f"{library} vmapped"]))
            sequential = times.get(f"{library} sequential")
            medians[library, num_seeds] = {
                "vmapped_ms": vmapped,
                "sequential_ms": vmapped if sequential is None else float(np.median(sequential)),
            }
    rows = []
    for (library, num_seeds), row in medians.items():
        base = medians.get((library, 1), {}).get("vmapped_ms")
        rows.append(
            {
                "library": library,
                "seeds": num_seeds,
                **row,
                "vmapped_over_one_seed": None if base is None else row["vmapped_ms"] / base,
            }
        )
    return rows
