"""lstmx.linen: the RNN module and CellWrapper against lstmx.scan, under jit and grad."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx.linen import RNN, CellWrapper, from_flax_carry, to_flax_carry

ATOL = 1e-5
RTOL = 1e-5
N_IN, H, B, T = 3, 4, 2, 6


def _assert_trees_close(actual, expected, atol=ATOL, rtol=RTOL):
    chex.assert_trees_all_equal_structs(actual, expected)
    chex.assert_trees_all_close(actual, expected, atol=atol, rtol=rtol)


def _xs(seed=0, shape=(B, T, N_IN)):
    return jax.random.normal(jax.random.key(seed), shape)


CELLS = {
    "lstm": lambda: lstmx.lstm(H),
    "gru": lambda: lstmx.gru(H),
    "peephole": lambda: lstmx.variant("peephole", H),
    "stack": lambda: lstmx.stack([lstmx.lstm(H), lstmx.gru(H + 1)]),
}


@pytest.mark.parametrize("name", CELLS)
def test_rnn_equals_scan(name):
    cell = CELLS[name]()
    xs = _xs()
    module = RNN(cell)
    variables = module.init(jax.random.key(1), xs)
    params = variables["params"]["cell"]
    assert set(variables["params"]) == {"cell"}
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        cell.init(jax.random.key(0), N_IN)
    )
    _assert_trees_close(module.apply(variables, xs), lstmx.scan(cell, params, xs))


def test_rnn_passes_options_to_scan():
    cell = lstmx.lstm(H)
    xs = _xs()
    module = RNN(cell)
    variables = module.init(jax.random.key(1), xs)
    params = variables["params"]["cell"]
    state0 = lstmx.LSTMState(*jax.random.normal(jax.random.key(2), (2, B, H)))
    lengths = jnp.array([T, 3])
    options = {"initial_state": state0, "lengths": lengths, "reverse": True}
    _assert_trees_close(
        module.apply(variables, xs, **options),
        lstmx.scan(cell, params, xs, state0, lengths=lengths, reverse=True),
    )
    xs_tm = jnp.swapaxes(xs, 0, 1)
    _assert_trees_close(
        module.apply(variables, xs_tm, time_major=True),
        lstmx.scan(cell, params, xs_tm, time_major=True),
    )


def test_rnn_under_jit():
    cell = lstmx.gru(H)
    xs = _xs()
    module = RNN(cell)
    variables = jax.jit(module.init)(jax.random.key(1), xs)
    expected = lstmx.scan(cell, variables["params"]["cell"], xs)
    _assert_trees_close(jax.jit(module.apply)(variables, xs), expected)


def test_rnn_param_dtype():
    # lstmx's init calls jax's orthogonal initializer, which has no half-precision QR on
    # CPU; this cell inits in float32 and casts, to check that param_dtype is passed on.
    base = lstmx.lstm(H)

    def init(key, input_size, dtype=jnp.float32):
        params = base.init(key, input_size)
        return jax.tree_util.tree_map(lambda x: x.astype(dtype), params)

    cell = base._replace(init=init)
    xs = _xs().astype(jnp.bfloat16)
    module = RNN(cell, param_dtype=jnp.bfloat16)
    variables = module.init(jax.random.key(1), xs)
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree_util.tree_leaves(variables))
    state, ys = module.apply(variables, xs)
    assert ys.dtype == jnp.bfloat16 and state.c.dtype == jnp.bfloat16


def test_rnn_bidirectional():
    cell = lstmx.bidirectional(lstmx.lstm(H), lstmx.gru(H))
    xs = _xs()
    module = RNN(cell)
    variables = module.init(jax.random.key(1), xs)
    params = variables["params"]["cell"]
    assert isinstance(params, lstmx.BidirectionalParams)
    state, ys = module.apply(variables, xs)
    assert ys.shape == (B, T, 2 * H)
    _assert_trees_close((state, ys), cell.apply(params, xs))
    with pytest.raises(ValueError, match="reverse=True"):
        module.apply(variables, xs, reverse=True)


class _Regressor(nn.Module):
    """RNN then Dense on the last step: a small model around the adapter."""

    cell: lstmx.Cell

    @nn.compact
    def __call__(self, xs):
        _, ys = RNN(self.cell)(xs)
        return nn.Dense(1)(ys[:, -1])[:, 0]


def test_rnn_inside_a_model_with_grads():
    cell = lstmx.lstm(H)
    xs = _xs()
    targets = jnp.array([0.5, -1.0])
    model = _Regressor(cell)
    variables = model.init(jax.random.key(1), xs)
    assert set(variables["params"]) == {"RNN_0", "Dense_0"}

    def loss(variables):
        return jnp.mean((model.apply(variables, xs) - targets) ** 2)

    def loss_by_hand(variables):
        p = variables["params"]
        _, ys = lstmx.scan(cell, p["RNN_0"]["cell"], xs)
        dense = p["Dense_0"]
        out = ys[:, -1] @ dense["kernel"] + jnp.broadcast_to(dense["bias"], (B, 1))
        return jnp.mean((out[:, 0] - targets) ** 2)

    value, grads = jax.jit(jax.value_and_grad(loss))(variables)
    value_ref, grads_ref = jax.value_and_grad(loss_by_hand)(variables)
    np.testing.assert_allclose(value, value_ref, rtol=RTOL, atol=ATOL)
    _assert_trees_close(grads, grads_ref)
    cell_grads = grads["params"]["RNN_0"]["cell"]
    assert isinstance(cell_grads, lstmx.LSTMParams)
    chex.assert_tree_all_finite(cell_grads)
    for leaf in jax.tree_util.tree_leaves(cell_grads):
        assert np.abs(leaf).max() > 0


@pytest.mark.parametrize("name", ["gru", "lstm", "stack"])
def test_flax_rnn_with_cell_wrapper_equals_scan(name):
    cell = CELLS[name]()
    xs = _xs()
    layer = nn.RNN(CellWrapper(cell), return_carry=True)
    variables = layer.init(jax.random.key(1), xs)
    params = variables["params"]["cell"]["cell"]
    final, ys = layer.apply(variables, xs)
    final_ref, ys_ref = lstmx.scan(cell, params, xs)
    _assert_trees_close((final, ys), (to_flax_carry(final_ref), ys_ref))


def test_flax_rnn_with_cell_wrapper_options():
    cell = lstmx.gru(H)
    xs = _xs()
    layer = nn.RNN(CellWrapper(cell), return_carry=True)
    variables = layer.init(jax.random.key(1), xs)
    params = variables["params"]["cell"]["cell"]
    h0 = jax.random.normal(jax.random.key(2), (B, H))  # Flax's GRU carry: the array h
    lengths = jnp.array([T, 3])
    final, ys = jax.jit(lambda v: layer.apply(v, xs, initial_carry=h0, seq_lengths=lengths))(
        variables
    )
    final_ref, ys_ref = lstmx.scan(cell, params, xs, lstmx.GRUState(h0), lengths=lengths)
    _assert_trees_close(final, final_ref.h)
    # Flax leaves outputs past a sequence's length as computed; lstmx zeroes them.
    valid = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
    np.testing.assert_allclose(
        jnp.where(valid, ys, jnp.zeros_like(ys)), ys_ref, rtol=RTOL, atol=ATOL
    )


def test_cell_wrapper_interface():
    cell = lstmx.lstm(H)
    wrapper = CellWrapper(cell)
    assert isinstance(wrapper, nn.RNNCellBase)
    assert wrapper.num_feature_axes == 1
    carry = wrapper.initialize_carry(jax.random.key(0), (B, N_IN))
    assert type(carry) is tuple and len(carry) == 2  # Flax's (c, h), as nn.LSTMCell's
    assert carry[0].shape == (B, H) and carry[1].shape == (B, H)
    x = _xs()[:, 0]
    variables = wrapper.init(jax.random.key(1), carry, x)
    params = variables["params"]["cell"]
    carry = (
        jax.random.normal(jax.random.key(3), (B, H)),
        jax.random.normal(jax.random.key(4), (B, H)),
    )
    (c, h), y = wrapper.apply(variables, carry, x)
    state, y_ref = cell.step(params, lstmx.LSTMState(h=carry[1], c=carry[0]), x)
    _assert_trees_close((c, h, y), (state.c, state.h, y_ref))


def test_cell_wrapper_carries_as_flax_cells_do_so_flax_code_runs_unchanged():
    """The same Flax program, written for nn.LSTMCell / nn.GRUCell, run with the Flax cell and
    with CellWrapper over the converted weights: equal outputs and final carries."""
    from lstmx import convert

    xs = _xs()
    for flax_cell, to_lstmx, cell in (
        (nn.LSTMCell(H), convert.from_flax_lstm, lstmx.lstm(H, forget_bias=0.0)),
        (nn.GRUCell(H), convert.from_flax_gru, lstmx.gru(H)),
    ):
        flax_layer = nn.RNN(flax_cell, return_carry=True)
        flax_vars = flax_layer.init(jax.random.key(5), xs)
        flax_final, flax_ys = flax_layer.apply(flax_vars, xs)
        params = to_lstmx(flax_vars["params"]["cell"])
        ours = nn.RNN(CellWrapper(cell), return_carry=True)
        our_final, our_ys = ours.apply({"params": {"cell": {"cell": params}}}, xs)
        _assert_trees_close((our_final, our_ys), (flax_final, flax_ys))


def test_flax_carries_round_trip_and_a_wrong_form_is_refused():
    for cell in (lstmx.lstm(H), lstmx.gru(H), lstmx.variant("fgr", H)):
        state = jax.tree_util.tree_map(
            lambda a: jax.random.normal(jax.random.key(6), a.shape), cell.initial_state((B,))
        )
        back = from_flax_carry(cell, to_flax_carry(state))
        assert type(back) is type(state)
        _assert_trees_close(back, state)
    with pytest.raises(TypeError, match=r"an LSTM's carry is Flax's \(c, h\) tuple"):
        from_flax_carry(lstmx.lstm(H), lstmx.LSTMState(jnp.zeros(H), jnp.zeros(H)))
    with pytest.raises(TypeError, match="carry is Flax's array h"):
        from_flax_carry(lstmx.gru(H), (jnp.zeros(H), jnp.zeros(H)))


def test_modules_are_hashable_and_keep_the_cell():
    cell = lstmx.lstm(H)
    for module in (RNN(cell), CellWrapper(cell)):
        hash(module)
        assert isinstance(module.cell, lstmx.Cell)
        assert module.cell == cell


def test_bad_cell():
    xs = _xs()
    with pytest.raises(TypeError, match="lstmx.Cell.*got LSTMCell"):
        RNN(nn.LSTMCell(H)).init(jax.random.key(0), xs)
    with pytest.raises(TypeError, match="lstmx.Cell.*got Bidirectional"):
        CellWrapper(lstmx.bidirectional(lstmx.lstm(H), lstmx.lstm(H))).initialize_carry(
            jax.random.key(0), (B, N_IN)
        )
    with pytest.raises(ValueError, match="at least 2 axes"):
        RNN(lstmx.lstm(H)).init(jax.random.key(0), jnp.zeros((N_IN,)))
