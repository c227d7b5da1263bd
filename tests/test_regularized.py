"""lstmx.regularized: zoneout and variational dropout, keyed and pure, against loops written
from the papers (Krueger et al. 2016; Gal & Ghahramani 2016)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

B, T, I, H = 3, 7, 4, 5
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _setup(cell, seed=0):
    params = cell.init(jax.random.key(seed), I)
    xs = jax.random.normal(jax.random.key(seed + 1), (B, T, I))
    return params, xs


def _reference(cell, params, xs, key, rates):
    """The papers' equations as a Python loop over the plain cell's step.

    Masks are drawn as documented in lstmx.cells.regularized: per sequence from
    ``step_key(key, t).sequence`` (input: fold 0, recurrent: fold 1), per step from
    ``.step`` (h: fold 2, c: fold 3); inverted dropout scales kept units by 1/(1-p).
    """
    state = cell.initial_state((B,))
    ys = []
    for t in range(T):
        x = xs[:, t]
        read = state
        if key is not None:
            k = lstmx.step_key(key, t)
            p = rates.get("input_dropout", 0.0)
            if p:
                x = (
                    x
                    * jax.random.bernoulli(jax.random.fold_in(k.sequence, 0), 1 - p, x.shape)
                    / (1 - p)
                )
            p = rates.get("recurrent_dropout", 0.0)
            if p:
                m = jax.random.bernoulli(jax.random.fold_in(k.sequence, 1), 1 - p, state.h.shape)
                read = state._replace(h=state.h * m / (1 - p))
        new, _ = cell.step(params, read, x)
        for index, field in ((2, "h"), (3, "c")):
            z = rates.get(f"zoneout_{field}", 0.0)
            if z:
                old, fresh = getattr(state, field), getattr(new, field)
                if key is None:
                    zoned = z * old + (1 - z) * fresh
                else:
                    d = jax.random.bernoulli(
                        jax.random.fold_in(lstmx.step_key(key, t).step, index), z, old.shape
                    )
                    zoned = jnp.where(d, old, fresh)
                new = new._replace(**{field: zoned})
        state = new
        ys.append(state.h)
    return state, jnp.stack(ys, axis=1)


RATES = [
    {"zoneout_h": 0.3, "zoneout_c": 0.1},
    {"input_dropout": 0.2, "recurrent_dropout": 0.4},
    {"zoneout_h": 0.2, "zoneout_c": 0.5, "input_dropout": 0.3, "recurrent_dropout": 0.1},
]


@pytest.mark.parametrize("rates", RATES)
@pytest.mark.parametrize("keyed", [True, False], ids=["train", "expectation"])
def test_lstm_matches_the_papers_loop(rates, keyed):
    plain = lstmx.variant("peephole", H)
    cell = lstmx.regularized(plain, **rates)
    params, xs = _setup(plain)
    params = params._replace(p=0.3 * jnp.ones_like(params.p))  # peepholes read c
    key = jax.random.key(11) if keyed else None
    expected = _reference(plain, params, xs, key, rates)
    final, ys = lstmx.scan(cell, params, xs, key=key)
    chex.assert_trees_all_close((final, ys), expected, **TOL)


def test_gru_zoneout_and_dropout_match_the_loop():
    rates = {"zoneout_h": 0.25, "input_dropout": 0.3, "recurrent_dropout": 0.2}
    plain = lstmx.gru(H)
    params, xs = _setup(plain, 3)
    key = jax.random.key(4)
    chex.assert_trees_all_close(
        lstmx.scan(lstmx.regularized(plain, **rates), params, xs, key=key),
        _reference(plain, params, xs, key, rates),
        **TOL,
    )


def test_candidate_dropout_matches_semeniutas_equation():
    """c_t = f c_{t-1} + i (m_t g_t) / (1 - p), a fresh mask per step; h = o tanh(c)."""
    rate, key = 0.4, jax.random.key(12)
    plain = lstmx.lstm(H)
    params, xs = _setup(plain, 2)
    cell = lstmx.regularized(plain, candidate_dropout=rate)
    w_x, w_h, b = (np.asarray(a, np.float64) for a in (params.w_x, params.w_h, params.b))
    h, c, ys = np.zeros((B, H)), np.zeros((B, H)), []
    for t in range(T):
        z = np.asarray(xs[:, t], np.float64) @ w_x + h @ w_h + b
        i, f, g, o = np.split(z, 4, axis=-1)
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        step = lstmx.step_key(key, t).step
        m = np.asarray(jax.random.bernoulli(jax.random.fold_in(step, 4), 1 - rate, (B, H)))
        c = sig(f) * c + sig(i) * (m * np.tanh(g)) / (1 - rate)
        h = sig(o) * np.tanh(c)
        ys.append(h)
    _, got = lstmx.scan(cell, params, xs, key=key)
    chex.assert_trees_all_close(got, jnp.asarray(np.stack(ys, 1), jnp.float32), **TOL)
    chex.assert_trees_all_close(lstmx.scan(cell, params, xs), lstmx.scan(plain, params, xs), **TOL)


@pytest.mark.parametrize("variant", ["lstm", "gru", "cifg"])
def test_rate_zero_is_the_plain_cell(variant):
    plain = lstmx.variant(variant, H)
    params, xs = _setup(plain)
    expected = lstmx.scan(plain, params, xs)
    cell = lstmx.regularized(plain)
    chex.assert_trees_all_close(
        lstmx.scan(cell, params, xs, key=jax.random.key(1)), expected, **TOL
    )
    chex.assert_trees_all_close(lstmx.scan(cell, params, xs), expected, **TOL)
    # Dropout's expectation is the plain cell too (inverted dropout).
    dropped = lstmx.regularized(plain, input_dropout=0.5, recurrent_dropout=0.5)
    chex.assert_trees_all_close(lstmx.scan(dropped, params, xs), expected, **TOL)


def test_same_key_same_result_other_key_other_result():
    cell = lstmx.regularized(lstmx.lstm(H), zoneout_h=0.3, recurrent_dropout=0.3)
    params, xs = _setup(cell)
    first = lstmx.scan(cell, params, xs, key=jax.random.key(7))
    chex.assert_trees_all_equal(first, lstmx.scan(cell, params, xs, key=jax.random.key(7)))
    other = lstmx.scan(cell, params, xs, key=jax.random.key(8))
    assert not np.allclose(first[1], other[1])


def test_masks_per_sequence_for_dropout_and_per_step_for_zoneout():
    # An RNN with w_h = 0, w_x = I and b = 0 shows its input mask: h_t = tanh(x_t * m).
    cell = lstmx.rnn(I)
    params = lstmx.RNNParams(jnp.eye(I), jnp.zeros((I, I)), jnp.zeros(I))
    xs = jnp.ones((B, T, I))
    _, ys = lstmx.scan(
        lstmx.regularized(cell, input_dropout=0.5), params, xs, key=jax.random.key(2)
    )
    dropped = np.asarray(ys) == 0
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # the same units at every step of a sequence
    assert not (dropped == dropped[:1]).all()  # each sequence of the batch its own mask
    # Zoneout draws afresh at every step: with inputs that change h every step, the kept
    # units differ between steps, and about z of them are kept.
    xs = jax.random.normal(jax.random.key(3), (64, 50, I))
    zoned = lstmx.regularized(cell, zoneout_h=0.3)
    _, ys = lstmx.scan(zoned, params, xs, key=jax.random.key(5))
    kept = np.asarray(ys[:, 1:] == ys[:, :-1])
    assert abs(kept.mean() - 0.3) < 0.02  # 12,544 draws: 3 sigma is 0.012
    assert not (kept == kept[:, :1]).all()


def test_scan_equals_scan_stepwise_with_lengths_reverse_and_gradients():
    cell = lstmx.regularized(lstmx.lstm(H), zoneout_h=0.2, zoneout_c=0.3, recurrent_dropout=0.2)
    params, xs = _setup(cell, 5)
    lengths = jnp.array([7, 4, 0])
    key = jax.random.key(9)

    def loss(scan_fn, params, xs):
        final, ys = scan_fn(cell, params, xs, key=key, lengths=lengths, reverse=True)
        return jnp.sum(ys**2) + jnp.sum(final.c)

    for scan_fn in (lstmx.scan, lstmx.scan_stepwise):
        final, ys = scan_fn(cell, params, xs, key=key, lengths=lengths, reverse=True)
        assert np.all(np.asarray(ys[2]) == 0) and np.all(np.asarray(ys[1, 4:]) == 0)
    grads = [
        jax.grad(loss, argnums=(1, 2))(f, params, xs) for f in (lstmx.scan, lstmx.scan_stepwise)
    ]
    chex.assert_trees_all_close(grads[0], grads[1], **TOL)
    chex.assert_tree_all_finite(grads[0])


def test_reverse_uses_each_positions_own_key():
    """Step t gets step_key(key, t) whichever direction the scan runs."""
    cell = lstmx.regularized(lstmx.rnn(I), zoneout_h=0.5)
    params = lstmx.RNNParams(jnp.eye(I), jnp.zeros((I, I)), jnp.zeros(I))
    xs = jax.random.normal(jax.random.key(0), (B, T, I))
    key = jax.random.key(3)
    _, ys = lstmx.scan(cell, params, xs, key=key, reverse=True)
    state, expected = cell.initial_state((B,)), [None] * T
    for t in reversed(range(T)):
        state, expected[t] = cell.step(params, state, xs[:, t], key=lstmx.step_key(key, t))
    chex.assert_trees_all_close(ys, jnp.stack(expected, axis=1), **TOL)


def test_stack_and_bidirectional_pass_keys_to_regularised_layers():
    layers = [lstmx.regularized(lstmx.lstm(H), zoneout_h=0.3), lstmx.gru(H)]
    deep = lstmx.stack(layers)
    params, xs = _setup(deep)
    key = jax.random.key(6)
    a = lstmx.scan(deep, params, xs, key=key)
    chex.assert_trees_all_close(a, lstmx.scan_stepwise(deep, params, xs, key=key), **TOL)
    assert not np.allclose(a[1], lstmx.scan(deep, params, xs)[1])
    both = lstmx.bidirectional(layers[0], lstmx.lstm(H))
    bi_params = both.init(jax.random.key(0), I)
    _, ys = both.apply(bi_params, xs, key=key)
    chex.assert_shape(ys, (B, T, 2 * H))
    with pytest.raises(ValueError, match="neither half"):
        lstmx.bidirectional(lstmx.lstm(H), lstmx.gru(H)).apply(bi_params, xs, key=key)


def test_gates_and_describe_see_the_wrapped_cell():
    cell = lstmx.regularized(lstmx.lstm(H), zoneout_h=0.1)
    params, xs = _setup(cell)
    assert list(lstmx.diagnostics.gate_statistics(cell, params, xs)) == ["i", "f", "g", "o"]
    assert lstmx.describe(cell, I).total == lstmx.describe(lstmx.lstm(H), I).total


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: lstmx.regularized(lstmx.lstm(H), zoneout_h=-0.1),
            ValueError,
            r"zoneout_h must lie in \[0, 1\]",
        ),
        (
            lambda: lstmx.regularized(lstmx.lstm(H), input_dropout=1.0),
            ValueError,
            r"input_dropout must lie in \[0, 1\)",
        ),
        (
            lambda: lstmx.regularized(lstmx.lstm(H), recurrent_dropout="0.1"),
            TypeError,
            "must be a number",
        ),
        (lambda: lstmx.regularized(lstmx.gru(H), zoneout_c=0.1), ValueError, "no 'c' field"),
        (lambda: lstmx.regularized(lstmx.gru(H), candidate_dropout=0.1), ValueError, "not an LSTM"),
        (lambda: lstmx.regularized("lstm", zoneout_h=0.1), TypeError, "lstmx.Cell"),
        (
            lambda: lstmx.scan(lstmx.lstm(H), *_setup(lstmx.lstm(H)), key=jax.random.key(0)),
            ValueError,
            "key is for cells with randomness",
        ),
        (
            lambda: lstmx.regularized(lstmx.lstm(H), zoneout_h=0.1).step(
                *_setup(lstmx.lstm(H))[:1],
                lstmx.lstm(H).initial_state((B,)),
                jnp.ones((B, I)),
                key=jax.random.key(0),
            ),
            TypeError,
            "StepKey",
        ),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()
