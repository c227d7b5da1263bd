"""minGRU and minLSTM stay exact under saturated gates, on every path; empty batches work.

The reference evaluates the paper's linear-space equations (Feng et al. 2024, eqs. for
minGRU and minLSTM: ``f' = f / (f + i)``) literally in float64, where the quotient of two
sigmoids of logits down to -30 is still exact, and differentiates them in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx.cells import base

H, I, B, T = 6, 2, 3, 7
PATHS = {
    "step": (dict(parallel=False), lstmx.scan_stepwise),
    "blocked": (dict(parallel=False), lstmx.scan),
    "parallel": (dict(parallel=True), lstmx.scan),
}


def _reference(kind, w, b, xs, h0):
    widen = (lambda a: 2 * a - 1) if kind.endswith("_neg") else (lambda a: a)  # Grazzi et al.

    def sigmoid(x):
        return 1.0 / (1.0 + jnp.exp(-x))

    def g(v):
        return jnp.where(v >= 0, v + 0.5, sigmoid(v))

    k, h, ys = xs @ w + b[None, None], h0, []
    for t in range(xs.shape[1]):
        if kind.startswith("min_lstm"):
            k_f, k_i, v = jnp.split(k[:, t], 3, axis=-1)
            f, i = sigmoid(k_f), sigmoid(k_i)
            h = widen(f / (f + i)) * h + i / (f + i) * g(v)
        else:
            k_z, v = jnp.split(k[:, t], 2, axis=-1)
            z = sigmoid(k_z)
            h = widen(1 - z) * h + z * g(v)
        ys.append(h)
    return jnp.stack(ys, axis=1)


def _problem(kind, low, high):
    blocks = 3 if kind.startswith("min_lstm") else 2
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(I, blocks * H)) * 0.5,
        rng.uniform(low, high, size=(blocks * H,)),  # the logits' centres
        rng.normal(size=(B, T, I)),
        rng.normal(size=(B, H)),
        rng.normal(size=(B, T, H)),  # a cotangent
    )


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(
    "kind, logits",  # the range; both tails. Negative eigenvalues: minGRU, whose
    # gate slope they make matter (minLSTM's f' - i' is the same normalised gates)
    [
        *((kind, logits) for kind in ("min_lstm", "min_gru") for logits in ((-30, -3), (-30, 30))),
        ("min_gru_neg", (-30, 30)),
    ],
)
def test_values_and_gradients_match_float64_for_saturated_logits(kind, logits, path):
    problem = _problem(kind, *logits)
    with jax.enable_x64(True):
        w, b, xs, h0, cotangent = (jnp.asarray(a, jnp.float64) for a in problem)
        want = _reference(kind, w, b, xs, h0)
        want_grads = jax.grad(
            lambda *a: (_reference(kind, *a) * cotangent).sum(), argnums=(0, 1, 2, 3)
        )(w, b, xs, h0)
        want, want_grads = np.asarray(want), [np.asarray(a) for a in want_grads]
    w, b, xs, h0, cotangent = (jnp.asarray(a, jnp.float32) for a in problem)
    options, runner = PATHS[path]
    cell = lstmx.variant(kind, H, **options)
    params_type = lstmx.MinLSTMParams if kind.startswith("min_lstm") else lstmx.MinGRUParams

    def loss(w, b, xs, h0):
        ys = runner(cell, params_type(w, b), xs, lstmx.MinRNNState(h0))[1]
        return (ys * cotangent).sum(), ys

    (_, ys), grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True)(w, b, xs, h0)
    np.testing.assert_allclose(ys, want, rtol=1e-5, atol=1e-5)
    for name, got, expected in zip(("w_x", "b", "xs", "h0"), grads, want_grads):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("parallel", [False, True])
def test_both_logits_below_minus_16_give_the_exact_value_not_nan(parallel):
    p = lstmx.MinLSTMParams(jnp.zeros((1, 6)), jnp.array([-20.0] * 2 + [-21.0] * 2 + [0.0] * 2))
    xs, h0 = jnp.zeros((1, 4, 1)), lstmx.MinRNNState(jnp.ones((1, 2)))
    ys = lstmx.scan(lstmx.min_lstm(2, parallel=parallel), p, xs, h0)[1]
    # f' = σ(-20) / (σ(-20) + σ(-21)) = 1 / (1 + e^-1), h' = 1/2: h_1 = f' + (1 - f') / 2.
    f_norm = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(ys[0, 0, 0], f_norm + (1 - f_norm) * 0.5, rtol=1e-6)


def test_fast_sigmoid_is_accurate_in_absolute_terms_where_the_gates_use_it():
    """The gated cells use ``base.sigmoid`` (tanh form, several times faster on XLA:CPU) for
    gates that multiply or are added to quantities of size about 1, where an absolute error
    of about 1e-7 is at the float32 rounding of the result."""
    x = np.linspace(-60, 60, 4801)
    error = np.abs(np.asarray(base.sigmoid(jnp.asarray(x, jnp.float32))) - 1 / (1 + np.exp(-x)))
    assert error.max() < 1.2e-7  # at x <= -16 it is 0 where σ(x) <= 1.13e-7


@pytest.mark.parametrize("name", [*lstmx.variant_names(), "min_gru_parallel", "min_lstm_parallel"])
def test_an_empty_batch_gives_empty_outputs_and_gradients(name):
    if name.endswith("_parallel"):
        cell = lstmx.variant(name.removesuffix("_parallel"), 4, parallel=True)
    else:
        cell = lstmx.variant(name, 4)
    params = cell.init(jax.random.key(0), 3)
    xs = jnp.ones((0, 5, 3))
    final, ys = lstmx.scan(cell, params, xs)
    assert ys.shape[:2] == (0, 5)
    grads = jax.grad(lambda p: lstmx.scan(cell, p, xs)[1].sum())(params)
    assert all(not np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(grads))
