"""lstmx.nnx: an lstmx cell as a Flax NNX module, and NNX cells' weights converted exactly."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lstmx
from lstmx import nnx as lstmx_nnx

B, T, I, H = 3, 6, 4, 5
TOL = {"rtol": 1e-5, "atol": 1e-6}


def _xs(seed=0):
    return jax.random.normal(jax.random.key(seed), (B, T, I))


def _nnx_scan(module, carry, xs):
    """NNX's own cell stepped over time, as a user of Flax would run it."""
    ys = []
    for t in range(xs.shape[1]):
        carry, y = module(carry, xs[:, t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


@pytest.mark.parametrize("variant", ["lstm", "cifg", "gru", "rnn", "fgr"])
def test_module_runs_lstmx_scan_with_its_params(variant):
    cell = lstmx.variant(variant, H)
    model = lstmx_nnx.RNN(cell, I, rngs=nnx.Rngs(3))
    expected = lstmx.scan(cell, cell.init(jax.random.key(0), I), _xs())  # another init
    final, ys = model(_xs())
    chex.assert_shape(ys, (B, T, H))
    chex.assert_trees_all_close(lstmx.scan(cell, model.cell_params(), _xs()), (final, ys), **TOL)
    assert jax.tree_util.tree_structure(expected[0]) == jax.tree_util.tree_structure(final)
    names = {path[-1] for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    assert "w_x" in names and "w_h" in names


def test_module_trains_with_nnx_optimizer():
    model = lstmx_nnx.RNN(lstmx.lstm(H), I, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    xs = _xs()

    @nnx.jit
    def train_step(model, optimizer):
        def loss(model):
            return jnp.mean(model(xs)[1] ** 2)

        value, grads = nnx.value_and_grad(loss)(model)
        optimizer.update(model, grads)
        return value

    losses = [float(train_step(model, optimizer)) for _ in range(5)]
    assert losses[-1] < losses[0]


def test_lengths_and_reverse_pass_through():
    cell = lstmx.gru(H)
    model = lstmx_nnx.RNN(cell, I, rngs=nnx.Rngs(1))
    lengths = jnp.array([6, 3, 0])
    expected = lstmx.scan(cell, model.cell_params(), _xs(), lengths=lengths, reverse=True)
    chex.assert_trees_all_close(model(_xs(), lengths=lengths, reverse=True), expected, **TOL)


def test_unroll_passes_through_and_changes_nothing():
    model = lstmx_nnx.RNN(lstmx.lstm(H), I, rngs=nnx.Rngs(2))
    chex.assert_trees_all_close(model(_xs(), unroll=3), model(_xs()), **TOL)
    with pytest.raises(ValueError, match="unroll"):
        model(_xs(), unroll=0)


@pytest.mark.parametrize("optimized", [False, True])
def test_lstm_weights_convert_exactly_both_ways(optimized):
    cell_type = nnx.OptimizedLSTMCell if optimized else nnx.LSTMCell
    theirs = cell_type(I, H, rngs=nnx.Rngs(7))
    params = lstmx_nnx.from_nnx_lstm(theirs)
    xs = _xs(1)
    c0, h0 = (jax.random.normal(jax.random.key(k), (B, H)) for k in (2, 3))
    (c, h), ys = _nnx_scan(theirs, (c0, h0), xs)
    final, ours = lstmx.scan(lstmx.lstm(H), params, xs, lstmx.LSTMState(h0, c0))
    chex.assert_trees_all_close((final.h, final.c, ours), (h, c, ys), **TOL)
    back = lstmx_nnx.to_nnx_lstm(params, optimized=optimized)
    chex.assert_trees_all_close(_nnx_scan(back, (c0, h0), xs), ((c, h), ys), **TOL)


def test_gru_weights_convert_exactly_both_ways():
    theirs = nnx.GRUCell(I, H, rngs=nnx.Rngs(5))
    state = nnx.state(theirs, nnx.Param)  # NNX inits the bias at zero: make it matter
    state["dense_i"]["bias"][...] = jax.random.normal(jax.random.key(9), (3 * H,))
    nnx.update(theirs, state)
    params = lstmx_nnx.from_nnx_gru(theirs)
    xs, h0 = _xs(2), jax.random.normal(jax.random.key(4), (B, H))
    h, ys = _nnx_scan(theirs, h0, xs)
    final, ours = lstmx.scan(lstmx.gru(H), params, xs, lstmx.GRUState(h0))
    chex.assert_trees_all_close((final.h, ours), (h, ys), **TOL)
    # b_hr and b_hz fold into dense_i's bias exactly.
    folded = params._replace(b_h=params.b_h.at[: 2 * H].set(0.5))
    expected = lstmx.scan(lstmx.gru(H), folded, xs, lstmx.GRUState(h0))
    h2, ys2 = _nnx_scan(lstmx_nnx.to_nnx_gru(folded), h0, xs)
    chex.assert_trees_all_close((h2, ys2), (expected[0].h, expected[1]), **TOL)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: lstmx_nnx.RNN("lstm", I, rngs=nnx.Rngs(0)), TypeError, "lstmx.Cell"),
        (lambda: lstmx_nnx.RNN(lstmx.lstm(H)), ValueError, "input_size and rngs"),
        (
            lambda: lstmx_nnx.from_nnx_lstm(nnx.GRUCell(I, H, rngs=nnx.Rngs(0))),
            TypeError,
            "LSTMCell",
        ),
        (
            lambda: lstmx_nnx.to_nnx_lstm(lstmx.variant("peephole", H).init(jax.random.key(0), I)),
            ValueError,
            "peephole",
        ),
        (
            lambda: lstmx_nnx.to_nnx_gru(
                lstmx.gru(H).init(jax.random.key(0), I)._replace(b_h=jnp.ones(3 * H))
            ),
            ValueError,
            "b_hn",
        ),
        (lambda: lstmx_nnx.to_nnx_gru(np.zeros(3)), TypeError, "GRUParams"),
    ],
)
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ------------------------------------------------------------------- the cell adapter


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_cell_adapter_in_nnx_rnn_equals_nnx_own_cell_with_the_same_weights(kind):
    """One NNX program, written for nnx.LSTMCell / nnx.GRUCell, run with theirs and with
    CellAdapter over the converted weights: outputs and final carries (Flax's form) equal,
    initial carry and seq_lengths included."""
    if kind == "lstm":
        theirs = nnx.LSTMCell(I, H, rngs=nnx.Rngs(7))
        ours = lstmx_nnx.CellAdapter(lstmx.lstm(H), params=lstmx_nnx.from_nnx_lstm(theirs))
        carry0 = tuple(jax.random.normal(jax.random.key(k), (B, H)) for k in (2, 3))
    else:
        theirs = nnx.GRUCell(I, H, rngs=nnx.Rngs(5))
        ours = lstmx_nnx.CellAdapter(lstmx.gru(H), params=lstmx_nnx.from_nnx_gru(theirs))
        carry0 = jax.random.normal(jax.random.key(2), (B, H))
    xs, lengths = _xs(1), jnp.array([T, 2, 4])
    for cell_carry in (None, carry0):
        results = [
            nnx.RNN(cell, return_carry=True)(xs, initial_carry=cell_carry, seq_lengths=lengths)
            for cell in (theirs, ours)
        ]
        chex.assert_trees_all_close(results[1], results[0], **TOL)


def test_cell_adapter_equals_lstmx_scan_and_trains_through_nnx_rnn():
    cell = lstmx.variant("cifg", H)
    adapter = lstmx_nnx.CellAdapter(cell, I, rngs=nnx.Rngs(0))
    xs = _xs(2)
    layer = nnx.RNN(adapter, return_carry=True)
    (c, h), ys = layer(xs)
    final, ys_ref = lstmx.scan(cell, adapter.params_tree(), xs)
    chex.assert_trees_all_close((c, h, ys), (final.c, final.h, ys_ref), **TOL)

    def loss_nnx(layer):
        return jnp.sum(layer(xs)[1] ** 2)

    grads = nnx.grad(loss_nnx)(layer)
    grads_ref = jax.grad(lambda p: jnp.sum(lstmx.scan(cell, p, xs)[1] ** 2))(adapter.params_tree())
    ours = nnx.to_pure_dict(grads)["cell"]["params"]
    expected = {name: g for name, g in grads_ref._asdict().items() if g is not None}
    chex.assert_trees_all_close({name: ours[name] for name in expected}, expected, **TOL)
    assert set(ours) == set(expected)


def test_cell_adapter_goes_inside_nnx_bidirectional():
    forward, backward = (
        lstmx_nnx.CellAdapter(lstmx.gru(H), I, rngs=nnx.Rngs(seed)) for seed in (1, 2)
    )
    xs = _xs(3)
    ys = nnx.Bidirectional(nnx.RNN(forward), nnx.RNN(backward))(xs)
    _, ys_forward = lstmx.scan(forward.cell, forward.params_tree(), xs)
    _, ys_backward = lstmx.scan(backward.cell, backward.params_tree(), xs, reverse=True)
    chex.assert_trees_all_close(ys, jnp.concatenate([ys_forward, ys_backward], -1), **TOL)


def test_cell_adapter_refuses_a_carry_init_and_a_carry_of_the_wrong_form():
    adapter = lstmx_nnx.CellAdapter(lstmx.lstm(H), I, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="give nnx.RNN an initial_carry instead"):
        adapter.initialize_carry((B, I), carry_init=nnx.initializers.zeros)
    with pytest.raises(TypeError, match=r"an LSTM's carry is Flax's \(c, h\) tuple"):
        adapter(lstmx.LSTMState(jnp.zeros((B, H)), jnp.zeros((B, H))), _xs()[:, 0])
    with pytest.raises(TypeError, match="cell must be an lstmx.Cell"):
        lstmx_nnx.CellAdapter(nnx.LSTMCell(I, H, rngs=nnx.Rngs(0)), I, rngs=nnx.Rngs(0))
