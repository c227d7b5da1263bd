"""lstmx.cudnn: the weight conversion into and out of cuDNN's flat layout, held to
lstmx.scan through jax.experimental.rnn.lstm_ref (JAX's own reference of cuDNN's LSTM),
values and gradients. The cuDNN call itself needs a GPU and is not run here."""

import chex
import jax
import jax.numpy as jnp
import pytest
from _helpers import F32, random_like, random_params, random_state

import lstmx
from lstmx import cudnn


def _setup():
    cell = lstmx.lstm(6)
    params = random_params(cell, 3, seed=1)
    xs = random_like(jax.ShapeDtypeStruct((4, 7, 3), jnp.float32), seed=2, scale=1.0)
    state = random_state(cell, (4,), seed=3)
    return cell, params, xs, state


@pytest.mark.parametrize("lengths", [None, [7, 5, 1, 2]], ids=["full", "lengths"])
def test_reference_path_equals_lstmx_scan_in_values_and_gradients(lengths):
    cell, params, xs, state = _setup()
    lengths = None if lengths is None else jnp.array(lengths)

    def loss(run, params, xs):
        final, ys = run(params, xs)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h**2) + jnp.sum(jnp.cos(final.c))

    def via_cudnn(params, xs):
        return cudnn.scan(cell, params, xs, state, lengths=lengths, reference=True)

    def via_lstmx(params, xs):
        return lstmx.scan(cell, params, xs, state, lengths=lengths)

    chex.assert_trees_all_close(via_cudnn(params, xs), via_lstmx(params, xs), **F32._asdict())
    grads = [jax.grad(loss, argnums=(1, 2))(run, params, xs) for run in (via_cudnn, via_lstmx)]
    chex.assert_trees_all_close(*grads, **F32._asdict())


def test_weights_round_trip_and_layout():
    cell, params, _, _ = _setup()
    weights = cudnn.to_cudnn_weights(params)
    chex.assert_shape(weights, (4 * 6 * 3 + 4 * 6 * 6 + 8 * 6,))
    chex.assert_trees_all_equal(cudnn.from_cudnn_weights(weights, 3, 6), params)
    # cuDNN's layout is PyTorch's: W_ih [4H, I] first, gate order i, f, g, o.
    chex.assert_trees_all_equal(weights[: 4 * 6 * 3].reshape(24, 3), params.w_x.T)
    # Both biases fold into b on the way back.
    doubled = weights.at[-24:].set(weights[-48:-24])
    chex.assert_trees_all_close(cudnn.from_cudnn_weights(doubled, 3, 6).b, 2 * params.b)


def test_only_the_plain_lstm_is_supported():
    assert cudnn.supported(lstmx.lstm(4)) and cudnn.supported(lstmx.lstm(4, forget_bias=0.0))
    for name in ("peephole", "cifg", "nfg", "lstmp", "ln_lstm", "gru"):
        assert not cudnn.supported(lstmx.variant(name, 4)), name
    cell = lstmx.variant("peephole", 4)
    with pytest.raises(ValueError, match="plain LSTM only"):
        cudnn.scan(cell, cell.init(jax.random.key(0), 2), jnp.zeros((1, 3, 2)), reference=True)


def test_bad_lengths_and_weights_are_refused():
    cell, params, xs, _ = _setup()
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 7\]"):
        cudnn.scan(cell, params, xs, lengths=jnp.array([7, 0, 1, 1]), reference=True)
    with pytest.raises(ValueError, match=r"lengths must be \[4\]"):
        cudnn.scan(cell, params, xs, lengths=jnp.array([7, 1]), reference=True)
    with pytest.raises(ValueError, match=r"xs must be \[B, T, I\]"):
        cudnn.scan(cell, params, xs[0], reference=True)
    with pytest.raises(ValueError, match=r"weights must be a flat \[264\] array"):
        cudnn.from_cudnn_weights(jnp.zeros(10), 3, 6)
