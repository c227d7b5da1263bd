"""Numerics: long sequences stay finite, float32 agrees with float64, bfloat16 within a
stated tolerance, and a seed that goes non-finite is recorded as diverged on its own.

Every named variant is measured (default init, jax 0.10.2, XLA:CPU, inputs from
``jax.random.key(1)``); each bound sits just above the worst variant's figure:

* float32 vs float64 (the ``jax.enable_x64`` context), T=100, H=32, B=2, N(0, 1) inputs:
  outputs, max abs difference: worst 3.2e-6 (ln_lstm; indrnn 1.6e-6, nfg 1.4e-6, the
  other variants 1.5e-7 to 7e-7), bound 4e-6. Gradients of the last output, max abs
  difference over a leaf's largest magnitude: worst 5.1e-6 (ln_lstm; nfg 2.5e-6, the
  others below 8e-7), bound 6e-6.
* bfloat16 params and inputs vs float32 (bfloat16 params are the float32 ones rounded),
  T=20, H=16, B=4, inputs U[-1, 1]: outputs worst 0.044 (indrnn; ln_lstm 0.022, nfg
  0.014, the others 0.0035 to 0.014), bound 0.05; gradients (relative as above) worst
  0.060 (ln_lstm; nig, nfg, nog 0.023, the others 0.005 to 0.018), bound 0.07. bfloat16
  keeps 8 significant bits (about 2.4 decimal digits); the error grows with T.

Run with ``-s`` to print each variant's figures. Mixed dtypes are refused
(tests/test_bad_input.py).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import max_abs_error, relative_error

import lstmx
from experiments.run import loop as experiment
from experiments.run import model
from experiments.shared import records as results

KEY = jax.random.key(0)
# Measured worst over every variant (see the docstring), and the bound each is held to.
F64_OUTPUT_ATOL, F64_GRAD_RTOL = 4e-6, 6e-6
BF16_OUTPUT_ATOL, BF16_GRAD_RTOL = 0.05, 0.07
NAMES = lstmx.variant_names()


def _last_output_and_gradient(cell, params, xs):
    """``(ys, d sum(ys[:, -1]) / d params)`` through ``lstmx.scan``."""

    def last_output(params):
        _, ys = lstmx.scan(cell, params, xs)
        return ys[:, -1].astype(jnp.float32).sum(), ys

    (_, ys), grads = jax.value_and_grad(last_output, has_aux=True)(params)
    return ys, grads


@functools.cache
def _inputs():
    key = jax.random.key(1)
    return jax.device_get(
        {
            "f64": jax.random.normal(key, (2, 100, 4)),
            "bf16": jax.random.uniform(key, (4, 20, 3), minval=-1.0, maxval=1.0),
            "long": jax.random.normal(key, (2, 2000, 4)),
        }
    )


@functools.cache
def _float32_runs(name):
    """The float32 side of every comparison and the T=2000 run, in one compiled program."""
    cell32, cell16 = lstmx.variant(name, 32), lstmx.variant(name, 16)
    params32, params16 = cell32.init(KEY, 4), cell16.init(KEY, 3)

    @jax.jit
    def program(params32, params16, xs):
        return {
            "f64": _last_output_and_gradient(cell32, params32, xs["f64"]),
            "bf16": _last_output_and_gradient(cell16, params16, xs["bf16"]),
            "long": _last_output_and_gradient(cell32, params32, xs["long"]),
        }

    return jax.device_get(program(params32, params16, _inputs()))


@pytest.mark.parametrize("name", NAMES)
def test_two_thousand_steps_stay_finite(name):
    ys, grads = _float32_runs(name)["long"]
    chex.assert_shape(ys, (2, 2000, lstmx.variant(name, 32).output_size))
    chex.assert_tree_all_finite((ys, grads))
    assert max(np.max(np.abs(leaf)) for leaf in jax.tree_util.tree_leaves(grads)) > 0


@pytest.mark.parametrize("name", NAMES)
def test_float32_agrees_with_float64(name):
    ys32, grads32 = _float32_runs(name)["f64"]
    cell = lstmx.variant(name, 32)
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(
            lambda a: np.asarray(a, np.float64), jax.device_get(cell.init(KEY, 4))
        )
        xs64 = _inputs()["f64"].astype(np.float64)
        ys64, grads64 = jax.jit(functools.partial(_last_output_and_gradient, cell))(params64, xs64)
        assert ys64.dtype == jnp.float64
        ys64, grads64 = jax.device_get((ys64, grads64))
    output_error, gradient_error = max_abs_error(ys32, ys64), relative_error(grads32, grads64)
    print(
        f"\n{name}: float32 vs float64, T=100: outputs {output_error:.2e}, "
        f"gradients {gradient_error:.2e} relative"
    )
    assert output_error < F64_OUTPUT_ATOL
    assert gradient_error < F64_GRAD_RTOL


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_params_and_inputs_agree_with_float32(name):
    ys32, grads32 = _float32_runs(name)["bf16"]
    cell = lstmx.variant(name, 16)
    params16 = cell.init(KEY, 3, jnp.bfloat16)
    xs16 = jnp.asarray(_inputs()["bf16"], jnp.bfloat16)
    ys16, grads16 = jax.jit(functools.partial(_last_output_and_gradient, cell))(params16, xs16)
    assert ys16.dtype == jnp.bfloat16
    chex.assert_type(jax.tree_util.tree_leaves(grads16), jnp.bfloat16)
    output_error, gradient_error = max_abs_error(ys16, ys32), relative_error(grads16, grads32)
    print(
        f"\n{name}: bfloat16 vs float32, T=20: outputs {output_error:.2e}, "
        f"gradients {gradient_error:.2e} relative"
    )
    assert output_error < BF16_OUTPUT_ATOL
    assert gradient_error < BF16_GRAD_RTOL


def test_chrono_init_in_half_precision():
    for cell in (lstmx.lstm(8, init="chrono", t_max=50), lstmx.gru(8, init="chrono", t_max=50)):
        for dtype in (jnp.bfloat16, jnp.float16):
            params = cell.init(KEY, 3, dtype)
            chex.assert_type(jax.tree_util.tree_leaves(params), dtype)
            full = cell.init(KEY, 3)
            chex.assert_trees_all_equal(
                params, jax.tree_util.tree_map(lambda a, dtype=dtype: a.astype(dtype), full)
            )


# --------------------------------------------------------------------- divergence record

CONFIG = model.Config(
    task="adding",
    variant="rnn",
    length=5,
    steps=40,
    batch_size=8,
    hidden_size=4,
    optimizer="adam",
    learning_rate=1e-2,
    eval_every=20,
    eval_batch_size=16,
    seeds=(0, 1),
)


def _without_time(point):
    return {key: value for key, value in point.items() if key != "wall_time"}


def test_a_diverging_seed_is_recorded_as_diverged_and_the_other_finishes(tmp_path, monkeypatch):
    trainer = model.make_trainer(CONFIG)  # shared by both runs: compiled once

    def poisoned_train(state, num_steps):
        """Seed 0's params become NaN at step 20."""
        if int(state.step) == 20:
            state = state._replace(
                params=jax.tree_util.tree_map(lambda x: x.at[0].set(jnp.nan), state.params)
            )
        return trainer.train(state, num_steps)

    quiet = lambda line: None  # noqa: E731
    monkeypatch.setattr(experiment, "make_trainer", lambda config: trainer)
    healthy = experiment.run_variant(CONFIG, tmp_path / "healthy", log=quiet)
    poisoned = trainer._replace(train=poisoned_train)
    monkeypatch.setattr(experiment, "make_trainer", lambda config: poisoned)
    diverged, finished = experiment.run_variant(CONFIG, tmp_path / "poisoned", log=quiet)

    assert (diverged["seed"], diverged["status"], diverged["diverged_step"]) == (0, "diverged", 20)
    assert _without_time(diverged["history"][0]) == _without_time(healthy[0]["history"][0])
    assert np.isnan(diverged["final"]["loss"])
    assert (finished["seed"], finished["status"], finished["diverged_step"]) == (
        1,
        "finished",
        None,
    )
    # The other seed trained exactly as it does beside a healthy seed 0.
    assert [_without_time(p) for p in finished["history"]] == [
        _without_time(p) for p in healthy[1]["history"]
    ]
    path = results.record_path(tmp_path / "poisoned", "adding", 5, "rnn", 0)
    assert (results.read_record(path)["status"], results.read_record(path)["diverged_step"]) == (
        "diverged",
        20,
    )
