"""Seeds spread over devices: sharded as asked, and the numbers of the one-device run.

The two-device run needs ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` before
JAX starts, and this process has started it with one device, so it runs in a
subprocess that prints its results as JSON.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np

from experiments.run import model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(
    task="adding",
    variant="lstm",
    length=8,
    steps=30,
    batch_size=16,
    hidden_size=8,
    optimizer="adam",
    learning_rate=1e-2,
    eval_every=30,
    eval_batch_size=64,
    seeds=(0, 1),
)
RTOL, ATOL = 1e-5, 1e-6

TWO_DEVICES = textwrap.dedent(
    """
    import json, sys, warnings
    import jax
    import numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_default_matmul_precision", "highest")
    from experiments.run import model

    assert jax.device_count() == 2, jax.devices()
    config = model.Config(**json.loads(sys.argv[1]))
    trainer = model.make_trainer(config)
    state = trainer.init()
    state, losses = trainer.train(state, config.steps)
    metrics = trainer.evaluate(state)
    # A host copy (as restored from a checkpoint) is put back on both devices.
    again, _ = trainer.train(jax.device_get(state), 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uneven = model.make_trainer(config.__class__(**{**json.loads(sys.argv[1]),
                                                        "seeds": [0, 1, 2]}))
    leaves = jax.tree_util.tree_leaves(state.params)
    print(json.dumps({
        "devices": [len(leaf.sharding.device_set) for leaf in leaves],
        "shard_rows": [leaf.addressable_shards[0].data.shape[0] for leaf in leaves],
        "step_replicated": state.step.sharding.is_fully_replicated,
        "losses_devices": len(losses.sharding.device_set),
        "again_devices": len(again.params.cell.w_h.sharding.device_set),
        "uneven_mesh": int(uneven.sharding.params.mesh.size),
        "warnings": [str(w.message) for w in caught],
        "losses": np.asarray(losses).tolist(),
        "eval_loss": np.asarray(metrics["loss"]).tolist(),
        "params": [np.asarray(leaf).tolist() for leaf in leaves],
    }))
    """
)


def _start_two_device_run():
    config = {**CONFIG, "seeds": list(CONFIG["seeds"])}
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = {**os.environ, "XLA_FLAGS": flags.strip()}
    return subprocess.Popen(
        [sys.executable, "-c", TWO_DEVICES, json.dumps(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_devices_shard_the_seeds_and_match_one_device():
    process = _start_two_device_run()  # runs while this process trains on one device
    config = model.Config(**CONFIG)
    trainer = model.make_trainer(config)
    initial = trainer.init()
    host_copy = jax.device_get(initial)  # as restored from a checkpoint: numpy leaves
    state, losses = trainer.train(initial, config.steps)
    metrics = trainer.evaluate(state)
    assert jax.device_count() == 1
    assert len(state.params.cell.w_h.sharding.device_set) == 1
    from_host, _ = trainer.train(host_copy, config.steps)
    jax.tree_util.tree_map(np.testing.assert_array_equal, from_host, state)
    one = {
        "losses": np.asarray(losses),
        "eval_loss": np.asarray(metrics["loss"]),
        "params": [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state.params)],
    }

    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    two = json.loads(stdout.strip().splitlines()[-1])
    assert set(two["devices"]) == {2}  # every parameter lives on both devices...
    assert set(two["shard_rows"]) == {1}  # ...one seed on each
    assert two["step_replicated"]
    assert two["losses_devices"] == 2 and two["again_devices"] == 2
    # Three seeds do not split over two devices: one device, and a warning saying so.
    assert two["uneven_mesh"] == 1
    assert any("3 seeds do not split evenly over 2 devices" in w for w in two["warnings"])

    np.testing.assert_allclose(two["losses"], one["losses"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(two["eval_loss"], one["eval_loss"], rtol=RTOL, atol=ATOL)
    assert len(two["params"]) == len(one["params"])
    for got, want in zip(two["params"], one["params"], strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    differences = [
        np.max(np.abs(np.asarray(two[key]) - one[key])) for key in ("losses", "eval_loss")
    ] + [np.max(np.abs(np.asarray(a) - b)) for a, b in zip(two["params"], one["params"])]
    print(f"two devices vs one: max abs difference {max(differences):.3g}")
    assert max(differences) <= 1e-6  # the README quotes the measured figure and this bound


def test_place_puts_host_arrays_on_the_mesh():
    trainer = model.make_trainer(model.Config(**{**CONFIG, "variant": "rnn"}))
    shapes = jax.eval_shape(trainer.init)
    host = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    placed = trainer.place(host)
    assert placed.params.cell.w_h.sharding == trainer.sharding.params
    assert placed.step.sharding == trainer.sharding.step
    assert placed.step.sharding.is_fully_replicated
