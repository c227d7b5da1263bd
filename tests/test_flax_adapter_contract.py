"""The Flax adapters' contract: Flax's own recurrent test cases, ported and made exact.

Flax's tests of its cells and ``RNN`` (``tests/nnx/nn/recurrent_test.py``,
``tests/linen/linen_recurrent_test.py``) step a cell by hand, run ``RNN`` time-major,
reversed, reversed in order, with ``seq_lengths`` and a returned carry, unrolled, inside
``Bidirectional``, and in bfloat16. Each case here runs the same program twice, once with
Flax's ``LSTMCell`` / ``GRUCell`` and once with lstmx's adapter (``lstmx.nnx.CellAdapter``,
``lstmx.linen.CellWrapper``) holding the converted weights, and asks for equal outputs
and carries, not only shapes: code written for Flax's cells must run unchanged.
"""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

import lstmx
from lstmx import convert
from lstmx import nnx as lstmx_nnx
from lstmx.linen import CellWrapper

B, T, I, H = 2, 5, 3, 4
TOL = {"rtol": 1e-5, "atol": 1e-5}
XS = jax.random.normal(jax.random.key(42), (B, T, I))
LENGTHS = jnp.array([3, 5])

# What each case passes to RNN(...) and to its call, as in Flax's tests.
RNN_CASES = {
    "plain": ({}, {}),
    "time_major": ({"time_major": True}, {}),
    "reverse": ({"reverse": True}, {}),
    "reverse_keep_order": ({"reverse": True, "keep_order": True}, {}),
    "seq_lengths_return_carry": ({"return_carry": True}, {"seq_lengths": LENGTHS}),
    "unroll_2": ({"unroll": 2}, {}),
}


def _nnx_pair(kind, dtype=jnp.float32):
    if kind == "lstm":
        theirs = nnx.LSTMCell(I, H, dtype=dtype, param_dtype=dtype, rngs=nnx.Rngs(0))
        params = lstmx_nnx.from_nnx_lstm(theirs)
        ours = lstmx_nnx.CellAdapter(lstmx.lstm(H), params=params, dtype=dtype)
    else:
        theirs = nnx.GRUCell(I, H, dtype=dtype, param_dtype=dtype, rngs=nnx.Rngs(1))
        params = lstmx_nnx.from_nnx_gru(theirs)
        ours = lstmx_nnx.CellAdapter(lstmx.gru(H), params=params, dtype=dtype)
    return theirs, ours


def _inputs(options):
    return jnp.swapaxes(XS, 0, 1) if options.get("time_major") else XS


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_nnx_step_by_hand_from_initialize_carry(kind):
    """Flax's test_basic, test_lstm_sequence and test_lstm_stateful: a hand-written loop."""
    results = []
    for cell in _nnx_pair(kind):
        carry = cell.initialize_carry((B, I), nnx.Rngs(0))
        ys = []
        for t in range(T):
            carry, y = cell(carry, XS[:, t])
            ys.append(y)
        results.append((carry, jnp.stack(ys, 1)))
    chex.assert_trees_all_close(results[1], results[0], **TOL)
    if kind == "lstm":
        c, h = results[1][0]  # Flax's unpacking: c first
        chex.assert_trees_all_close((c, h), results[0][0], **TOL)


@pytest.mark.parametrize("case", list(RNN_CASES))
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_nnx_rnn_cases(kind, case):
    options, call = RNN_CASES[case]
    xs = _inputs(options)
    results = [nnx.RNN(cell, **options)(xs, **call) for cell in _nnx_pair(kind)]
    chex.assert_trees_all_close(results[1], results[0], **TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_nnx_bidirectional(kind):
    forward, backward = _nnx_pair(kind), _nnx_pair(kind)
    results = [
        nnx.Bidirectional(nnx.RNN(forward[i]), nnx.RNN(backward[i]))(XS, seq_lengths=LENGTHS)
        for i in (0, 1)
    ]
    chex.assert_trees_all_close(results[1], results[0], **TOL)


# The LSTM only, as Flax's test: Flax's own GRUCell cannot initialise in bfloat16 on the
# CPU (its orthogonal recurrent kernel needs a QR that LAPACK has only in 32 and 64 bits).
@pytest.mark.parametrize("kind", ["lstm"])
def test_nnx_bfloat16(kind):
    """Flax's test_lstm_with_different_dtypes: bfloat16 params, inputs and outputs."""
    results = [nnx.RNN(cell)(XS.astype(jnp.bfloat16)) for cell in _nnx_pair(kind, jnp.bfloat16)]
    assert results[1].dtype == results[0].dtype == jnp.bfloat16
    chex.assert_trees_all_close(
        results[1].astype(jnp.float32), results[0].astype(jnp.float32), rtol=0.05, atol=0.05
    )


def _linen_pair(kind):
    if kind == "lstm":
        theirs, to_lstmx, cell = nn.LSTMCell(H), convert.from_flax_lstm, lstmx.lstm(H)
    else:
        theirs, to_lstmx, cell = nn.GRUCell(H), convert.from_flax_gru, lstmx.gru(H)
    return theirs, to_lstmx, CellWrapper(cell)


@pytest.mark.parametrize("case", list(RNN_CASES))
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_linen_rnn_cases(kind, case):
    options, call = RNN_CASES[case]
    xs = _inputs(options)
    theirs, to_lstmx, ours = _linen_pair(kind)
    flax_layer = nn.RNN(theirs, **options)
    variables = flax_layer.init(jax.random.key(3), xs, **call)
    expected = flax_layer.apply(variables, xs, **call)
    params = {"params": {"cell": {"cell": to_lstmx(variables["params"]["cell"])}}}
    got = nn.RNN(ours, **options).apply(params, xs, **call)
    chex.assert_trees_all_close(got, expected, **TOL)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_linen_bidirectional(kind):
    theirs, to_lstmx, ours = _linen_pair(kind)
    flax_layer = nn.Bidirectional(nn.RNN(theirs), nn.RNN(theirs.clone()))
    variables = flax_layer.init(jax.random.key(4), XS, seq_lengths=LENGTHS)
    expected = flax_layer.apply(variables, XS, seq_lengths=LENGTHS)
    converted = {
        name: {"cell": {"cell": to_lstmx(tree["cell"])}}
        for name, tree in variables["params"].items()
    }
    ours_layer = nn.Bidirectional(nn.RNN(ours), nn.RNN(ours.clone()))
    got = ours_layer.apply({"params": converted}, XS, seq_lengths=LENGTHS)
    chex.assert_trees_all_close(got, expected, **TOL)
