"""lstmx.sequence: what lengths and reverse mean, time-major and batch layouts, stack and
bidirectional. What every cell's scan must satisfy (a Python loop over step, scan_stepwise,
jit, vmap, unroll) is in tests/test_contract.py."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import F32, random_like, random_params

import lstmx


def _setup(name, batch_shape=(3,), steps=7, input_size=4, hidden=5):
    cell = lstmx.variant(name, hidden)
    params = random_params(cell, input_size, seed=1)
    xs = random_like(jax.ShapeDtypeStruct((*batch_shape, steps, input_size), jnp.float32), 2, 1.0)
    return cell, params, xs


def test_time_major_and_leading_batch_axes():
    cell, params, xs = _setup("lstm", batch_shape=(2, 3))
    final, ys = lstmx.scan(cell, params, xs)
    chex.assert_shape(ys, (2, 3, 7, 5))
    final_tm, ys_tm = lstmx.scan(cell, params, jnp.moveaxis(xs, -2, 0), time_major=True)
    chex.assert_shape(ys_tm, (7, 2, 3, 5))
    chex.assert_trees_all_close(
        (final_tm, jnp.moveaxis(ys_tm, 0, -2)), (final, ys), **F32._asdict()
    )
    # Unbatched: [T, I].
    final_1, ys_1 = lstmx.scan(cell, params, xs[1, 2])
    chex.assert_trees_all_close(
        (final_1, ys_1), jax.tree_util.tree_map(lambda a: a[1, 2], (final, ys)), **F32._asdict()
    )


# The fast path forms dW_h in one of two ways: inside the backward loop (from
# W_H_IN_LOOP_MIN_ROWS rows per step) or as one GEMM after it. Both, forced at a small
# batch, against autodiff of the step loop, for every cell on that path (rnn, the LSTM
# family with and without hand-written backwards, GRU, MGU), with lengths, reverse and
# two batch axes.
FUSED_CELLS = ["rnn", "lstm", "peephole", "cifg", "nog", "fgr", "lstmp", "ln_lstm", "gru", "mgu"]


@pytest.mark.parametrize("in_loop", [False, True], ids=["after_loop", "in_loop"])
@pytest.mark.parametrize("name", FUSED_CELLS)
def test_fast_path_weight_gradients_in_and_after_the_loop(name, in_loop, monkeypatch):
    from lstmx import _fused

    monkeypatch.setattr(_fused, "W_H_IN_LOOP_MIN_ROWS", 1 if in_loop else 10**9)
    cell, params, xs = _setup(name, batch_shape=(2, 3))
    lengths = jnp.array([[7, 4, 0], [1, 7, 5]])

    def values_and_grads(run, reverse):
        def loss(params, xs):
            final, ys = run(cell, params, xs, lengths=lengths, reverse=reverse)
            leaves = jax.tree_util.tree_leaves(final)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in leaves)

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, xs)

    for reverse in (False, True):
        chex.assert_trees_all_close(
            values_and_grads(lstmx.scan, reverse),
            values_and_grads(lstmx.scan_stepwise, reverse),
            **F32._asdict(),
        )


# The fast path (custom VJP) and autodiff of lax.scan over Cho's GRU.
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", ["lstm", "gru_cho"])
def test_lengths_match_each_sequence_alone(name, reverse):
    """Each padded sequence gives what it gives when run alone, unpadded: the final state
    is the state after its own last step, outputs past its length are zero, and reverse
    starts at its own last step."""
    cell, params, xs = _setup(name, batch_shape=(4,))
    lengths = np.array([7, 3, 0, 1])
    final, ys = lstmx.scan(cell, params, xs, lengths=jnp.asarray(lengths), reverse=reverse)
    for b, length in enumerate(lengths):
        alone_state = cell.initial_state(())
        alone_ys = jnp.zeros((0, 5))
        if length:
            alone_state, alone_ys = lstmx.scan(cell, params, xs[b, :length], reverse=reverse)
        chex.assert_trees_all_close(
            (jax.tree_util.tree_map(lambda a, b=b: a[b], final), ys[b, :length]),
            (alone_state, alone_ys),
            **F32._asdict(),
        )
        np.testing.assert_array_equal(ys[b, length:], 0.0)


def test_stack_equals_layer_by_layer():
    cells = [lstmx.lstm(6), lstmx.gru(5), lstmx.rnn(4)]
    stacked = lstmx.stack(cells)
    params = random_params(stacked, 3, seed=1)
    xs = random_like(jax.ShapeDtypeStruct((2, 9, 3), jnp.float32), 2, 1.0)
    final, ys = lstmx.scan(stacked, params, xs)
    assert stacked.output_size == 4
    chex.assert_shape(ys, (2, 9, 4))
    assert isinstance(stacked.options, lstmx.StackOptions) and stacked.options.layers == tuple(
        cells
    )
    layer_input, finals = xs, []
    for cell, layer_params in zip(cells, params.layers, strict=True):
        layer_final, layer_input = lstmx.scan(cell, layer_params, layer_input)
        finals.append(layer_final)
    chex.assert_trees_all_close(
        (final, ys), (lstmx.StackState(tuple(finals)), layer_input), **F32._asdict()
    )


def test_bidirectional_values_and_shapes():
    layer = lstmx.bidirectional(lstmx.lstm(5), lstmx.gru(3))
    assert (layer.forward.options, layer.backward.options) == (
        lstmx.lstm(5).options,
        lstmx.gru(3).options,
    )
    params = random_params(layer, 4, seed=1)
    xs = random_like(jax.ShapeDtypeStruct((2, 6, 4), jnp.float32), 2, 1.0)
    lengths = jnp.array([6, 4])
    final, ys = layer.apply(params, xs, lengths=lengths)
    assert layer.output_size == 8
    chex.assert_shape(ys, (2, 6, 8))
    f_final, f_ys = lstmx.scan(lstmx.lstm(5), params.forward, xs, lengths=lengths)
    b_final, b_ys = lstmx.scan(lstmx.gru(3), params.backward, xs, lengths=lengths, reverse=True)
    chex.assert_trees_all_close(
        (final.forward, final.backward, ys),
        (f_final, b_final, jnp.concatenate([f_ys, b_ys], -1)),
        **F32._asdict(),
    )
    # The backward half of sequence 1 starts at its own last step, index 3.
    _, alone = lstmx.scan(lstmx.gru(3), params.backward, xs[1, :4], reverse=True)
    chex.assert_trees_all_close(ys[1, :4, 5:], alone, **F32._asdict())


# remat: the fast path (LSTM, GRU), autodiff of lax.scan (Cho's GRU), the parallel scan
# (minGRU), blocks that divide T, that do not (padding) and longer than T.
@pytest.mark.parametrize("block", [1, 3, 7, 20])
@pytest.mark.parametrize("name", ["lstm", "gru", "gru_cho", "min_gru"])
def test_remat_equals_the_plain_scan_in_values_and_gradients(name, block):
    cell, params, xs = _setup(name)
    lengths = jnp.array([7, 4, 0])

    def loss(params, xs, remat, reverse):
        final, ys = lstmx.scan(cell, params, xs, lengths=lengths, reverse=reverse, remat=remat)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(final))

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=(2, 3))
    for reverse in (False, True):
        chex.assert_trees_all_close(
            grad(params, xs, block, reverse), grad(params, xs, None, reverse), **F32._asdict()
        )


def test_remat_keeps_a_keyed_cells_masks():
    """Step t draws step_key(key, t) whatever block it falls in."""
    cell = lstmx.regularized(lstmx.lstm(5), zoneout_h=0.3, recurrent_dropout=0.2)
    params = random_params(cell, 4, seed=1)
    xs = random_like(jax.ShapeDtypeStruct((3, 7, 4), jnp.float32), 2, 1.0)
    key = jax.random.key(7)
    chex.assert_trees_all_close(
        lstmx.scan(cell, params, xs, key=key, remat=3),
        lstmx.scan(cell, params, xs, key=key),
        **F32._asdict(),
    )


@pytest.mark.parametrize("remat", [0, -2, 2.5, "4"])
def test_remat_must_be_a_positive_int(remat):
    cell, params, xs = _setup("lstm")
    with pytest.raises((ValueError, TypeError), match="remat"):
        lstmx.scan(cell, params, xs, remat=remat)
