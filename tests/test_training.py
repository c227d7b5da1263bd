"""Training: loss decreases, seeds are isolated, divergence stops only its seed."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.run import model

TINY = model.Config(
    task="adding",
    variant="lstm",
    length=10,
    steps=150,
    batch_size=32,
    hidden_size=16,
    optimizer="adam",
    learning_rate=1e-2,
    eval_every=50,
    eval_batch_size=256,
    seeds=(0, 1),
)


def test_loss_decreases_on_tiny_adding_problem():
    trainer = model.make_trainer(TINY)
    state = trainer.init()
    before = trainer.evaluate(state)["loss"]
    state, train_losses = trainer.train(state, TINY.steps)
    after = trainer.evaluate(state)["loss"]
    assert train_losses.shape == (TINY.steps, 2)
    # Far below the memoryless baseline of 1/6 after 150 steps, for both seeds.
    np.testing.assert_array_less(after, 0.05)
    np.testing.assert_array_less(after, before)
    assert int(state.step) == TINY.steps


@pytest.mark.parametrize("variant", ["gru", "rnn", "cifg"])
def test_copy_task_trains_and_reports_recall_accuracy(variant):
    config = dataclasses.replace(
        TINY, task="copy", variant=variant, length=5, steps=20, learning_rate=3e-3
    )
    trainer = model.make_trainer(config)
    state = trainer.init()
    state, losses = trainer.train(state, 20)
    metrics = trainer.evaluate(state)
    assert np.all(np.isfinite(losses))
    assert np.all((metrics["accuracy"] >= 0) & (metrics["accuracy"] <= 1))
    assert np.all(metrics["loss"] < losses[0])


def test_seed_results_do_not_depend_on_the_other_seeds():
    together = model.make_trainer(TINY)
    alone = model.make_trainer(dataclasses.replace(TINY, seeds=(1,)))
    state_together, _ = together.train(together.init(), 20)
    state_alone, _ = alone.train(alone.init(), 20)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a[1], b[0], rtol=1e-5, atol=1e-6),
        state_together.params,
        state_alone.params,
    )


def test_a_diverging_seed_stops_alone():
    trainer = model.make_trainer(TINY)
    state = trainer.init()
    poisoned = jax.tree_util.tree_map(lambda x: x.at[0].set(jnp.nan), state.params)
    state = state._replace(params=poisoned)
    state, _ = trainer.train(state, 10)
    assert state.diverged_step.tolist() == [0, -1]
    # Seed 1 trained exactly as it does with a healthy seed 0 beside it.
    healthy, _ = trainer.train(trainer.init(), 10)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a[1], b[1], rtol=1e-6, atol=1e-7),
        state.params,
        healthy.params,
    )


def test_training_is_deterministic():
    first = model.make_trainer(TINY)
    second = model.make_trainer(TINY)
    a, losses_a = first.train(first.init(), 30)
    b, losses_b = second.train(second.init(), 30)
    np.testing.assert_array_equal(losses_a, losses_b)
    jax.tree_util.tree_map(np.testing.assert_array_equal, a.params, b.params)


def test_num_params_counts_cell_and_readout():
    config = dataclasses.replace(TINY, hidden_size=8)
    # LSTM on 2 inputs: 4H(I + H + 1) = 32 * 11; read-out 8 + 1.
    assert model.make_trainer(config).num_params == 32 * 11 + 9


def test_chrono_init_applies_to_gated_cells_only():
    chrono = dataclasses.replace(TINY, init="chrono", length=40)
    assert chrono.t_max == 40
    assert dataclasses.replace(chrono, task="copy").t_max == 60
    bias = model.make_trainer(chrono).init().params.cell.b[0]
    forget = np.asarray(bias[16:32])
    assert np.all((forget >= 0) & (forget <= np.log(39))) and forget.std() > 0
    model.make_trainer(dataclasses.replace(chrono, variant="rnn"))  # keeps default init


def test_li_init_of_a_two_layer_indrnn():
    """Li et al. (2018)'s adding-problem init (their adding/adding.py), written out."""
    T = 50
    li = dataclasses.replace(
        TINY, variant="indrnn", init="li", length=T, num_layers=2, hidden_size=256, seeds=(0,)
    )
    assert li.label == "indrnn+li"
    first, last = model.make_trainer(li).init().params.cell.layers
    for layer in (first, last):
        w_x = np.asarray(layer.w_x[0])
        assert abs(w_x.std() / 1e-3 - 1) < 0.1 and abs(w_x.mean()) < 3e-4  # N(0, 0.001^2)
    u_first, u_last = np.asarray(first.u[0]), np.asarray(last.u[0])
    top, low = 2 ** (1 / T), 2 ** (-1 / T)
    assert u_first.min() >= 0 and u_first.max() <= top and u_first.min() < 0.1  # U[0, top]
    assert u_last.min() >= low and u_last.max() <= top  # U[2^(-1/T), 2^(1/T)]
    assert u_last.min() < low + 0.1 * (top - low) and u_last.max() > top - 0.1 * (top - low)


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"task": "copyy"}, ValueError, "task must be one of copy, adding"),
        ({"variant": "lstn"}, ValueError, "Unknown variant 'lstn'; valid names"),
        ({"steps": 0}, ValueError, "steps must be an int >= 1"),
        ({"batch_size": -1}, ValueError, "batch_size must be an int >= 1"),
        ({"length": 1}, ValueError, "length must be an int >= 2"),
        ({"learning_rate": -1e-3}, ValueError, "learning_rate must be a positive finite"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate must be a positive finite"),
        ({"clip": 0.0}, ValueError, "clip must be a positive finite"),
        ({"optimizer": "lbfgs"}, ValueError, "optimizer must be one of rmsprop, adam, sgd"),
        ({"seeds": ()}, ValueError, "at least one seed"),
        ({"seeds": (1, 1)}, ValueError, "seeds must be distinct"),
        ({"seeds": (-1,)}, ValueError, "seed must be an int >= 0"),
        ({"init": "chrono", "variant": "nfg"}, ValueError, "needs forget_gate=True"),
    ],
)
def test_config_refuses_bad_values(change, error, message):
    with pytest.raises(error, match=message):
        dataclasses.replace(TINY, **change)
