"""The LSTM's second-round options: proj_size (LSTMP), cell_clip / proj_clip, layer_norm.

References, in NumPy float64, written from the papers' and libraries' documented equations:

* LSTMP, Sak et al. 2014 and PyTorch's ``nn.LSTM(proj_size=P)`` documentation, in
  PyTorch's own layout (``weight_ih [4H, I]``, ``weight_hh [4H, P]``, ``weight_hr [P, H]``):
  ``h_t = W_hr (o_t ⊙ tanh(c_t))``.
* TF1 ``LSTMCell(cell_clip, num_proj, proj_clip, use_peepholes)``: ``c`` clipped right after
  its update, before the output peephole reads it; the projection clipped after it.
* Ba et al. 2016, eq. 20-22: ``LN(W_h h) + LN(W_x x) + b``, statistics over all 4H
  pre-activations of each term, ``h = σ(o) ⊙ tanh(LN(c_t))``, ``c_t`` carried unnormalised.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx import convert

I, H, P = 3, 6, 4
B, T = 2, 7
EPS = 1e-5  # lstmx's (PyTorch's) layer-norm epsilon; Ba et al. give none


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ln(z, gain, shift=0.0):
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return (z - mean) / np.sqrt(var + EPS) * gain + shift


def reference(params, xs, *, cell_clip=None, proj_clip=None):
    """The LSTM with any of peepholes (rows i, f, o), projection, clips and layer norm.

    ``params`` is an ``LSTMParams`` (fields read by name; None fields are absent options).
    ``xs [B, T, I]`` -> ``ys [B, T, P or H]``, final ``(h, c)``.
    """
    w = {k: None if v is None else np.asarray(v, np.float64) for k, v in params._asdict().items()}
    Hs = w["b"].shape[0] // 4
    layer_norm = w["ln_h_gain"] is not None
    h = np.zeros((xs.shape[0], w["w_h"].shape[0]))
    c = np.zeros((xs.shape[0], Hs))
    ys = []
    for t in range(xs.shape[1]):
        x = np.asarray(xs[:, t], np.float64)
        if layer_norm:  # Ba et al. eq. 20
            pre = _ln(h @ w["w_h"], w["ln_h_gain"]) + _ln(x @ w["w_x"], w["ln_x_gain"]) + w["b"]
        else:
            pre = x @ w["w_x"] + h @ w["w_h"] + w["b"]
        zi, zf, zg, zo = np.split(pre, 4, axis=-1)
        if w["p"] is not None:
            zi, zf = zi + w["p"][0] * c, zf + w["p"][1] * c
        c = _sigmoid(zf) * c + _sigmoid(zi) * np.tanh(zg)
        if cell_clip is not None:  # TF1: right after the update
            c = np.clip(c, -cell_clip, cell_clip)
        if w["p"] is not None:  # TF1 / Gers: the output peephole sees the (clipped) new c
            zo = zo + w["p"][2] * c
        c_out = _ln(c, w["ln_c_gain"], w["ln_c_shift"]) if layer_norm else c  # eq. 22
        h = _sigmoid(zo) * np.tanh(c_out)
        if w["w_hr"] is not None:
            h = h @ w["w_hr"]
            if proj_clip is not None:
                h = np.clip(h, -proj_clip, proj_clip)
        ys.append(h)
    return np.stack(ys, 1), h, c


def torch_reference(sd, xs):
    """PyTorch ``nn.LSTM(proj_size=P, batch_first=True)``'s documented equations, its layout."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    Hs = sd["weight_ih"].shape[0] // 4
    h = np.zeros((xs.shape[0], sd["weight_hr"].shape[0]))
    c = np.zeros((xs.shape[0], Hs))
    ys = []
    for t in range(xs.shape[1]):
        gates = xs[:, t] @ sd["weight_ih"].T + sd["bias_ih"] + h @ sd["weight_hh"].T + sd["bias_hh"]
        i, f, g, o = (gates[:, k * Hs : (k + 1) * Hs] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = (_sigmoid(o) * np.tanh(c)) @ sd["weight_hr"].T
        ys.append(h)
    return np.stack(ys, 1), h, c


def _random_params(cell, seed, scale=0.5, input_size=I):
    """The cell's params with every array random (gains and peepholes too)."""
    params = cell.init(jax.random.key(seed), input_size)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    rng = np.random.default_rng(seed)
    leaves = [
        jnp.asarray(scale * rng.standard_normal(leaf.shape), leaf.dtype)
        + (1.0 if leaf.ndim == 1 and "gain" in name else 0.0)
        for leaf, name in zip(leaves, [n for n, v in params._asdict().items() if v is not None])
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _xs(seed, shape=(B, T, I), scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _run(cell, params, xs, **kwargs):
    return jax.jit(lambda p, x: lstmx.scan(cell, p, x, **kwargs))(params, xs)


# --------------------------------------------------------------------------------------
# Forward against the references.
# --------------------------------------------------------------------------------------

CONFIGS = {
    "proj": dict(proj_size=P),
    "cell_clip_peephole": dict(cell_clip=0.3, peephole=True),
    "layer_norm": dict(layer_norm=True),
    "everything": dict(proj_size=P, cell_clip=0.5, proj_clip=0.2, layer_norm=True, peephole=True),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_reference(name):
    options = CONFIGS[name]
    cell = lstmx.lstm(H, **options)
    params = _random_params(cell, seed=1, scale=1.5)
    xs = _xs(2, scale=2.0)
    final, ys = _run(cell, params, xs)
    clips = {k: options.get(k) for k in ("cell_clip", "proj_clip")}
    ys_ref, h_ref, c_ref = reference(params, xs, **clips)
    # Measured worst errors in float32: 1.2e-6 (proj), 1.6e-7 (everything), 1.3e-7 (LN).
    np.testing.assert_allclose(ys, ys_ref, rtol=0, atol=5e-6)
    np.testing.assert_allclose(final.h, h_ref, rtol=0, atol=5e-6)
    np.testing.assert_allclose(final.c, c_ref, rtol=0, atol=5e-6)
    assert ys.shape == (B, T, cell.output_size)
    assert cell.output_size == options.get("proj_size", H)
    # The clips are exercised, not vacuous.
    if "cell_clip" in options:
        assert np.max(np.abs(c_ref)) == pytest.approx(options["cell_clip"])
    if "proj_clip" in options:
        assert np.max(np.abs(ys_ref)) == pytest.approx(options["proj_clip"])


def test_layer_norm_float64_matches_ba_et_al():
    with jax.enable_x64(True):
        cell = lstmx.lstm(H, **CONFIGS["everything"])
        params = jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, jnp.float64), _random_params(cell, seed=3, scale=1.5)
        )
        xs = _xs(4, scale=2.0).astype(np.float64)
        _, ys = _run(cell, params, xs)
        ys_ref, _, _ = reference(params, xs, cell_clip=0.5, proj_clip=0.2)
        np.testing.assert_allclose(ys, ys_ref, rtol=0, atol=1e-12)


def test_layer_norm_statistics_are_over_all_gate_blocks():
    """Ba et al. normalise all 4H pre-activations of each term together, not per gate."""
    cell = lstmx.lstm(H, layer_norm=True)
    params = cell.init(jax.random.key(5), I)
    assert params.ln_h_gain.shape == params.ln_x_gain.shape == (4 * H,)
    assert params.ln_c_gain.shape == params.ln_c_shift.shape == (H,)
    np.testing.assert_array_equal(params.ln_x_gain, 1.0)
    np.testing.assert_array_equal(params.ln_c_shift, 0.0)
    # Adding a constant to one gate block of W_x changes the whole term's mean, so every
    # gate moves (a per-gate LN would leave the other gates alone).
    x = jnp.asarray(_xs(6, (I,)))
    state = cell.initial_state(())
    _, _, gates = cell.step_with_gates(params, state, x)
    shifted = params._replace(w_x=params.w_x.at[:, :H].add(3.0))
    _, _, gates2 = cell.step_with_gates(shifted, state, x)
    assert float(jnp.max(jnp.abs(gates2["o"] - gates["o"]))) > 1e-3


def test_projection_matches_pytorch_equations_and_converts_both_ways():
    rng = np.random.default_rng(7)
    sd = {
        "weight_ih": rng.standard_normal((4 * H, I)),
        "weight_hh": rng.standard_normal((4 * H, P)),
        "bias_ih": rng.standard_normal(4 * H),
        "bias_hh": rng.standard_normal(4 * H),
        "weight_hr": rng.standard_normal((P, H)),
    }
    sd32 = {k: v.astype(np.float32) for k, v in sd.items()}
    params = convert.from_torch_lstm(**sd32)
    assert params.w_hr.shape == (H, P) and params.w_h.shape == (P, 4 * H)
    cell = lstmx.lstm(H, proj_size=P)
    xs = _xs(8)
    final, ys = _run(cell, params, xs)
    ys_ref, h_ref, c_ref = torch_reference(sd32, xs)
    np.testing.assert_allclose(ys, ys_ref, rtol=0, atol=5e-6)  # measured 2.5e-7
    np.testing.assert_allclose(final.c, c_ref, rtol=0, atol=5e-6)
    back = convert.to_torch_lstm(params)
    assert set(back) == set(sd)
    np.testing.assert_array_equal(back["weight_hr"], sd32["weight_hr"])
    np.testing.assert_array_equal(back["weight_hh"], sd32["weight_hh"])
    np.testing.assert_allclose(back["bias_ih"] + back["bias_hh"], sd32["bias_ih"] + sd32["bias_hh"])
    # Without weight_hr, nothing changes (no weight_hr key comes back).
    plain = convert.from_torch_lstm(sd32["weight_ih"], rng.standard_normal((4 * H, H)))
    assert plain.w_hr is None and "weight_hr" not in convert.to_torch_lstm(plain)


def test_conversion_refuses_bad_projection_layouts():
    rng = np.random.default_rng(9)
    w_ih, w_hh = rng.standard_normal((4 * H, I)), rng.standard_normal((4 * H, P))
    with pytest.raises(ValueError, match=r"weight_hh must have shape \(24, 4\)"):
        convert.from_torch_lstm(w_ih, rng.standard_normal((4 * H, H)), weight_hr=np.ones((P, H)))
    with pytest.raises(ValueError, match=r"weight_hr must have shape \(4, 6\)"):
        convert.from_torch_lstm(w_ih, w_hh, weight_hr=np.ones((P, H + 1)))
    with pytest.raises(ValueError, match=r"weight_hr must be .* \[P, H\]"):
        convert.from_torch_lstm(w_ih, w_hh, weight_hr=np.ones(P))
    params = lstmx.lstm(H, proj_size=P).init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="projection"):
        convert.to_flax_lstm(params)
    ln_params = lstmx.lstm(H, layer_norm=True).init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="layer normalisation"):
        convert.to_torch_lstm(ln_params)


# --------------------------------------------------------------------------------------
# The fast path (custom VJP) against the step loop, values and gradients.
# --------------------------------------------------------------------------------------

# Between them, every new option (and its combination with peepholes, CIFG and FGR).
GRADIENT_CONFIGS = {
    "proj_clips_peephole": dict(proj_size=P, cell_clip=0.5, proj_clip=0.3, peephole=True),
    "layer_norm_proj_fgr_cifg": dict(
        layer_norm=True, proj_size=P, full_gate_recurrence=True, coupled=True, peephole=True
    ),
}


@pytest.mark.parametrize("name", list(GRADIENT_CONFIGS))
def test_fast_scan_matches_stepwise_values_and_gradients(name):
    cell = lstmx.lstm(H, **GRADIENT_CONFIGS[name])
    assert cell.fast_scan is not None
    params = _random_params(cell, seed=10, scale=1.0)
    xs = _xs(11)
    lengths = np.array([T, 4])
    weights = jnp.asarray(_xs(12, (B, T, cell.output_size)))

    def loss(fn, params, xs):
        final, ys = fn(cell, params, xs, lengths=lengths, reverse=True)
        return jnp.sum(ys * weights) + sum(jnp.sum(jnp.sin(leaf)) for leaf in final)

    def value_and_grad(fn):
        return jax.jit(jax.value_and_grad(lambda p, x: loss(fn, p, x), argnums=(0, 1)))

    fast = value_and_grad(lstmx.scan)(params, xs)
    slow = value_and_grad(lstmx.scan_stepwise)(params, xs)
    chex.assert_trees_all_close(fast, slow, rtol=1e-5, atol=1e-5)  # measured <= 1.5e-6
    chex.assert_tree_all_finite(fast)


# --------------------------------------------------------------------------------------
# Validation, params and state checks, describe, variants.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(proj_size=0), ValueError, "proj_size must be an int >= 1, got 0"),
        (dict(proj_size=-3), ValueError, "proj_size must be an int >= 1"),
        (dict(proj_size=2.0), TypeError, "proj_size must be an int"),
        (dict(proj_size=True), TypeError, "proj_size must be an int"),
        (dict(cell_clip=0.0), ValueError, "cell_clip must be > 0"),
        (dict(cell_clip=-1.0), ValueError, "cell_clip must be > 0"),
        (dict(cell_clip=float("nan")), ValueError, "cell_clip must be a finite number"),
        (dict(cell_clip="3"), TypeError, "cell_clip must be a number"),
        (dict(proj_size=2, proj_clip=0), ValueError, "proj_clip must be > 0"),
        (dict(proj_clip=1.0), ValueError, "proj_clip .* needs proj_size"),
        (dict(layer_norm=1), TypeError, "layer_norm must be True or False"),
        (dict(layer_norm="yes"), TypeError, "layer_norm must be True or False"),
    ],
)
def test_bad_options_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        lstmx.lstm(H, **kwargs)


def test_params_and_state_checks_know_the_new_fields():
    cell = lstmx.lstm(H, proj_size=P, layer_norm=True)
    params = cell.init(jax.random.key(0), I)
    state = cell.initial_state((B,))
    assert state.h.shape == (B, P) and state.c.shape == (B, H)
    x = jnp.zeros((B, I))
    with pytest.raises(ValueError, match=r"state.h must have shape \(2, 4\) \(\[\*batch, P\]"):
        cell.step(params, state._replace(h=jnp.zeros((B, H))), x)
    with pytest.raises(ValueError, match=r"params.w_hr must have shape \(6, 4\)"):
        cell.step(params._replace(w_hr=jnp.zeros((P, H))), state, x)
    with pytest.raises(ValueError, match=r"params.w_h must have shape \(4, 24\)"):
        cell.step(params._replace(w_h=jnp.zeros((H, 4 * H))), state, x)
    with pytest.raises(TypeError, match=r"params.ln_c_gain must be an array of shape \(6,\)"):
        cell.step(params._replace(ln_c_gain=None), state, x)
    plain = lstmx.lstm(H)
    plain_params = plain.init(jax.random.key(0), I)
    with pytest.raises(ValueError, match="w_hr .* proj_size=None"):
        plain.step(plain_params._replace(w_hr=jnp.zeros((H, P))), plain.initial_state((B,)), x)
    with pytest.raises(ValueError, match="ln_h_gain is set but .* layer_norm=False"):
        plain.step(plain_params._replace(ln_h_gain=jnp.ones(4 * H)), plain.initial_state((B,)), x)


def test_parameter_counts_at_i10_h128():
    I10, H128, P64 = 10, 128, 64
    base = 4 * H128 * (I10 + H128 + 1)  # 71,168
    counts = {
        "lstm": (lstmx.lstm(H128), base),
        "lstmp": (lstmx.variant("lstmp", H128), 4 * H128 * (I10 + P64 + 1) + H128 * P64),
        "clips": (lstmx.lstm(H128, proj_size=P64, cell_clip=3.0, proj_clip=3.0), 46_592),
        "ln_lstm": (lstmx.variant("ln_lstm", H128), base + 2 * 4 * H128 + 2 * H128),
    }
    for name, (cell, expected) in counts.items():
        description = lstmx.describe(cell, I10)
        assert description.total == expected, name
        assert all(row.role for row in description.rows), name
    assert counts["lstmp"][1] == 46_592 and counts["ln_lstm"][1] == 72_448


def test_variants_and_stacks():
    assert {"lstmp", "ln_lstm", "slstm"} <= set(lstmx.variant_names())
    cell = lstmx.variant("lstmp", 9)
    assert cell.options.proj_size == 4 and cell.output_size == 4
    assert lstmx.variant("lstmp", 9, proj_size=2).output_size == 2
    assert lstmx.variant("lstmp", 1).options.proj_size == 1
    assert lstmx.variant("ln_lstm", 5).options.layer_norm is True
    # A projected layer feeds the next layer with P features.
    stack = lstmx.stack([lstmx.lstm(H, proj_size=P), lstmx.lstm(H, layer_norm=True)])
    params = jax.eval_shape(lambda key: stack.init(key, I), jax.random.key(0))
    assert params.layers[1].w_x.shape == (P, 4 * H)
    _, ys = jax.eval_shape(lambda p, x: lstmx.scan(stack, p, x), params, _xs(0))
    assert ys.shape == (B, T, H)
