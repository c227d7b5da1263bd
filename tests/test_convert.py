"""lstmx.convert: PyTorch layouts against NumPy references, Flax cells, round trips, errors.

PyTorch is not needed: its nn.LSTM / nn.GRU equations are written out below in NumPy
(float64), from the PyTorch documentation, with its two biases and ``x Wᵀ``.
"""

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx import convert

ATOL = 1e-5
RTOL = 1e-5
N_IN, H, B, T = 3, 5, 2, 6


def _assert_trees_close(actual, expected, atol=ATOL, rtol=RTOL):
    chex.assert_trees_all_equal_structs(actual, expected)
    chex.assert_trees_all_close(actual, expected, atol=atol, rtol=rtol)


def _assert_trees_equal(actual, expected):
    chex.assert_trees_all_equal_structs(actual, expected)
    chex.assert_trees_all_equal(actual, expected)


def _torch_init(rng, num_gates):
    """Random PyTorch-layout arrays, U(-1/√H, 1/√H) like PyTorch's default init."""
    k = 1.0 / np.sqrt(H)
    shapes = {
        "weight_ih": (num_gates * H, N_IN),
        "weight_hh": (num_gates * H, H),
        "bias_ih": (num_gates * H,),
        "bias_hh": (num_gates * H,),
    }
    return {name: rng.uniform(-k, k, shape).astype(np.float32) for name, shape in shapes.items()}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _torch_lstm_reference(w, xs, h, c):
    """PyTorch nn.LSTM (batch_first) in NumPy float64: xs [B, T, I] -> ys, (h, c)."""
    w = {name: value.astype(np.float64) for name, value in w.items()}
    ys = []
    for t in range(xs.shape[1]):
        gates = xs[:, t] @ w["weight_ih"].T + w["bias_ih"] + h @ w["weight_hh"].T + w["bias_hh"]
        i, f, g, o = np.split(gates, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        ys.append(h)
    return np.stack(ys, axis=1), (h, c)


def _torch_gru_reference(w, xs, h):
    """PyTorch nn.GRU (batch_first) in NumPy float64: xs [B, T, I] -> ys, h."""
    w = {name: value.astype(np.float64) for name, value in w.items()}
    ys = []
    for t in range(xs.shape[1]):
        x_r, x_z, x_n = np.split(xs[:, t] @ w["weight_ih"].T + w["bias_ih"], 3, axis=-1)
        h_r, h_z, h_n = np.split(h @ w["weight_hh"].T + w["bias_hh"], 3, axis=-1)
        r, z = _sigmoid(x_r + h_r), _sigmoid(x_z + h_z)
        n = np.tanh(x_n + r * h_n)
        h = (1.0 - z) * n + z * h
        ys.append(h)
    return np.stack(ys, axis=1), h


def _inputs(rng):
    xs = rng.normal(size=(B, T, N_IN)).astype(np.float32)
    h0 = rng.normal(size=(B, H)).astype(np.float32)
    c0 = rng.normal(size=(B, H)).astype(np.float32)
    return xs, h0, c0


# --------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------


def test_from_torch_lstm_matches_pytorch_equations():
    rng = np.random.default_rng(0)
    w = _torch_init(rng, 4)
    xs, h0, c0 = _inputs(rng)
    params = convert.from_torch_lstm(**w)
    assert isinstance(params, lstmx.LSTMParams)
    assert params.w_x.shape == (N_IN, 4 * H) and params.w_h.shape == (H, 4 * H)
    state, ys = lstmx.scan(lstmx.lstm(H), params, xs, lstmx.LSTMState(h0, c0))
    ys_ref, (h_ref, c_ref) = _torch_lstm_reference(w, xs, h0, c0)
    np.testing.assert_allclose(ys, ys_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state.h, h_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state.c, c_ref, rtol=RTOL, atol=ATOL)


def test_from_torch_gru_matches_pytorch_equations():
    rng = np.random.default_rng(1)
    w = _torch_init(rng, 3)
    xs, h0, _ = _inputs(rng)
    params = convert.from_torch_gru(**w)
    assert isinstance(params, lstmx.GRUParams)
    state, ys = lstmx.scan(lstmx.gru(H, reset_after=True), params, xs, lstmx.GRUState(h0))
    ys_ref, h_ref = _torch_gru_reference(w, xs, h0)
    np.testing.assert_allclose(ys, ys_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state.h, h_ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    ("from_torch", "num_gates"),
    [(convert.from_torch_lstm, 4), (convert.from_torch_gru, 3)],
    ids=["lstm", "gru"],
)
def test_from_torch_without_bias_is_zero_bias(from_torch, num_gates):
    w = _torch_init(np.random.default_rng(2), num_gates)
    zeros = np.zeros_like(w["bias_ih"])
    without = from_torch(w["weight_ih"], w["weight_hh"])
    explicit = from_torch(w["weight_ih"], w["weight_hh"], zeros, zeros)
    _assert_trees_equal(without, explicit)


def test_from_torch_accepts_jax_arrays():
    w = _torch_init(np.random.default_rng(3), 4)
    from_numpy = convert.from_torch_lstm(**w)
    from_jax = convert.from_torch_lstm(**{k: jnp.asarray(v) for k, v in w.items()})
    _assert_trees_equal(from_jax, from_numpy)


def test_torch_lstm_round_trip():
    w = _torch_init(np.random.default_rng(4), 4)
    back = convert.to_torch_lstm(convert.from_torch_lstm(**w))
    assert set(back) == {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}
    assert all(isinstance(v, np.ndarray) for v in back.values())
    np.testing.assert_array_equal(back["weight_ih"], w["weight_ih"])
    np.testing.assert_array_equal(back["weight_hh"], w["weight_hh"])
    np.testing.assert_array_equal(back["bias_hh"], np.zeros_like(w["bias_hh"]))
    np.testing.assert_allclose(
        back["bias_ih"] + back["bias_hh"], w["bias_ih"] + w["bias_hh"], rtol=0, atol=0
    )
    # The other way round is exact: lstmx -> PyTorch -> lstmx gives the same arrays.
    params = lstmx.lstm(H).init(jax.random.key(0), N_IN)
    _assert_trees_equal(convert.from_torch_lstm(**convert.to_torch_lstm(params)), params)


def test_to_torch_lstm_output_runs_as_pytorch():
    """lstmx params, exported, give lstmx's outputs under PyTorch's equations."""
    rng = np.random.default_rng(5)
    cell = lstmx.lstm(H)
    params = cell.init(jax.random.key(1), N_IN)
    params = params._replace(b=params.b + jnp.asarray(rng.normal(size=4 * H), jnp.float32))
    xs, h0, c0 = _inputs(rng)
    state, ys = lstmx.scan(cell, params, xs, lstmx.LSTMState(h0, c0))
    ys_ref, (h_ref, c_ref) = _torch_lstm_reference(convert.to_torch_lstm(params), xs, h0, c0)
    np.testing.assert_allclose(ys, ys_ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(state.c, c_ref, rtol=RTOL, atol=ATOL)


def test_torch_gru_round_trip():
    w = _torch_init(np.random.default_rng(6), 3)
    back = convert.to_torch_gru(convert.from_torch_gru(**w))
    assert set(back) == set(w)
    for name, value in w.items():
        assert isinstance(back[name], np.ndarray)
        np.testing.assert_array_equal(back[name], value)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"peephole": True}, "peephole"),
        ({"peephole": True, "full_gate_recurrence": True}, "peephole"),
        ({"coupled": True}, "3 gate blocks, not 4"),
        ({"output_gate": False}, "3 gate blocks, not 4"),
    ],
    ids=["peephole", "fgr", "cifg", "nog"],
)
@pytest.mark.parametrize("to_peer", [convert.to_torch_lstm, convert.to_flax_lstm])
def test_to_peer_refuses_nonstandard_lstm(options, match, to_peer):
    params = lstmx.lstm(4, **options).init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=match) as info:
        to_peer(params)
    assert "only the standard LSTM cell" in str(info.value)


def test_to_peer_refuses_fgr_without_peepholes():
    params = lstmx.lstm(4, full_gate_recurrence=True).init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="full gate recurrence"):
        convert.to_torch_lstm(params)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weight_ih": np.zeros((10, 3))}, ValueError, r"\[4H, I\].*\(10, 3\)"),
        ({"weight_ih": np.zeros((20,))}, ValueError, r"\[4H, I\]"),
        ({"weight_hh": np.zeros((20, 4))}, ValueError, r"weight_hh must have shape \(20, 5\)"),
        ({"bias_ih": np.zeros((16,))}, ValueError, r"bias_ih must have shape \(20,\)"),
        ({"bias_hh": np.zeros((20, 1))}, ValueError, r"bias_hh must have shape \(20,\)"),
        ({"weight_ih": np.zeros((20, 3), np.int32)}, TypeError, "floating dtype"),
        ({"weight_hh": "weights"}, TypeError, "must be an array"),
    ],
    ids=["ih-not-4H", "ih-1d", "hh-wrong-H", "bias-ih", "bias-hh-2d", "int-dtype", "not-array"],
)
def test_from_torch_lstm_bad_input(kwargs, error, match):
    w = {
        "weight_ih": np.zeros((20, 3), np.float32),
        "weight_hh": np.zeros((20, 5), np.float32),
        "bias_ih": np.zeros((20,), np.float32),
        "bias_hh": np.zeros((20,), np.float32),
    }
    with pytest.raises(error, match=match):
        convert.from_torch_lstm(**{**w, **kwargs})


def test_from_torch_gru_refuses_lstm_weights():
    w = _torch_init(np.random.default_rng(7), 4)  # [20, 3] and [20, 5]: not 3H rows
    with pytest.raises(ValueError, match=r"nn.GRU layout \[3H, I\]"):
        convert.from_torch_gru(**w)
    lstm_h3 = {"weight_ih": np.zeros((12, 3), np.float32), "weight_hh": np.zeros((12, 3))}
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(12, 4\).*H=4"):
        convert.from_torch_gru(**lstm_h3)  # 12 rows read as 3H, H=4


def test_to_torch_bad_params_type():
    gru_params = lstmx.gru(4).init(jax.random.key(0), 3)
    lstm_params = lstmx.lstm(4).init(jax.random.key(0), 3)
    with pytest.raises(TypeError, match="must be LSTMParams.*got GRUParams"):
        convert.to_torch_lstm(gru_params)
    with pytest.raises(TypeError, match="must be GRUParams.*got LSTMParams"):
        convert.to_torch_gru(lstm_params)
    with pytest.raises(TypeError, match="must be GRUParams"):
        convert.to_flax_gru(lstm_params)


# --------------------------------------------------------------------------------------
# Flax linen
# --------------------------------------------------------------------------------------


def _perturbed_flax(flax_cell, key):
    """Flax variables with noise on every array, so that the biases are non-zero."""
    key_init, key_carry, key_noise, key_x = jax.random.split(key, 4)
    x0 = jnp.zeros((B, N_IN))
    carry = flax_cell.initialize_carry(key_carry, x0.shape)
    variables = flax_cell.init(key_init, carry, x0)
    leaves, treedef = jax.tree_util.tree_flatten(variables)
    noise_keys = jax.random.split(key_noise, len(leaves))
    leaves = [
        x + 0.3 * jax.random.normal(k, x.shape, x.dtype)
        for k, x in zip(noise_keys, leaves, strict=True)
    ]
    xs = jax.random.normal(key_x, (B, T, N_IN))
    return jax.tree_util.tree_unflatten(treedef, leaves), xs


def _flax_loop(flax_cell, variables, carry, xs):
    ys = []
    for t in range(xs.shape[1]):
        carry, y = flax_cell.apply(variables, carry, xs[:, t])
        ys.append(y)
    return carry, jnp.stack(ys, axis=1)


@pytest.mark.parametrize("flax_cls", [nn.LSTMCell, nn.OptimizedLSTMCell])
def test_from_flax_lstm_matches_flax(flax_cls):
    flax_cell = flax_cls(features=H)
    variables, xs = _perturbed_flax(flax_cell, jax.random.key(0))
    assert np.abs(variables["params"]["hf"]["bias"]).min() > 0
    key_c, key_h = jax.random.split(jax.random.key(1))
    carry0 = (jax.random.normal(key_c, (B, H)), jax.random.normal(key_h, (B, H)))  # (c, h)
    carry, ys_flax = _flax_loop(flax_cell, variables, carry0, xs)

    params = convert.from_flax_lstm(variables)
    state0 = convert.from_flax_carry(carry0)
    assert isinstance(state0, lstmx.LSTMState)
    np.testing.assert_array_equal(state0.c, carry0[0])
    state, ys = lstmx.scan(lstmx.lstm(H), params, xs, state0)
    np.testing.assert_allclose(ys, ys_flax, rtol=RTOL, atol=ATOL)
    _assert_trees_close(convert.to_flax_carry(state), carry)


def test_from_flax_gru_matches_flax():
    flax_cell = nn.GRUCell(features=H)
    variables, xs = _perturbed_flax(flax_cell, jax.random.key(2))
    carry0 = jax.random.normal(jax.random.key(3), (B, H))
    carry, ys_flax = _flax_loop(flax_cell, variables, carry0, xs)

    params = convert.from_flax_gru(variables)
    np.testing.assert_array_equal(params.b_h[: 2 * H], np.zeros(2 * H))
    state0 = convert.from_flax_carry(carry0)
    assert isinstance(state0, lstmx.GRUState)
    state, ys = lstmx.scan(lstmx.gru(H, reset_after=True), params, xs, state0)
    np.testing.assert_allclose(ys, ys_flax, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(convert.to_flax_carry(state), carry, rtol=RTOL, atol=ATOL)


def test_from_flax_accepts_params_subtree_and_frozendict():
    variables, _ = _perturbed_flax(nn.LSTMCell(features=H), jax.random.key(4))
    expected = convert.from_flax_lstm(variables)
    _assert_trees_equal(convert.from_flax_lstm(variables["params"]), expected)
    _assert_trees_equal(convert.from_flax_lstm(flax.core.freeze(variables)), expected)


def test_flax_lstm_round_trips():
    variables, _ = _perturbed_flax(nn.LSTMCell(features=H), jax.random.key(5))
    _assert_trees_equal(convert.to_flax_lstm(convert.from_flax_lstm(variables)), variables)
    cell = lstmx.lstm(H)
    params = cell.init(jax.random.key(6), N_IN)
    _assert_trees_equal(convert.from_flax_lstm(convert.to_flax_lstm(params)), params)


@pytest.mark.parametrize("flax_cls", [nn.LSTMCell, nn.OptimizedLSTMCell])
def test_to_flax_lstm_runs_in_flax(flax_cls):
    cell = lstmx.lstm(H)
    key_p, key_x, key_s = jax.random.split(jax.random.key(7), 3)
    params = cell.init(key_p, N_IN)
    params = params._replace(b=jax.random.normal(key_p, params.b.shape))
    x = jax.random.normal(key_x, (B, N_IN))
    state0 = lstmx.LSTMState(*jax.random.normal(key_s, (2, B, H)))
    state, y = cell.step(params, state0, x)
    carry, y_flax = flax_cls(features=H).apply(
        convert.to_flax_lstm(params), convert.to_flax_carry(state0), x
    )
    np.testing.assert_allclose(y_flax, y, rtol=RTOL, atol=ATOL)
    _assert_trees_close(convert.from_flax_carry(carry), state)


def test_flax_gru_round_trips():
    variables, _ = _perturbed_flax(nn.GRUCell(features=H), jax.random.key(8))
    _assert_trees_equal(convert.to_flax_gru(convert.from_flax_gru(variables)), variables)

    # lstmx -> Flax folds b_hr, b_hz into b_ir, b_iz: the same function, not the same arrays.
    cell = lstmx.gru(H)
    key_p, key_b, key_x = jax.random.split(jax.random.key(9), 3)
    params = cell.init(key_p, N_IN)
    params = params._replace(
        b_x=jax.random.normal(key_b, (3 * H,)), b_h=jax.random.normal(key_x, (3 * H,))
    )
    back = convert.from_flax_gru(convert.to_flax_gru(params))
    np.testing.assert_array_equal(back.w_x, params.w_x)
    np.testing.assert_array_equal(back.w_h, params.w_h)
    np.testing.assert_allclose(back.b_x + back.b_h, params.b_x + params.b_h, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(back.b_h[2 * H :], params.b_h[2 * H :])
    xs = jax.random.normal(key_x, (B, T, N_IN))
    _assert_trees_close(lstmx.scan(cell, back, xs), lstmx.scan(cell, params, xs))

    # And Flax runs the exported params as lstmx does.
    state0 = lstmx.GRUState(jax.random.normal(key_b, (B, H)))
    state, y = cell.step(params, state0, xs[:, 0])
    carry, y_flax = nn.GRUCell(features=H).apply(convert.to_flax_gru(params), state0.h, xs[:, 0])
    np.testing.assert_allclose(y_flax, y, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(carry, state.h, rtol=RTOL, atol=ATOL)


def test_from_flax_bad_input():
    lstm_vars, _ = _perturbed_flax(nn.LSTMCell(features=H), jax.random.key(10))
    gru_vars, _ = _perturbed_flax(nn.GRUCell(features=H), jax.random.key(11))
    params = dict(lstm_vars["params"])

    with pytest.raises(TypeError, match="dict.*got list"):
        convert.from_flax_lstm([1, 2])
    missing = {k: v for k, v in params.items() if k != "hf"}
    with pytest.raises(ValueError, match=r"missing \['hf'\]"):
        convert.from_flax_lstm({"params": missing})
    with pytest.raises(ValueError, match=r"missing \['ii', 'if'"):
        convert.from_flax_lstm(gru_vars)  # a GRU's variables are not an LSTM's
    with pytest.raises(ValueError, match=r"missing \['iz', 'hz'\]"):
        convert.from_flax_gru({k: v for k, v in gru_vars["params"].items() if "z" not in k})
    no_bias = {**params, "ho": {"kernel": params["ho"]["kernel"]}}
    with pytest.raises(ValueError, match="'ho' must hold a 'bias'"):
        convert.from_flax_lstm(no_bias)
    input_bias = {**params, "if": {**params["if"], "bias": jnp.zeros(H)}}
    with pytest.raises(ValueError, match="'if' has a 'bias'"):
        convert.from_flax_lstm(input_bias)
    wrong_h = {**params, "hg": {"kernel": jnp.zeros((H, H + 1)), "bias": jnp.zeros(H)}}
    with pytest.raises(ValueError, match=r"hg\['kernel'\] must have shape \(5, 5\), got \(5, 6\)"):
        convert.from_flax_lstm(wrong_h)
    wrong_i = {**params, "io": {"kernel": jnp.zeros((N_IN + 1, H))}}
    with pytest.raises(ValueError, match=r"io\['kernel'\] must have shape \(3, 5\)"):
        convert.from_flax_lstm(wrong_i)
    wrong_bias = {**params, "hi": {"kernel": params["hi"]["kernel"], "bias": jnp.zeros(H + 2)}}
    with pytest.raises(ValueError, match=r"hi\['bias'\] must have shape \(5,\)"):
        convert.from_flax_lstm(wrong_bias)


def test_flax_carry_bad_input():
    with pytest.raises(TypeError, match=r"LSTMState.*GRUState.*got FGRState"):
        convert.to_flax_carry(lstmx.lstm(4, full_gate_recurrence=True).initial_state((2,)))
    with pytest.raises(ValueError, match="equal shapes"):
        convert.from_flax_carry((jnp.zeros((2, 4)), jnp.zeros((2, 5))))
    with pytest.raises(TypeError, match="got str"):
        convert.from_flax_carry("carry")


def test_convert_imports_neither_torch_nor_flax():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(convert))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "flax"}, imported
