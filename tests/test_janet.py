"""JANET (van der Westhuizen & Lasenby 2018) against a NumPy float64 loop of the paper's
equations (its eqs. 12-15, with the weights kept as the paper's separate W, U, b per block),
its chrono initialisation, its gates and its errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import random_params
from jax.test_util import check_grads

import lstmx

B, T, I, H = 3, 11, 4, 5


def _paper_janet(xs, h0, U_f, W_f, b_f, U_c, W_c, b_c, beta):
    """The paper's JANET, one sequence step at a time, float64:

    s_t = U_f h_{t-1} + W_f x_t + b_f
    c_t = σ(s_t) ⊙ c_{t-1} + (1 − σ(s_t − β)) ⊙ tanh(U_c h_{t-1} + W_c x_t + b_c)
    h_t = c_t
    (column vectors as in the paper: W_f [H, I], U_f [H, H].)
    """
    sigma = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    xs, c = np.asarray(xs, np.float64), np.asarray(h0, np.float64).copy()
    ys = np.zeros(xs.shape[:2] + (c.shape[-1],))
    for b in range(xs.shape[0]):
        for t in range(xs.shape[1]):
            x = xs[b, t]
            s = U_f @ c[b] + W_f @ x + b_f
            candidate = np.tanh(U_c @ c[b] + W_c @ x + b_c)
            c[b] = sigma(s) * c[b] + (1.0 - sigma(s - beta)) * candidate
            ys[b, t] = c[b]
    return c, ys


def _paper_weights(params):
    """lstmx's fused row-vector layout ``[W_f | W_c]`` split into the paper's matrices."""
    w_x, w_h, b = (np.asarray(a, np.float64) for a in params)
    return (w_h[:, :H].T, w_x[:, :H].T, b[:H], w_h[:, H:].T, w_x[:, H:].T, b[H:])


@pytest.mark.parametrize("beta", [1.0, 0.0, 2.5])
@pytest.mark.parametrize("run", [lstmx.scan, lstmx.scan_stepwise], ids=["fast", "stepwise"])
def test_janet_equals_the_papers_equations(beta, run):
    cell = lstmx.janet(H, beta=beta)
    params = random_params(cell, I, seed=1)
    rng = np.random.default_rng(2)
    xs = rng.standard_normal((B, T, I)).astype(np.float32)
    h0 = (0.5 * rng.standard_normal((B, H))).astype(np.float32)
    U_f, W_f, b_f, U_c, W_c, b_c = _paper_weights(params)
    want_c, want_ys = _paper_janet(xs, h0, U_f, W_f, b_f, U_c, W_c, b_c, beta)
    final, ys = run(cell, params, jnp.asarray(xs), lstmx.JANETState(jnp.asarray(h0)))
    chex.assert_trees_all_close((final.h, ys), (want_c, want_ys), rtol=1e-5, atol=1e-5)


def test_janet_gates_are_the_forget_gate_and_the_candidate():
    cell = lstmx.janet(H)
    params = random_params(cell, I, seed=3)
    x = jnp.asarray(np.random.default_rng(4).standard_normal((B, I)), jnp.float32)
    state = lstmx.JANETState(jnp.full((B, H), 0.3))
    new, y, gates = cell.step_with_gates(params, state, x)
    s = x @ params.w_x[:, :H] + state.h @ params.w_h[:, :H] + params.b[None, :H]
    chex.assert_trees_all_close(gates["f"], jax.nn.sigmoid(s), atol=1e-6)
    assert list(gates) == ["f", "g"]
    chex.assert_trees_all_equal(new.h, y)  # the output is the cell state
    chex.assert_trees_all_equal(cell.step(params, state, x), (new, y))


def test_janet_fast_path_gradients_match_finite_differences():
    with jax.enable_x64(True):
        cell = lstmx.janet(3)
        params = random_params(cell, 2, seed=1, dtype=jnp.float64)
        rng = np.random.default_rng(5)
        xs = jnp.asarray(rng.standard_normal((2, 5, 2)))
        state = lstmx.JANETState(jnp.asarray(0.5 * rng.standard_normal((2, 3))))
        readout = jnp.asarray(rng.standard_normal((2, 5, 3)))

        def loss(params, xs, state):
            final, ys = lstmx.scan(cell, params, xs, state, lengths=jnp.array([5, 3]))
            return jnp.sum(ys * readout) + jnp.sum(final.h**2)

        check_grads(loss, (params, xs, state), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_janet_init_default_and_chrono():
    params = lstmx.janet(64).init(jax.random.key(0), 3)
    np.testing.assert_array_equal(params.b, np.r_[np.ones(64), np.zeros(64)])
    chrono = lstmx.janet(64, init="chrono", t_max=100).init(jax.random.key(0), 3)
    b_f = np.asarray(chrono.b[:64])
    assert np.all(b_f >= 0.0) and np.all(b_f <= np.log(99.0) + 1e-6)
    assert b_f.std() > 0.5  # drawn, not a constant
    np.testing.assert_array_equal(chrono.b[64:], np.zeros(64))
    assert lstmx.describe(lstmx.janet(H), I).total == I * 2 * H + H * 2 * H + 2 * H
    assert lstmx.variant("janet", H).options == lstmx.JANETOptions(H)


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: lstmx.janet(4, beta=float("nan")), ValueError, "beta must be a finite"),
        (lambda: lstmx.janet(4, beta="1"), TypeError, "beta"),
        (lambda: lstmx.janet(0), ValueError, "hidden_size"),
        (lambda: lstmx.janet(4, init="chrono"), ValueError, "t_max >= 3"),
        (lambda: lstmx.janet(4, t_max=10), ValueError, "t_max is only used"),
    ],
    ids=["nan_beta", "string_beta", "zero_hidden", "chrono_without_t_max", "t_max_without_chrono"],
)
def test_janet_refuses_bad_options(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_janet_refuses_another_cells_params():
    cell = lstmx.janet(H)
    params = lstmx.lstm(H).init(jax.random.key(0), I)
    with pytest.raises((TypeError, ValueError), match="JANETParams"):
        lstmx.scan(cell, params, jnp.ones((B, T, I)))
