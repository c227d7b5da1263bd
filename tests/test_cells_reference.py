"""lstmx cells against an independent float64 NumPy reference (tests/reference.py).

Every named variant and a spread of ``lstmx.lstm`` option combinations are run step by
step with random non-zero weights (biases, peepholes and FGR matrices included) from a
random non-zero initial state, and compared with the reference written from the papers'
equations (the README's "The cells"). Every named variant (the reference has a spec for
each name of ``lstmx.variant_names()``, no more, no fewer) is also run through
``lstmx.scan`` (its fast path where it has one; minGRU / minLSTM on both their parallel
and sequential paths) in float64 and held to the reference at 1e-13. Parameter and state
layouts (named fields) and the README's claims about the default and chrono
initialisations are checked here; shapes, dtypes and batch shapes of every cell are in
tests/test_contract.py.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

try:  # `python -m pytest` from the repository root
    from tests import reference as ref
except ImportError:  # `pytest` with tests/ on sys.path (rootdir-relative import)
    import reference as ref

INPUT_SIZE = 4
HIDDEN_SIZE = 5
STEPS = 8
RTOL = 1e-5
ATOL = 1e-5

LSTM_VARIANTS = tuple(n for n, s in ref.VARIANT_SPECS.items() if isinstance(s, ref.LSTMSpec))
BATCH_SHAPES = {"unbatched": (), "batch3": (3,), "batch2x3": (2, 3)}


# --------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------


def _rng(*tags) -> np.random.Generator:
    """A deterministic generator per test case (seeded from the case's tags)."""
    seed = sum((i + 1) * ord(ch) for i, ch in enumerate(repr(tags)))
    return np.random.default_rng(seed)


# The lstmx params and state types of each reference spec.
PARAMS_TYPES = {
    ref.LSTMSpec: lstmx.LSTMParams,
    ref.GRUSpec: lstmx.GRUParams,
    ref.RNNSpec: lstmx.RNNParams,
    ref.JANETSpec: lstmx.JANETParams,
    ref.MGUSpec: lstmx.MGUParams,
    ref.IndRNNSpec: lstmx.IndRNNParams,
    ref.MinGRUSpec: lstmx.MinGRUParams,
    ref.MinLSTMSpec: lstmx.MinLSTMParams,
    ref.SLSTMSpec: lstmx.SLSTMParams,
}
STATE_TYPES = {
    ref.LSTMSpec: lstmx.LSTMState,
    ref.GRUSpec: lstmx.GRUState,
    ref.RNNSpec: lstmx.RNNState,
    ref.JANETSpec: lstmx.JANETState,
    ref.MGUSpec: lstmx.MGUState,
    ref.IndRNNSpec: lstmx.IndRNNState,
    ref.MinGRUSpec: lstmx.MinRNNState,
    ref.MinLSTMSpec: lstmx.MinRNNState,
    ref.SLSTMSpec: lstmx.SLSTMState,
}


def _make_cell(spec: ref.Spec, hidden_size: int, **kwargs):
    if isinstance(spec, ref.LSTMSpec):
        return lstmx.lstm(hidden_size, **spec.kwargs(hidden_size), **kwargs)
    if isinstance(spec, ref.GRUSpec):
        return lstmx.gru(hidden_size, **spec.kwargs(), **kwargs)
    activation = {"tanh": jnp.tanh, "relu": jax.nn.relu}[spec.activation]
    return lstmx.rnn(hidden_size, activation=activation, **kwargs)


def _check_param_layout(params, spec: ref.Spec, input_size: int, hidden_size: int):
    expected = ref.param_shapes(spec, input_size, hidden_size)
    assert set(params._fields) == set(expected), (params._fields, expected)
    for name, shape in expected.items():
        value = getattr(params, name)
        if shape is None:
            assert value is None, f"{name} should be None, got shape {np.shape(value)}"
        else:
            assert value is not None, f"{name} is None, expected shape {shape}"
            assert tuple(value.shape) == shape, f"{name}: {value.shape} != {shape}"


def _with_weights(params, weights, dtype=jnp.float32):
    """The cell's own params NamedTuple with every present field replaced (by name)."""
    replace = {k: jnp.asarray(v, dtype) for k, v in weights.items() if v is not None}
    return params._replace(**replace)


def _with_state(state, values, dtype=jnp.float32):
    assert set(state._fields) == set(values), (state._fields, tuple(values))
    return state._replace(**{k: jnp.asarray(v, dtype) for k, v in values.items()})


def _run_lstmx(cell, params, state, xs):
    ys = []
    for t in range(xs.shape[-2]):
        state, y = cell.step(params, state, jnp.asarray(xs[..., t, :], jnp.float32))
        ys.append(np.asarray(y))
    return state, np.stack(ys, axis=-2)


def _compare_with_reference(cell, spec, batch_shape, rng, input_size=INPUT_SIZE):
    H = HIDDEN_SIZE
    params = cell.init(jax.random.PRNGKey(0), input_size)
    _check_param_layout(params, spec, input_size, H)
    weights = ref.random_weights(spec, input_size, H, rng)
    state0 = ref.random_state(spec, batch_shape, H, rng)
    xs = rng.standard_normal((*batch_shape, STEPS, input_size)).astype(np.float32)

    state = _with_state(cell.initial_state(batch_shape), state0)
    final, ys = _run_lstmx(cell, _with_weights(params, weights), state, xs)
    ys_ref, final_ref = ref.reference_run(spec, weights, xs, state0)

    assert ys.shape == (*batch_shape, STEPS, cell.output_size)
    np.testing.assert_allclose(ys, ys_ref, rtol=RTOL, atol=ATOL, err_msg="outputs")
    assert set(final._fields) == set(final_ref)
    for name, expected in final_ref.items():
        np.testing.assert_allclose(
            np.asarray(getattr(final, name)), expected, rtol=RTOL, atol=ATOL, err_msg=name
        )


def _bias_blocks(b, names, hidden_size):
    b = np.asarray(b)
    return {name: b[j * hidden_size : (j + 1) * hidden_size] for j, name in enumerate(names)}


# --------------------------------------------------------------------------------------
# The reference itself, checked by hand (no lstmx involved).
# --------------------------------------------------------------------------------------


def test_reference_peephole_lstm_matches_scalar_hand_computation():
    # I = H = 1: every quantity is a scalar, so the equations can be written out directly.
    wx = {"i": 0.3, "f": -0.2, "g": 0.5, "o": 0.7}
    wh = {"i": -0.4, "f": 0.6, "g": 0.1, "o": -0.3}
    b = {"i": 0.1, "f": 1.0, "g": -0.2, "o": 0.05}
    p = {"i": 0.25, "f": -0.15, "o": 0.35}
    x, h0, c0 = 0.8, -0.5, 0.9
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    i = sig(wx["i"] * x + wh["i"] * h0 + b["i"] + p["i"] * c0)
    f = sig(wx["f"] * x + wh["f"] * h0 + b["f"] + p["f"] * c0)
    g = math.tanh(wx["g"] * x + wh["g"] * h0 + b["g"])
    c = f * c0 + i * g
    o = sig(wx["o"] * x + wh["o"] * h0 + b["o"] + p["o"] * c)
    h = o * math.tanh(c)

    order = "ifgo"
    weights = {
        "w_x": np.array([[wx[k] for k in order]]),
        "w_h": np.array([[wh[k] for k in order]]),
        "b": np.array([b[k] for k in order]),
        "p": np.array([[p["i"]], [p["f"]], [p["o"]]]),
        "w_gates": None,
    }
    ys, final = ref.reference_run(
        ref.LSTMSpec(peephole=True), weights, np.array([[x]]), {"h": np.array([h0]), "c": [c0]}
    )
    np.testing.assert_allclose(ys, [[h]], rtol=1e-14, atol=0)
    np.testing.assert_allclose(final["c"], [c], rtol=1e-14, atol=0)


def test_reference_lstm_matches_fused_matrix_form():
    # The textbook fused form: z = [x, h] @ [W_x; W_h] + b, split into four equal blocks.
    rng = _rng("fused")
    spec = ref.LSTMSpec(peephole=True)
    w = ref.random_weights(spec, INPUT_SIZE, HIDDEN_SIZE, rng)
    s = ref.random_state(spec, (3,), HIDDEN_SIZE, rng)
    x = rng.standard_normal((3, INPUT_SIZE))
    z = np.concatenate([x, s["h"]], -1) @ np.concatenate([w["w_x"], w["w_h"]]) + w["b"]
    zi, zf, zg, zo = np.split(z, 4, axis=-1)
    i = ref.sigmoid(zi + w["p"][0] * s["c"])
    f = ref.sigmoid(zf + w["p"][1] * s["c"])
    c = f * s["c"] + i * np.tanh(zg)
    h = ref.sigmoid(zo + w["p"][2] * c) * np.tanh(c)
    out = ref.reference_step(spec, w, s, x)
    np.testing.assert_allclose(out["h"], h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["c"], c, rtol=1e-12, atol=1e-12)


def test_reference_zero_peepholes_and_zero_fgr_reduce_to_plain_lstm():
    rng = _rng("reduce")
    plain, fgr = ref.LSTMSpec(), ref.LSTMSpec(peephole=True, full_gate_recurrence=True)
    w = ref.random_weights(fgr, INPUT_SIZE, HIDDEN_SIZE, rng)
    s = ref.random_state(fgr, (3,), HIDDEN_SIZE, rng)
    xs = rng.standard_normal((3, STEPS, INPUT_SIZE))
    w_zero = dict(w, p=np.zeros_like(w["p"]), w_gates=np.zeros_like(w["w_gates"]))
    ys_fgr, _ = ref.reference_run(fgr, w_zero, xs, s)
    ys_plain, _ = ref.reference_run(
        plain, dict(w, p=None, w_gates=None), xs, {"h": s["h"], "c": s["c"]}
    )
    np.testing.assert_allclose(ys_fgr, ys_plain, rtol=1e-12, atol=1e-12)
    # ...and non-zero FGR matrices do change the result.
    ys_fgr_nonzero, _ = ref.reference_run(fgr, dict(w, p=w_zero["p"]), xs, s)
    assert np.max(np.abs(ys_fgr_nonzero - ys_plain)) > 1e-3


def test_reference_fgr_state_carries_this_steps_gate_activations():
    rng = _rng("fgr-gates")
    spec = ref.LSTMSpec(peephole=True, full_gate_recurrence=True, input_gate=False)
    assert spec.sigmoid_gates == ("f", "o")
    w = ref.random_weights(spec, INPUT_SIZE, HIDDEN_SIZE, rng)
    s = ref.random_state(spec, (3,), HIDDEN_SIZE, rng)
    x = rng.standard_normal((3, INPUT_SIZE))
    out = ref.reference_step(spec, w, s, x)
    # Recompute o from the returned c and h: h = o tanh(c).
    o = out["h"] / np.tanh(out["c"])
    np.testing.assert_allclose(out["gates"][:, HIDDEN_SIZE:], o, rtol=1e-10, atol=1e-10)
    assert out["gates"].shape == (3, 2 * HIDDEN_SIZE)


def test_reference_coupled_input_gate_is_one_minus_forget_gate():
    rng = _rng("coupled")
    spec = ref.LSTMSpec(coupled=True)
    assert spec.blocks == ("f", "g", "o")
    w = ref.random_weights(spec, INPUT_SIZE, HIDDEN_SIZE, rng)
    s = ref.random_state(spec, (3,), HIDDEN_SIZE, rng)
    x = rng.standard_normal((3, INPUT_SIZE))
    H = HIDDEN_SIZE
    z = x @ w["w_x"] + s["h"] @ w["w_h"] + w["b"]
    f, g = ref.sigmoid(z[:, :H]), np.tanh(z[:, H : 2 * H])
    c = f * s["c"] + (1 - f) * g
    np.testing.assert_allclose(ref.reference_step(spec, w, s, x)["c"], c, rtol=1e-12)


def test_reference_gru_conventions_differ_only_through_the_reset_gate():
    rng = _rng("gru")
    after, before = ref.GRUSpec(reset_after=True), ref.GRUSpec(reset_after=False)
    w = ref.random_weights(after, INPUT_SIZE, HIDDEN_SIZE, rng)
    xs = rng.standard_normal((3, STEPS, INPUT_SIZE))
    s = ref.random_state(after, (3,), HIDDEN_SIZE, rng)
    ys_after, _ = ref.reference_run(after, w, xs, s)
    ys_before, _ = ref.reference_run(before, w, xs, s)
    assert np.max(np.abs(ys_after - ys_before)) > 1e-3
    # From h = 0 with b_hn = 0, the first step is the same in both conventions.
    w0 = dict(w, b_h=np.concatenate([w["b_h"][: 2 * HIDDEN_SIZE], np.zeros(HIDDEN_SIZE)]))
    y_after, _ = ref.reference_run(after, w0, xs[:, :1])
    y_before, _ = ref.reference_run(before, w0, xs[:, :1])
    np.testing.assert_allclose(y_after, y_before, rtol=1e-12, atol=1e-12)


def test_reference_np_variant_is_plain_lstm():
    assert ref.VARIANT_SPECS["np"] == ref.VARIANT_SPECS["lstm"] == ref.LSTMSpec()


@pytest.mark.parametrize("forget_gate", ["sigmoid", "exp"])
def test_reference_slstm_is_the_stabilised_form_of_the_plain_equations(forget_gate):
    # Un-stabilised, with R built densely: c = f c + i z, n = f n + i, h = o c / n,
    # i = exp(ĩ), from c = n = 0. The stabilised reference carries c e^{-m} and n e^{-m}.
    rng = _rng("slstm-plain", forget_gate)
    H, K = 6, 2
    d = H // K
    spec = ref.SLSTMSpec(forget_gate=forget_gate, num_heads=K)
    w = ref.random_weights(spec, INPUT_SIZE, H, rng)
    xs = rng.standard_normal((3, STEPS, INPUT_SIZE))
    R = np.zeros((H, 4 * H))
    for k in range(K):
        for gate in range(4):
            R[k * d : (k + 1) * d, gate * H + k * d : gate * H + (k + 1) * d] = w["w_h"][k][
                :, gate * d : (gate + 1) * d
            ]
    h, c, n = np.zeros((3, H)), np.zeros((3, H)), np.zeros((3, H))
    hs = []
    for t in range(STEPS):
        z = xs[:, t] @ w["w_x"] + h @ R + w["b"]
        i_raw, f_raw, z_raw, o_raw = np.split(z, 4, axis=-1)
        f = ref.sigmoid(f_raw) if forget_gate == "sigmoid" else np.exp(f_raw)
        c = f * c + np.exp(i_raw) * np.tanh(z_raw)
        n = f * n + np.exp(i_raw)
        h = ref.sigmoid(o_raw) * c / n
        hs.append(h)
    ys, final = ref.reference_run(spec, w, xs)  # from the zero state
    np.testing.assert_allclose(ys, np.stack(hs, axis=-2), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(final["c"] * np.exp(final["m"]), c, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(final["n"] * np.exp(final["m"]), n, rtol=1e-12, atol=1e-13)
    assert np.all(final["n"] >= 1.0)  # one of f', i' is 1 at every step


def test_reference_lstmp_with_an_identity_projection_is_the_plain_lstm():
    rng = _rng("lstmp-identity")
    plain, projected = ref.LSTMSpec(), ref.LSTMSpec(proj_size=HIDDEN_SIZE)
    w = ref.random_weights(projected, INPUT_SIZE, HIDDEN_SIZE, rng)
    s = ref.random_state(plain, (3,), HIDDEN_SIZE, rng)
    xs = rng.standard_normal((3, STEPS, INPUT_SIZE))
    ys_plain, _ = ref.reference_run(plain, dict(w, w_hr=None), xs, s)
    ys_identity, _ = ref.reference_run(projected, dict(w, w_hr=np.eye(HIDDEN_SIZE)), xs, s)
    np.testing.assert_allclose(ys_identity, ys_plain, rtol=1e-14, atol=1e-14)
    assert ref.VARIANT_SPECS["lstmp"].h_size(HIDDEN_SIZE) == 2  # max(1, H // 2)


def test_reference_layer_norm_lstm_ignores_the_scale_of_its_kernels():
    # Ba et al.'s LN normalises each term: scaling W_x and W_h changes only the epsilon's
    # share (1e-5 against variances of order 1).
    rng = _rng("ln-scale")
    spec = ref.VARIANT_SPECS["ln_lstm"]
    w = ref.random_weights(spec, INPUT_SIZE, HIDDEN_SIZE, rng)
    s = ref.random_state(spec, (3,), HIDDEN_SIZE, rng)
    xs = rng.standard_normal((3, STEPS, INPUT_SIZE))
    ys, _ = ref.reference_run(spec, w, xs, s)
    scaled, _ = ref.reference_run(spec, dict(w, w_x=10 * w["w_x"], w_h=10 * w["w_h"]), xs, s)
    np.testing.assert_allclose(scaled, ys, rtol=0, atol=1e-4)
    plain, _ = ref.reference_run(ref.LSTMSpec(), w, xs, s)
    assert np.max(np.abs(plain - ys)) > 1e-2  # ...and the normalisation does something


# --------------------------------------------------------------------------------------
# Variant registry.
# --------------------------------------------------------------------------------------


def test_reference_has_a_spec_for_exactly_the_variant_names():
    names, specs = set(lstmx.variant_names()), set(ref.VARIANT_SPECS)
    assert names == specs, (
        f"variant_names() lacks {sorted(specs - names)}; "
        f"tests/reference.py lacks {sorted(names - specs)}"
    )


def test_unknown_variant_raises_value_error_listing_names():
    with pytest.raises(ValueError, match="lstm") as info:
        lstmx.variant("no_such_cell", HIDDEN_SIZE)
    for name in ("gru", "cifg", "fgr"):
        assert name in str(info.value)


# --------------------------------------------------------------------------------------
# Forward pass against the reference.
# --------------------------------------------------------------------------------------


# Every variant with a batch of 3; the cells with the most broadcasting (peepholes, gate
# recurrence, two GRU biases, layer-norm gains, the sLSTM's per-head reshapes) also
# unbatched and with two batch axes.
ALL_BATCHES = ("fgr", "cifg", "gru", "gru_cho", "ln_lstm", "slstm")
VARIANT_BATCHES = [
    (name, batch_name)
    for name in ref.VARIANT_SPECS
    for batch_name in (BATCH_SHAPES if name in ALL_BATCHES else ["batch3"])
]


@pytest.mark.parametrize("name, batch_name", VARIANT_BATCHES)
def test_variant_step_matches_reference(name, batch_name):
    spec = ref.VARIANT_SPECS[name]
    cell = lstmx.variant(name, HIDDEN_SIZE)
    _compare_with_reference(cell, spec, BATCH_SHAPES[batch_name], _rng(name, batch_name))


LSTM_OPTION_CASES = {
    "coupled_no_peephole": ref.LSTMSpec(coupled=True),
    "nig_no_peephole": ref.LSTMSpec(input_gate=False),
    "nfg_no_peephole": ref.LSTMSpec(forget_gate=False),
    "nog_no_peephole": ref.LSTMSpec(output_gate=False),
    "niaf_no_peephole": ref.LSTMSpec(input_activation=False),
    "noaf_no_peephole": ref.LSTMSpec(output_activation=False),
    "niaf_noaf_peephole": ref.LSTMSpec(
        peephole=True, input_activation=False, output_activation=False
    ),
    "niaf_noaf_no_peephole": ref.LSTMSpec(input_activation=False, output_activation=False),
    "coupled_nog_peephole": ref.LSTMSpec(peephole=True, coupled=True, output_gate=False),
    "fgr_no_peephole": ref.LSTMSpec(full_gate_recurrence=True),
    "fgr_nig_peephole": ref.LSTMSpec(peephole=True, input_gate=False, full_gate_recurrence=True),
    "fgr_nfg_no_peephole": ref.LSTMSpec(forget_gate=False, full_gate_recurrence=True),
    "fgr_coupled_peephole": ref.LSTMSpec(peephole=True, coupled=True, full_gate_recurrence=True),
    "fgr_nog_noaf": ref.LSTMSpec(
        output_gate=False, output_activation=False, full_gate_recurrence=True
    ),
    "fgr_forget_gate_only": ref.LSTMSpec(
        peephole=True, input_gate=False, output_gate=False, full_gate_recurrence=True
    ),
}


@pytest.mark.parametrize("case", list(LSTM_OPTION_CASES))
def test_lstm_options_step_matches_reference(case):
    spec = LSTM_OPTION_CASES[case]
    cell = lstmx.lstm(HIDDEN_SIZE, **spec.kwargs(HIDDEN_SIZE))
    _compare_with_reference(cell, spec, (3,), _rng("options", case))


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before_cho"])
def test_gru_factory_step_matches_reference(reset_after):
    spec = ref.GRUSpec(reset_after=reset_after)
    cell = lstmx.gru(HIDDEN_SIZE, reset_after=reset_after)
    _compare_with_reference(cell, spec, (3,), _rng("gru", reset_after))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_rnn_factory_step_matches_reference(activation):
    spec = ref.RNNSpec(activation=activation)
    _compare_with_reference(_make_cell(spec, HIDDEN_SIZE), spec, (3,), _rng("rnn", activation))


def test_gru_default_is_reset_after():
    rng = _rng("gru-default")
    spec = ref.GRUSpec(reset_after=True)
    _compare_with_reference(lstmx.gru(HIDDEN_SIZE), spec, (3,), rng)


# --------------------------------------------------------------------------------------
# Whole sequences through lstmx.scan, in float64.
# --------------------------------------------------------------------------------------

# H = 6: the sLSTM's gcd(4, 6) = 2 heads of 3 units (a block-diagonal recurrence that is
# neither dense nor diagonal), LSTMP's P = 3 (h narrower than c). Measured worst absolute
# error over every case, outputs and final states: 1.8e-15 (slstm_exp).
F64_H, F64_BATCH, F64_TOL = 6, (3,), 1e-13


class ScanCase(NamedTuple):
    """A named variant (with overrides of its options) and the reference spec it is."""

    name: str
    overrides: dict
    spec: ref.Spec


# Every named variant with its default options, plus the paths and options the defaults
# do not reach: minGRU / minLSTM on both paths (their "auto" is sequential on CPU; with
# negative eigenvalues the parallel path is another, linear-space scan), the
# sLSTM with 3 heads of 2, and IndRNN's clipped recurrent weights (|u| from N(0, 0.5²)
# above 0.6 are clipped).
SCAN_CASES = {
    **{name: ScanCase(name, {}, spec) for name, spec in ref.VARIANT_SPECS.items()},
    "min_gru_parallel": ScanCase("min_gru", {"parallel": True}, ref.MinGRUSpec()),
    "min_gru_sequential": ScanCase("min_gru", {"parallel": False}, ref.MinGRUSpec()),
    "min_lstm_parallel": ScanCase("min_lstm", {"parallel": True}, ref.MinLSTMSpec()),
    "min_lstm_sequential": ScanCase("min_lstm", {"parallel": False}, ref.MinLSTMSpec()),
    "min_gru_neg_parallel": ScanCase(
        "min_gru_neg", {"parallel": True}, ref.MinGRUSpec(negative=True)
    ),
    "min_lstm_neg_parallel": ScanCase(
        "min_lstm_neg", {"parallel": True}, ref.MinLSTMSpec(negative=True)
    ),
    "slstm_3_heads": ScanCase("slstm", {"num_heads": 3}, ref.SLSTMSpec(num_heads=3)),
    "slstm_exp_3_heads": ScanCase(
        "slstm_exp", {"num_heads": 3}, ref.SLSTMSpec(forget_gate="exp", num_heads=3)
    ),
    "indrnn_recurrent_max": ScanCase(
        "indrnn", {"recurrent_max": 0.6}, ref.IndRNNSpec(recurrent_max=0.6)
    ),
}


@pytest.mark.parametrize("case_id", list(SCAN_CASES))
def test_scan_matches_reference_in_float64(case_id):
    case = SCAN_CASES[case_id]
    rng = _rng("float64-scan", case_id)
    weights = ref.random_weights(case.spec, INPUT_SIZE, F64_H, rng)
    state0 = ref.random_state(case.spec, F64_BATCH, F64_H, rng)
    xs = rng.standard_normal((*F64_BATCH, STEPS, INPUT_SIZE))
    ys_ref, final_ref = ref.reference_run(case.spec, weights, xs, state0)
    with jax.enable_x64(True):
        cell = lstmx.variant(case.name, F64_H, **case.overrides)
        params = cell.init(jax.random.PRNGKey(0), INPUT_SIZE, jnp.float64)
        _check_param_layout(params, case.spec, INPUT_SIZE, F64_H)
        params = _with_weights(params, weights, jnp.float64)
        state = _with_state(cell.initial_state(F64_BATCH, jnp.float64), state0, jnp.float64)
        final, ys = jax.jit(lambda p, s, x: lstmx.scan(cell, p, x, s))(params, state, xs)
        assert ys.dtype == jnp.float64
        ys, final = np.asarray(ys), {k: np.asarray(v) for k, v in final._asdict().items()}
    np.testing.assert_allclose(ys, ys_ref, rtol=F64_TOL, atol=F64_TOL, err_msg="outputs")
    assert set(final) == set(final_ref)
    for name, expected in final_ref.items():
        np.testing.assert_allclose(final[name], expected, rtol=F64_TOL, atol=F64_TOL, err_msg=name)


@pytest.mark.parametrize("name", ["slstm", "slstm_exp"])
def test_slstm_scan_from_the_zero_state_matches_reference_in_float64(name):
    # n = 0 everywhere: both take m = ĩ on the first step (the reference: nothing carried).
    rng = _rng("float64-zero-state", name)
    spec = ref.VARIANT_SPECS[name]
    weights = ref.random_weights(spec, INPUT_SIZE, F64_H, rng)
    xs = rng.standard_normal((*F64_BATCH, STEPS, INPUT_SIZE))
    ys_ref, final_ref = ref.reference_run(spec, weights, xs)
    with jax.enable_x64(True):
        cell = lstmx.variant(name, F64_H)
        params = _with_weights(
            cell.init(jax.random.PRNGKey(0), INPUT_SIZE, jnp.float64), weights, jnp.float64
        )
        final, ys = jax.jit(lambda p, x: lstmx.scan(cell, p, x))(params, xs)
        ys, final = np.asarray(ys), {k: np.asarray(v) for k, v in final._asdict().items()}
    np.testing.assert_allclose(ys, ys_ref, rtol=F64_TOL, atol=F64_TOL, err_msg="outputs")
    for field, expected in final_ref.items():
        np.testing.assert_allclose(
            final[field], expected, rtol=F64_TOL, atol=F64_TOL, err_msg=field
        )


# --------------------------------------------------------------------------------------
# State and parameter layout.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ref.VARIANT_SPECS))
def test_initial_state_has_the_named_fields(name):
    spec, batch_shape = ref.VARIANT_SPECS[name], (2, 3)
    state = lstmx.variant(name, HIDDEN_SIZE).initial_state(batch_shape)
    expected_type = STATE_TYPES[type(spec)]
    if isinstance(spec, ref.LSTMSpec) and spec.full_gate_recurrence:
        expected_type = lstmx.FGRState
    assert type(state) is expected_type
    expected = ref.state_shapes(spec, batch_shape, HIDDEN_SIZE)
    assert state._fields == tuple(expected)
    for field, shape in expected.items():
        value = np.asarray(getattr(state, field))
        assert value.shape == shape, field
        np.testing.assert_array_equal(value, 0.0)


@pytest.mark.parametrize("name", list(ref.VARIANT_SPECS))
def test_init_param_layout(name):
    spec = ref.VARIANT_SPECS[name]
    params = lstmx.variant(name, HIDDEN_SIZE).init(jax.random.PRNGKey(1), INPUT_SIZE)
    assert type(params) is PARAMS_TYPES[type(spec)]
    _check_param_layout(params, spec, INPUT_SIZE, HIDDEN_SIZE)
    for leaf in jax.tree_util.tree_leaves(params):
        assert np.all(np.isfinite(np.asarray(leaf)))


# --------------------------------------------------------------------------------------
# Initialisation.
# --------------------------------------------------------------------------------------

INIT_I, INIT_H = 7, 16


@pytest.mark.parametrize("forget_bias", [None, 2.0], ids=["default_1.0", "forget_bias_2.0"])
@pytest.mark.parametrize("name", LSTM_VARIANTS)
def test_init_forget_bias_and_zero_other_biases(name, forget_bias):
    spec = ref.VARIANT_SPECS[name]
    kwargs = {} if forget_bias is None else {"forget_bias": forget_bias}
    params = lstmx.variant(name, INIT_H, **kwargs).init(jax.random.PRNGKey(3), INIT_I)
    blocks = _bias_blocks(params.b, spec.blocks, INIT_H)
    for block, value in blocks.items():
        expected = (1.0 if forget_bias is None else forget_bias) if block == "f" else 0.0
        np.testing.assert_array_equal(value, expected, err_msg=f"bias block {block}")


def test_lstm_factory_forget_bias_keyword():
    params = lstmx.lstm(INIT_H, forget_bias=2.0).init(jax.random.PRNGKey(4), INIT_I)
    blocks = _bias_blocks(params.b, "ifgo", INIT_H)
    np.testing.assert_array_equal(blocks["f"], 2.0)
    for block in "igo":
        np.testing.assert_array_equal(blocks[block], 0.0)


@pytest.mark.parametrize("name", [*LSTM_VARIANTS, "gru", "gru_cho", "rnn"])
def test_init_recurrent_blocks_are_independent_orthogonal_matrices(name):
    """README: "an independent orthogonal [H, H] block per gate in the recurrent kernel"."""
    spec = ref.VARIANT_SPECS[name]
    params = lstmx.variant(name, INIT_H).init(jax.random.PRNGKey(5), INIT_I)
    w_h = np.asarray(params.w_h, np.float64)
    names = spec.blocks if isinstance(spec, ref.LSTMSpec) else "rzn"[: w_h.shape[1] // INIT_H]
    rows = spec.h_size(INIT_H) if isinstance(spec, ref.LSTMSpec) else INIT_H  # P for LSTMP
    blocks = [w_h[:, j * INIT_H : (j + 1) * INIT_H] for j in range(len(names))]
    assert w_h.shape == (rows, len(names) * INIT_H)
    for Q, block in zip(blocks, names, strict=True):
        # A [P, H] block with P < H (LSTMP) has orthonormal rows only.
        if rows >= INIT_H:
            np.testing.assert_allclose(
                Q.T @ Q, np.eye(INIT_H), rtol=0, atol=1e-5, err_msg=f"w_h block {block}: QᵀQ"
            )
        if rows <= INIT_H:
            np.testing.assert_allclose(
                Q @ Q.T, np.eye(rows), rtol=0, atol=1e-5, err_msg=f"w_h block {block}: QQᵀ"
            )
    for j in range(len(blocks)):
        for k in range(j):
            assert np.max(np.abs(blocks[j] - blocks[k])) > 0.1, (names[j], names[k])


# The README's init claims, at a size where an empirical std is meaningful.
LARGE_I, LARGE_H = 1000, 64


@pytest.mark.parametrize("name", ["lstm", "cifg", "fgr", "gru", "rnn"])
def test_init_input_kernel_is_lecun_normal(name):
    """w_x (and FGR's w_gates) have std 1/sqrt(fan_in) within 10%, mean near 0."""
    params = lstmx.variant(name, LARGE_H).init(jax.random.PRNGKey(8), LARGE_I)
    kernels = {"w_x": (params.w_x, LARGE_I)}
    if getattr(params, "w_gates", None) is not None:
        kernels["w_gates"] = (params.w_gates, params.w_gates.shape[0])
    for field, (kernel, fan_in) in kernels.items():
        kernel = np.asarray(kernel, np.float64)
        expected = 1.0 / math.sqrt(fan_in)
        assert abs(kernel.std() / expected - 1.0) < 0.1, (field, kernel.std(), expected)
        assert abs(kernel.mean()) < 0.1 * expected, (field, kernel.mean())
        # Truncated at 2 std of the untruncated normal (jax's lecun_normal).
        assert np.abs(kernel).max() <= 2.0 * expected / 0.87962566103423978 + 1e-6, field


@pytest.mark.parametrize("name", ["peephole", "cifg", "nig", "nfg", "nog", "niaf", "noaf", "fgr"])
def test_init_peepholes_start_at_zero(name):
    """README: "Peepholes start at zero, so a peephole cell starts as the plain LSTM"."""
    cell = lstmx.variant(name, INIT_H)
    params = cell.init(jax.random.PRNGKey(9), INIT_I)
    assert params.p is not None
    np.testing.assert_array_equal(np.asarray(params.p), 0.0)
    if name == "peephole":  # ... and computes exactly what the plain LSTM computes
        plain = lstmx.lstm(INIT_H)
        x = jnp.asarray(_rng("peephole-start").standard_normal((2, INIT_I)), jnp.float32)
        state = plain.initial_state((2,))
        for _ in range(3):
            state, y = cell.step(params, state, x)
        plain_state = plain.initial_state((2,))
        for _ in range(3):
            plain_state, plain_y = plain.step(params._replace(p=None), plain_state, x)
        np.testing.assert_array_equal(np.asarray(y), np.asarray(plain_y))


CHRONO_T_MAX = 50


@pytest.mark.parametrize("name", [n for n in LSTM_VARIANTS if n != "nfg"])
def test_init_chrono_lstm(name):
    spec = ref.VARIANT_SPECS[name]
    cell = lstmx.lstm(INIT_H, **spec.kwargs(INIT_H), init="chrono", t_max=CHRONO_T_MAX)
    params = cell.init(jax.random.PRNGKey(6), INIT_I)
    blocks = _bias_blocks(params.b, spec.blocks, INIT_H)
    b_f = blocks["f"]
    # b_f ~ log U[1, t_max - 1]: within [log 1, log(t_max - 1)].
    assert np.all(b_f >= math.log(1.0)), b_f
    assert np.all(b_f <= math.log(CHRONO_T_MAX - 1) + 1e-6), b_f
    assert np.ptp(b_f) > 0.1, f"chrono forget biases should differ per unit: {b_f}"
    if "i" in blocks:
        np.testing.assert_allclose(blocks["i"], -b_f, rtol=0, atol=1e-7)
    for block in ("g", "o"):
        if block in blocks:
            np.testing.assert_array_equal(blocks[block], 0.0, err_msg=f"bias block {block}")


@pytest.mark.parametrize("reset_after", [True, False], ids=["reset_after", "reset_before_cho"])
def test_init_chrono_gru(reset_after):
    cell = lstmx.gru(INIT_H, reset_after=reset_after, init="chrono", t_max=CHRONO_T_MAX)
    params = cell.init(jax.random.PRNGKey(7), INIT_I)
    blocks = _bias_blocks(params.b_x, "rzn", INIT_H)
    b_z = blocks["z"]
    # h = (1 - z) n + z h_prev: a positive update-gate bias keeps the old state.
    assert np.all(b_z >= 0.0), b_z
    assert np.all(b_z <= math.log(CHRONO_T_MAX - 1) + 1e-6), b_z
    assert np.mean(b_z) > 0.5, b_z
    np.testing.assert_array_equal(blocks["r"], 0.0)
    np.testing.assert_array_equal(blocks["n"], 0.0)
    np.testing.assert_array_equal(np.asarray(params.b_h), 0.0)
