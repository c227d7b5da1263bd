"""scan against a Python loop over step; jit; lengths; reverse; stack; bidirectional."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

ATOL = 1e-5
RTOL = 1e-5
NAMES = lstmx.variant_names()


def _random_params(params, key, scale=0.5):
    """Replaces every array of params (peepholes and biases included) by random values."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    )


def _setup(name, batch_shape=(3,), steps=7, input_size=4, hidden=5, seed=0):
    cell = lstmx.variant(name, hidden)
    key_p, key_r, key_x = jax.random.split(jax.random.key(seed), 3)
    params = _random_params(cell.init(key_p, input_size), key_r)
    xs = jax.random.normal(key_x, (*batch_shape, steps, input_size))
    return cell, params, xs


def _python_loop(cell, params, xs, state, reverse=False):
    """Reference: step in a Python loop over the time axis of xs [*batch, T, I]."""
    steps = xs.shape[-2]
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    ys = [None] * steps
    for t in order:
        state, ys[t] = cell.step(params, state, xs[..., t, :])
    return state, jnp.stack(ys, axis=-2)


def _assert_trees_close(actual, expected, atol=ATOL, rtol=RTOL):
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, atol=atol, rtol=rtol), actual, expected
    )


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", NAMES)
def test_scan_equals_python_loop(name, reverse):
    cell, params, xs = _setup(name)
    state0 = _random_params(cell.initial_state((3,)), jax.random.key(7))
    expected = _python_loop(cell, params, xs, state0, reverse=reverse)
    _assert_trees_close(lstmx.scan(cell, params, xs, state0, reverse=reverse), expected)
    _assert_trees_close(lstmx.scan_stepwise(cell, params, xs, state0, reverse=reverse), expected)


@pytest.mark.parametrize("name", ["lstm", "gru", "fgr"])
def test_jit_equals_no_jit(name):
    cell, params, xs = _setup(name)
    eager = lstmx.scan(cell, params, xs)
    jitted = jax.jit(lambda p, x: lstmx.scan(cell, p, x))(params, xs)
    _assert_trees_close(jitted, eager)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_time_major_and_leading_batch_axes(name):
    cell, params, xs = _setup(name, batch_shape=(2, 3))
    final, ys = lstmx.scan(cell, params, xs)
    assert ys.shape == (2, 3, 7, 5)
    final_tm, ys_tm = lstmx.scan(cell, params, jnp.moveaxis(xs, -2, 0), time_major=True)
    _assert_trees_close((final_tm, jnp.moveaxis(ys_tm, 0, -2)), (final, ys))
    # Unbatched: [T, I].
    final_1, ys_1 = lstmx.scan(cell, params, xs[1, 2])
    _assert_trees_close((final_1, ys_1), jax.tree_util.tree_map(lambda a: a[1, 2], (final, ys)))


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", ["lstm", "gru", "fgr", "rnn"])
def test_lengths_match_each_sequence_alone(name, reverse):
    """Each padded sequence gives what it gives when run alone, unpadded."""
    cell, params, xs = _setup(name, batch_shape=(4,))
    lengths = jnp.array([7, 3, 0, 1])
    final, ys = lstmx.scan(cell, params, xs, lengths=lengths, reverse=reverse)
    for b, length in enumerate(np.asarray(lengths)):
        alone_state = cell.initial_state(())
        alone_ys = jnp.zeros((0, 5))
        if length:
            alone_state, alone_ys = lstmx.scan(cell, params, xs[b, :length], reverse=reverse)
        _assert_trees_close(jax.tree_util.tree_map(lambda a, b=b: a[b], final), alone_state)
        np.testing.assert_allclose(ys[b, :length], alone_ys, atol=ATOL, rtol=RTOL)
        np.testing.assert_array_equal(ys[b, length:], 0.0)


def test_lengths_under_jit_and_stepwise_agree():
    cell, params, xs = _setup("peephole", batch_shape=(4,))
    lengths = jnp.array([7, 3, 0, 1])
    run = jax.jit(lambda p, x, n: lstmx.scan(cell, p, x, lengths=n, reverse=True))
    _assert_trees_close(
        run(params, xs, lengths),
        lstmx.scan_stepwise(cell, params, xs, lengths=lengths, reverse=True),
    )


def test_stack_equals_layer_by_layer():
    cells = [lstmx.lstm(6), lstmx.gru(5), lstmx.rnn(4)]
    stacked = lstmx.stack(cells)
    params = _random_params(stacked.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (2, 9, 3))
    final, ys = lstmx.scan(stacked, params, xs)
    assert ys.shape == (2, 9, 4) and stacked.output_size == 4
    layer_input, finals = xs, []
    for cell, layer_params in zip(cells, params.layers):
        layer_final, layer_input = lstmx.scan(cell, layer_params, layer_input)
        finals.append(layer_final)
    _assert_trees_close((final, ys), (lstmx.StackState(tuple(finals)), layer_input))
    _assert_trees_close(lstmx.scan_stepwise(stacked, params, xs), (final, ys))


def test_bidirectional_values_and_shapes():
    layer = lstmx.bidirectional(lstmx.lstm(5), lstmx.gru(3))
    params = _random_params(layer.init(jax.random.key(0), 4), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (2, 6, 4))
    lengths = jnp.array([6, 4])
    final, ys = layer.apply(params, xs, lengths=lengths)
    assert ys.shape == (2, 6, 8) and layer.output_size == 8
    f_final, f_ys = lstmx.scan(lstmx.lstm(5), params.forward, xs, lengths=lengths)
    b_final, b_ys = lstmx.scan(lstmx.gru(3), params.backward, xs, lengths=lengths, reverse=True)
    _assert_trees_close((final.forward, final.backward), (f_final, b_final))
    np.testing.assert_allclose(ys, jnp.concatenate([f_ys, b_ys], -1), atol=ATOL, rtol=RTOL)
    # The backward half of sequence 1 starts at its own last step, index 3.
    _, alone = lstmx.scan(lstmx.gru(3), params.backward, xs[1, :4], reverse=True)
    np.testing.assert_allclose(ys[1, :4, 5:], alone, atol=ATOL, rtol=RTOL)
