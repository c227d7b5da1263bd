"""lstmx.slstm (xLSTM's sLSTM, Beck et al. 2024) against an un-stabilised NumPy reference.

The reference below is written from the paper's equations *without* the stabiliser
(``c = f c + i z``, ``n = f n + i``, ``h = o c / n``, ``i = exp(ĩ)``) and with the
block-diagonal recurrent matrix built densely from the per-head blocks. The stabilised
cell must equal it wherever it does not overflow; its own state relates to the reference's
as ``c_ref = c * exp(m)`` and ``n_ref = n * exp(m)``.
"""

import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

slstm_module = importlib.import_module("lstmx.cells.slstm")

I, H, K = 3, 8, 2  # input size, hidden size, heads (head size 4)
B, T = 2, 12


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def dense_recurrent(w_h: np.ndarray) -> np.ndarray:
    """The ``[H, 4H]`` matrix whose diagonal blocks are ``w_h [K, d, 4d]`` (gate-major)."""
    K, d, _ = w_h.shape
    H = K * d
    R = np.zeros((H, 4 * H), w_h.dtype)
    for k in range(K):
        for g in range(4):
            R[k * d : (k + 1) * d, g * H + k * d : g * H + (k + 1) * d] = w_h[k][
                :, g * d : (g + 1) * d
            ]
    return R


def reference(params, xs, forget_gate="sigmoid"):
    """Un-stabilised sLSTM in float64. ``xs [B, T, I]`` -> ``(hs, cs, ns)`` each ``[B, T, H]``."""
    w_x, w_h, b = (np.asarray(a, np.float64) for a in params)
    R = dense_recurrent(w_h)
    Hs = b.shape[0] // 4
    xs = np.asarray(xs, np.float64)
    h = np.zeros(xs.shape[:-2] + (Hs,))
    c, n = np.zeros_like(h), np.zeros_like(h)
    hs, cs, ns = [], [], []
    for t in range(xs.shape[-2]):
        pre = xs[..., t, :] @ w_x + h @ R + b
        i_raw, f_raw, z_raw, o_raw = np.split(pre, 4, axis=-1)
        i = np.exp(i_raw)
        f = _sigmoid(f_raw) if forget_gate == "sigmoid" else np.exp(f_raw)
        z, o = np.tanh(z_raw), _sigmoid(o_raw)
        c = f * c + i * z
        n = f * n + i
        h = o * c / n
        hs.append(h), cs.append(c), ns.append(n)
    return np.stack(hs, -2), np.stack(cs, -2), np.stack(ns, -2)


def _params(key, forget_gate="sigmoid", scale=0.5, dtype=jnp.float32):
    """Random params (the default init has a +5..-7 forget-bias ramp; random is harsher)."""
    cell = lstmx.slstm(H, num_heads=K, forget_gate=forget_gate)
    shapes = [(I, 4 * H), (K, H // K, 4 * H // K), (4 * H,)]
    keys = jax.random.split(key, 3)
    return cell, lstmx.SLSTMParams(
        *(scale * jax.random.normal(k, shape, dtype) for k, shape in zip(keys, shapes))
    )


def _xs(seed, shape=(B, T, I), scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _max_err(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# --------------------------------------------------------------------------------------
# Against the un-stabilised reference.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_float64_matches_unstabilised_reference(forget_gate):
    # Measured worst errors: h 2.2e-16 (sigmoid) / 2.8e-16 (exp); c, n relative <= 1.2e-14.
    with jax.enable_x64(True):
        cell, params = _params(jax.random.key(0), forget_gate, dtype=jnp.float64)
        xs = _xs(1).astype(np.float64)
        final, ys = jax.jit(lambda p, x: lstmx.scan(cell, p, x))(params, xs)
        h_ref, c_ref, n_ref = reference(params, xs, forget_gate)
        np.testing.assert_allclose(ys, h_ref, rtol=1e-12, atol=1e-12)
        scale = np.exp(np.asarray(final.m))
        np.testing.assert_allclose(final.c * scale, c_ref[:, -1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(final.n * scale, n_ref[:, -1], rtol=1e-10, atol=1e-12)
        assert np.all(final.n >= 1.0)


def test_float32_matches_float64_reference(forget_gate="sigmoid"):
    cell, params = _params(jax.random.key(2), forget_gate)
    xs = _xs(3)
    _, ys = jax.jit(lambda p, x: lstmx.scan(cell, p, x))(params, xs)
    h_ref, _, _ = reference(params, xs, forget_gate)
    assert _max_err(ys, h_ref) < 2e-6  # measured 1.3e-7 (sigmoid), 2.4e-7 (exp)


def test_default_init_matches_reference_and_documented_forget_bias():
    cell = lstmx.slstm(H, num_heads=K)
    params = cell.init(jax.random.key(4), I)
    d = H // K
    ramp = -(-5.0 + 12.0 * (np.arange(d) / (d - 1)) ** 0.3)
    np.testing.assert_allclose(params.b[H : 2 * H], np.tile(ramp, K), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(params.b[:H], 0.0)
    np.testing.assert_array_equal(params.b[2 * H :], 0.0)
    exp_params = lstmx.slstm(H, num_heads=K, forget_gate="exp").init(jax.random.key(4), I)
    # Same initial forget values: exp(b_f) == sigmoid(ramp).
    np.testing.assert_allclose(
        np.exp(exp_params.b[H : 2 * H]), _sigmoid(np.tile(ramp, K)), rtol=1e-5, atol=1e-7
    )
    xs = _xs(5)
    _, ys = jax.jit(lambda p, x: lstmx.scan(cell, p, x))(params, xs)
    assert _max_err(ys, reference(params, xs)[0]) < 2e-6


def test_gradient_matches_unstabilised_autodiff():
    """Gradients of the stabilised cell equal autodiff of the un-stabilised equations."""

    def unstabilised_loss(params, xs):
        w_x, w_h, b = params
        d = H // K
        R = jnp.concatenate(
            [
                jax.scipy.linalg.block_diag(*(w_h[k][:, g * d : (g + 1) * d] for k in range(K)))
                for g in range(4)
            ],
            axis=1,
        )
        h = c = n = jnp.zeros((B, H), w_x.dtype)
        total = 0.0
        for t in range(xs.shape[1]):
            pre = xs[:, t] @ w_x + h @ R + b[None]
            i_raw, f_raw, z_raw, o_raw = jnp.split(pre, 4, axis=-1)
            c = jax.nn.sigmoid(f_raw) * c + jnp.exp(i_raw) * jnp.tanh(z_raw)
            n = jax.nn.sigmoid(f_raw) * n + jnp.exp(i_raw)
            h = jax.nn.sigmoid(o_raw) * c / n
            total = total + jnp.sum(h * jnp.sin(t + jnp.arange(H))[None])
        return total

    with jax.enable_x64(True):
        cell, params = _params(jax.random.key(6), dtype=jnp.float64)
        xs = _xs(7, (B, 6, I)).astype(np.float64)

        def loss(params, xs):
            _, ys = lstmx.scan(cell, params, xs)
            weights = jnp.sin(jnp.arange(6)[:, None] + jnp.arange(H)[None, :])
            return jnp.sum(ys * weights[None])

        value, got = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)
        expected, want = jax.jit(jax.value_and_grad(unstabilised_loss, argnums=(0, 1)))(params, xs)
        np.testing.assert_allclose(value, expected, rtol=1e-12)
        chex.assert_trees_all_close(got, want, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------------------
# Stability: any input stays finite and |h| <= 1.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_huge_inputs_long_sequence_stay_finite_and_bounded(forget_gate):
    cell, params = _params(jax.random.key(8), forget_gate, scale=1.0)
    rng = np.random.default_rng(9)
    xs = (1e4 * rng.choice([-1.0, 1.0], size=(B, 500, I))).astype(np.float32)

    @jax.jit
    def run(params, xs):
        final, ys = lstmx.scan(cell, params, xs)
        grads = jax.grad(lambda p, x: jnp.sum(lstmx.scan(cell, p, x)[1]), argnums=(0, 1))(
            params, xs
        )
        return final, ys, grads

    final, ys, grads = run(params, xs)
    chex.assert_tree_all_finite((final, ys, grads))
    assert float(jnp.max(jnp.abs(ys))) <= 1.0
    assert float(jnp.min(final.n)) >= 1.0


def test_first_step_with_very_negative_input_gate_is_finite():
    """At n = 0 the stabiliser is ĩ itself (NX-AI); f' stays clamped, so no inf * 0."""
    cell, params = _params(jax.random.key(10))
    params = params._replace(b=params.b.at[:H].set(-1e4).at[H : 2 * H].set(50.0))
    state, y = cell.step(params, cell.initial_state((B,)), jnp.zeros((B, I)))
    chex.assert_tree_all_finite((state, y))
    np.testing.assert_array_equal(state.n, 1.0)
    np.testing.assert_array_equal(state.m, -1e4)  # m_1 = ĩ_1 = b_i (x = 0, h_0 = 0)


# --------------------------------------------------------------------------------------
# Block-diagonal recurrence.
# --------------------------------------------------------------------------------------


def test_heads_do_not_read_other_heads_hidden_state():
    cell, params = _params(jax.random.key(11), scale=1.0)
    state, _ = cell.step(params, cell.initial_state(()), jnp.asarray(_xs(12, (I,))))
    x = jnp.asarray(_xs(13, (I,)))
    jac = jax.jit(jax.jacrev(lambda h: cell.step(params, state._replace(h=h), x)[1]))(state.h)
    d = H // K
    for a in range(K):
        for b in range(K):
            block = np.asarray(jac[a * d : (a + 1) * d, b * d : (b + 1) * d])
            if a == b:
                assert np.max(np.abs(block)) > 1e-3
            else:
                np.testing.assert_array_equal(block, 0.0)


def test_recurrent_layout_equals_dense_block_matrix():
    _, params = _params(jax.random.key(14), scale=1.0)
    h = _xs(15, (B, H))
    options = lstmx.SLSTMOptions(H, num_heads=K)
    got = slstm_module.recurrent(options, params.w_h, jnp.asarray(h))
    np.testing.assert_allclose(
        got, h @ dense_recurrent(np.asarray(params.w_h)), rtol=1e-5, atol=1e-6
    )


# --------------------------------------------------------------------------------------
# Sequence paths, options and registration.
# --------------------------------------------------------------------------------------


def test_scan_matches_python_step_loop():
    """No fast path: lstmx.scan is autodiff of lax.scan over the step (scan_stepwise's
    code), so gradients are the step's; values against a Python loop of steps."""
    cell, params = _params(jax.random.key(16))
    assert cell.fast_scan is None
    xs = _xs(17, (B, 6, I))
    step = jax.jit(cell.step)
    state = cell.initial_state((B,))
    outputs = []
    for t in range(6):
        state, y = step(params, state, jnp.asarray(xs[:, t]))
        outputs.append(y)
    final, ys = jax.jit(lambda p, x: lstmx.scan(cell, p, x))(params, xs)
    np.testing.assert_allclose(ys, jnp.stack(outputs, 1), rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(final, state, rtol=1e-6, atol=1e-6)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="num_heads must divide hidden_size.*10.*4"):
        lstmx.slstm(10, num_heads=4)
    with pytest.raises(ValueError, match="num_heads must be an int >= 1"):
        lstmx.slstm(8, num_heads=0)
    with pytest.raises(TypeError, match="num_heads must be an int"):
        lstmx.slstm(8, num_heads=2.0)
    with pytest.raises(ValueError, match='forget_gate must be "sigmoid" or "exp"'):
        lstmx.slstm(8, forget_gate="tanh")
    with pytest.raises(ValueError, match="hidden_size"):
        lstmx.slstm(0)


def test_bad_params_and_state_are_refused():
    cell, params = _params(jax.random.key(18))
    state = cell.initial_state((B,))
    x = jnp.zeros((B, I))
    with pytest.raises(ValueError, match=r"params.w_h must have shape \(2, 4, 16\)"):
        cell.step(params._replace(w_h=jnp.zeros((H, 4 * H))), state, x)
    with pytest.raises(TypeError, match="SLSTMParams"):
        cell.step(lstmx.lstm(H).init(jax.random.key(0), I), state, x)
    with pytest.raises(ValueError, match="state.m must have shape"):
        cell.step(params, state._replace(m=jnp.zeros((B, 3))), x)
    with pytest.raises(TypeError, match="SLSTMState"):
        cell.step(params, lstmx.LSTMState(state.h, state.c), x)


def test_registration_describe_and_gates():
    cell = lstmx.variant("slstm", 128)
    assert cell.options == lstmx.SLSTMOptions(128, num_heads=4)
    description = lstmx.describe(cell, 10)
    # I=10, H=128, 4 heads: w_x 10*512 + w_h 4*32*128 + b 512 = 22,016.
    assert description.total == 10 * 512 + 4 * 32 * 128 + 512 == 22016
    assert all(row.role for row in description.rows)
    cell, params = _params(jax.random.key(0))
    state, y, gates = cell.step_with_gates(params, cell.initial_state((2,)), jnp.ones((2, I)))
    assert list(gates) == ["i", "f", "g", "o"]  # g: the paper's z, named as the LSTM's
    assert all(g.shape == (2, H) for g in gates.values())
    assert float(jnp.max(gates["i"])) <= 1.0 and float(jnp.max(gates["f"])) <= 1.0
    assert "slstm" in lstmx.__all__ and "SLSTMState" in lstmx.__all__
