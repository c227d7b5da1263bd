"""Numerics: long sequences stay finite, float32 agrees with float64, bfloat16 within a
stated tolerance, and a seed that goes non-finite is recorded as diverged on its own.

Tolerances, with what was measured (jax 0.10.2, XLA:CPU, default init, inputs U[-1, 1]
or N(0, 1)):

* float32 vs float64, T=100, H=32, B=2: outputs max abs difference 1.6e-6 (nfg; 2e-7 to
  8e-7 for the others), tolerance 1e-5; gradients of the last output, max abs difference
  over a leaf's largest magnitude 2.7e-6 (nfg; below 8e-7 for the others), tolerance 1e-4.
* bfloat16 params and inputs vs float32 (same init: bfloat16 params are the float32 ones
  rounded), T=20, H=16, B=4: outputs max abs difference 0.015 (nfg; 0.004 to 0.014 for
  the others), tolerance 0.05; gradients relative as above 0.023 (nfg, nig, nog), tolerance
  0.08. bfloat16
  keeps 8 significant bits (about 2.4 decimal digits); the error grows with T.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from experiments.run import loop as experiment
from experiments.shared import records as results
from experiments.shared import training

KEY = jax.random.key(0)
F64_OUTPUT_ATOL, F64_GRAD_RTOL = 1e-5, 1e-4
BF16_OUTPUT_ATOL, BF16_GRAD_RTOL = 0.05, 0.08
# Each comparison compiles twice per variant, so it runs on a few: the fast path (custom
# VJP) with peepholes, without a forget gate (the largest float64 error), a GRU on the fast
# path and Cho's GRU on autodiff of lax.scan. All 13 were measured (see above).
F64_VARIANTS = ["peephole", "nfg", "gru", "gru_cho"]
BF16_VARIANTS = ["lstm", "gru_cho"]
# Variants whose params cover every initialiser: lecun-normal w_x, orthogonal blocks for
# 1, 3 and 4 gates, w_gates, peepholes.
INIT_VARIANTS = ["rnn", "gru", "cifg", "fgr"]


def _outputs_and_gradient(cell):
    """``(params, xs) -> (ys, d sum(ys[:, -1]) / d params)``, one compiled program."""

    @jax.jit
    def run(params, xs):
        def last_output(params):
            _, ys = lstmx.scan(cell, params, xs)
            return ys[:, -1].astype(jnp.float32).sum(), ys

        (_, ys), grads = jax.value_and_grad(last_output, has_aux=True)(params)
        return ys, grads

    return run


def _relative_gradient_error(got, want):
    """Largest |got - want| of each leaf over that leaf's largest |want|, over all leaves."""
    errors = [
        np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)))
        / max(np.max(np.abs(np.asarray(w, np.float64))), 1e-30)
        for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want))
    ]
    return max(errors)


@pytest.mark.parametrize("name", lstmx.variant_names())
def test_two_thousand_steps_stay_finite(name):
    cell = lstmx.variant(name, 32)
    params = cell.init(KEY, 4)
    xs = jax.random.normal(jax.random.key(1), (2, 2000, 4))
    ys, grads = _outputs_and_gradient(cell)(params, xs)
    assert ys.shape == (2, 2000, 32)
    assert np.all(np.isfinite(ys))
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf))
    assert max(np.max(np.abs(leaf)) for leaf in jax.tree_util.tree_leaves(grads)) > 0


@pytest.mark.parametrize("name", F64_VARIANTS)
def test_float32_agrees_with_float64(name):
    cell = lstmx.variant(name, 32)
    params = jax.device_get(cell.init(KEY, 4))
    xs = np.asarray(jax.random.normal(jax.random.key(1), (2, 100, 4)))
    ys32, grads32 = _outputs_and_gradient(cell)(params, xs)
    with jax.enable_x64(True):
        params64 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        ys64, grads64 = _outputs_and_gradient(cell)(params64, xs.astype(np.float64))
        assert ys64.dtype == jnp.float64
        ys64, grads64 = jax.device_get((ys64, grads64))
    np.testing.assert_allclose(ys32, ys64, rtol=0, atol=F64_OUTPUT_ATOL)
    assert _relative_gradient_error(grads32, grads64) < F64_GRAD_RTOL


@pytest.mark.parametrize("name", INIT_VARIANTS)
def test_bfloat16_init_is_the_float32_init_rounded(name):
    cell = lstmx.variant(name, 8)
    half, full = cell.init(KEY, 3, jnp.bfloat16), cell.init(KEY, 3)
    for a, b in zip(jax.tree_util.tree_leaves(half), jax.tree_util.tree_leaves(full)):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_array_equal(a, b.astype(jnp.bfloat16))


def test_chrono_init_in_half_precision():
    for cell in (lstmx.lstm(8, init="chrono", t_max=50), lstmx.gru(8, init="chrono", t_max=50)):
        for dtype in (jnp.bfloat16, jnp.float16):
            params = cell.init(KEY, 3, dtype)
            assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(dtype)}


@pytest.mark.parametrize("name", BF16_VARIANTS)
def test_bfloat16_params_and_inputs_agree_with_float32(name):
    cell = lstmx.variant(name, 16)
    xs = jax.random.uniform(jax.random.key(1), (4, 20, 3), minval=-1.0, maxval=1.0)
    run = _outputs_and_gradient(cell)
    ys32, grads32 = run(cell.init(KEY, 3), xs)
    ys16, grads16 = run(cell.init(KEY, 3, jnp.bfloat16), xs.astype(jnp.bfloat16))
    assert ys16.dtype == jnp.bfloat16
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(grads16)} == {jnp.dtype("bfloat16")}
    np.testing.assert_allclose(np.asarray(ys16, np.float32), ys32, rtol=0, atol=BF16_OUTPUT_ATOL)
    assert _relative_gradient_error(grads16, grads32) < BF16_GRAD_RTOL


@pytest.mark.parametrize(
    "params_dtype, xs_dtype", [(jnp.bfloat16, jnp.float32), (jnp.float32, jnp.bfloat16)]
)
def test_mixed_param_and_input_dtypes_are_refused(params_dtype, xs_dtype):
    cell = lstmx.lstm(8)
    params = cell.init(KEY, 3, params_dtype)
    with pytest.raises(TypeError, match="same dtype"):
        lstmx.scan(cell, params, jnp.ones((2, 5, 3), xs_dtype))


# --------------------------------------------------------------------- divergence record

CONFIG = training.Config(
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
    trainer = training.make_trainer(CONFIG)  # shared by both runs: compiled once

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
