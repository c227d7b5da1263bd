"""The second round's cells: MGU, IndRNN, minGRU and minLSTM.

Each cell is held to a reference written from its paper or its peer, not from lstmx:

* MGU: Flax linen's own ``MGUCell`` (both ``reset_gate`` settings) with converted weights;
* IndRNN: a NumPy float64 loop of Li et al. 2018's equation;
* minGRU / minLSTM: a NumPy float64 loop of Feng et al. 2024's equations, and the paper's
  own log-space ``parallel_scan_log`` (``a* + logcumsumexp(log b - a*)``) in NumPy;

and the minGRU / minLSTM parallel (log-space ``associative_scan``) path to the step path
in values and gradients, with lengths and ``reverse``, up to T = 512.
"""

from __future__ import annotations

import math
from functools import partial

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx
from lstmx import convert

RNG = np.random.default_rng(0)


def _normal(*shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype(np.float32)


def _random_params(cell, input_size, scale=0.5, seed=1):
    """Random non-zero params shaped like ``cell.init``'s."""
    shapes = jax.eval_shape(lambda key: cell.init(key, input_size), jax.random.key(0))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), jnp.float32), shapes
    )


def _jit(run):
    """``lstmx.scan`` / ``scan_stepwise`` compiled once per cell and direction."""
    return jax.jit(run, static_argnums=0, static_argnames=("reverse",))


RUNS = (_jit(lstmx.scan), _jit(lstmx.scan_stepwise))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _f64(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), tree)


def _scaled(got, want):
    """Both trees divided leafwise by ``max |want|``, so that one atol bounds the error
    relative to each leaf's size (gradients of different leaves differ by decades)."""
    scales = [
        max(float(np.max(np.abs(np.asarray(w)))), 1e-30) for w in jax.tree_util.tree_leaves(want)
    ]
    leaves_g, treedef = jax.tree_util.tree_flatten(got)
    leaves_w = jax.tree_util.tree_leaves(want)
    scale = lambda leaves: jax.tree_util.tree_unflatten(  # noqa: E731
        treedef, [np.asarray(x, np.float64) / s for x, s in zip(leaves, scales, strict=True)]
    )
    return scale(leaves_g), scale(leaves_w)


def _np_scan(step, xs, h0, lengths=None, reverse=False):
    """A NumPy loop over ``xs [B, T, I]``: padded steps keep ``h`` and output zero."""
    B, T, _ = xs.shape
    lengths = np.full((B,), T) if lengths is None else np.asarray(lengths)
    h, ys = np.array(h0, np.float64), np.zeros((B, T, h0.shape[-1]))
    for t in reversed(range(T)) if reverse else range(T):
        new = step(h, xs[:, t].astype(np.float64))
        keep = (t < lengths)[:, None]
        h = np.where(keep, new, h)
        ys[:, t] = np.where(keep, new, 0.0)
    return h, ys


# --------------------------------------------------------------------------------------
# MGU against Flax linen's MGUCell.
# --------------------------------------------------------------------------------------


def _flax_mgu_run(module, variables, xs, h0):
    """Flax's own cell, stepped in a Python loop over ``xs [B, T, I]``."""
    h, ys, apply = jnp.asarray(h0), [], jax.jit(module.apply)
    for t in range(xs.shape[1]):
        h, y = apply(variables, h, jnp.asarray(xs[:, t]))
        ys.append(y)
    return h, jnp.stack(ys, 1)


@pytest.mark.parametrize("reset_gate", [True, False])
def test_mgu_equals_flax_mgu_cell(reset_gate):
    B, T, I, H = 3, 12, 5, 6
    module = nn.MGUCell(features=H, reset_gate=reset_gate)
    xs, h0 = _normal(B, T, I), _normal(B, H, scale=0.5)
    variables = module.init(jax.random.key(3), jnp.asarray(h0), jnp.asarray(xs[:, 0]))
    # Flax's init has zero b_in / b_hn: make every array random so no term hides.
    variables = jax.tree_util.tree_map(
        lambda a: jnp.asarray(_normal(*a.shape, scale=0.5)), variables
    )
    want_h, want_ys = _flax_mgu_run(module, variables, xs, h0)

    params = convert.from_flax_mgu(variables)
    assert (params.b_hn is not None) == reset_gate
    cell = lstmx.mgu(H, reset_gate=reset_gate)
    state = lstmx.MGUState(jnp.asarray(h0))
    for run in RUNS:
        final, ys = run(cell, params, jnp.asarray(xs), state)
        chex.assert_trees_all_close((final.h, ys), (want_h, want_ys), rtol=1e-6, atol=2e-6)
    # And back: lstmx params run in Flax give lstmx's outputs; the round trip is exact.
    again = convert.to_flax_mgu(params, reset_gate=reset_gate)
    chex.assert_trees_all_equal(convert.from_flax_mgu(again), params)
    chex.assert_trees_all_equal(
        jax.tree_util.tree_map(np.asarray, again["params"]),
        jax.tree_util.tree_map(np.asarray, dict(variables["params"])),
    )
    assert convert.to_flax_carry(final) is final.h


def test_mgu_init_is_flax_layout_and_counts():
    cell = lstmx.mgu(4)
    params = cell.init(jax.random.key(0), 3)
    np.testing.assert_array_equal(params.b_x, np.r_[np.ones(4), np.zeros(4)])  # b_f = 1
    module = nn.MGUCell(features=4)
    flax_vars = module.init(jax.random.key(0), jnp.zeros((4,)), jnp.zeros((3,)))
    flax_count = sum(a.size for a in jax.tree_util.tree_leaves(flax_vars))
    assert lstmx.describe(cell, 3).total == flax_count
    no_reset = nn.MGUCell(features=4, reset_gate=False)
    flax_vars = no_reset.init(jax.random.key(0), jnp.zeros((4,)), jnp.zeros((3,)))
    assert lstmx.describe(lstmx.mgu(4, reset_gate=False), 3).total == sum(
        a.size for a in jax.tree_util.tree_leaves(flax_vars)
    )


def test_mgu_conversion_refuses_the_other_reset_gate():
    params = lstmx.mgu(4).init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="reset_gate=False but the params"):
        convert.to_flax_mgu(params, reset_gate=False)
    with pytest.raises(TypeError, match="reset_gate must be"):
        convert.to_flax_mgu(params, reset_gate=1)
    with pytest.raises(ValueError, match=r"missing \['hn'\]"):
        convert.from_flax_mgu({"params": {"if": {}, "in": {}, "hf": {}}})


@pytest.mark.parametrize("reset_gate", [True, False])
def test_mgu_fast_path_equals_stepwise_with_lengths_and_reverse(reset_gate):
    B, T, I, H = 3, 9, 4, 5
    cell = lstmx.mgu(H, reset_gate=reset_gate)
    params = _random_params(cell, I)
    xs, h0 = jnp.asarray(_normal(B, T, I)), lstmx.MGUState(jnp.asarray(_normal(B, H, scale=0.5)))
    lengths = jnp.asarray([T, 4, 0])

    @jax.jit
    def grads(params, xs, h0):
        out = {}
        for reverse in (False, True):
            for run in (lstmx.scan, lstmx.scan_stepwise):

                def loss(params, xs, h0, run=run, reverse=reverse):
                    final, ys = run(cell, params, xs, h0, lengths=lengths, reverse=reverse)
                    return jnp.sum(jnp.sin(ys)) + jnp.sum(final.h**2)

                out[run.__name__, reverse] = jax.value_and_grad(loss, (0, 1, 2))(params, xs, h0)
        return out

    out = grads(params, xs, h0)
    for reverse in (False, True):
        fast, plain = out["scan", reverse], out["scan_stepwise", reverse]
        chex.assert_trees_all_close(*_scaled(fast, plain), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------
# IndRNN against a NumPy loop of Li et al. 2018.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("recurrent_max", [None, 0.7])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_indrnn_equals_numpy_loop(recurrent_max, activation):
    B, T, I, H = 3, 15, 4, 6
    act_jax = {"relu": jax.nn.relu, "tanh": jnp.tanh}[activation]
    act_np = {"relu": lambda v: np.maximum(v, 0.0), "tanh": np.tanh}[activation]
    cell = lstmx.indrnn(H, act_jax, recurrent_max=recurrent_max)
    params = _random_params(cell, I, scale=1.0)  # |u| up to ~2: the clip is active
    xs, h0 = _normal(B, T, I), _normal(B, H)
    lengths = np.array([T, 6, 0])
    W, u, b = (np.asarray(a, np.float64) for a in (params.w_x, params.u, params.b))
    if recurrent_max is not None:
        assert np.abs(u).max() > recurrent_max
        u = np.clip(u, -recurrent_max, recurrent_max)  # |u| <= recurrent_max in the forward pass

    def step(h, x):
        return act_np(x @ W + u * h + b)

    for reverse in (False, True):
        want = _np_scan(step, xs, h0, lengths, reverse)
        for run in RUNS:
            final, ys = run(
                cell,
                params,
                jnp.asarray(xs),
                lstmx.IndRNNState(jnp.asarray(h0)),
                lengths=jnp.asarray(lengths),
                reverse=reverse,
            )
            chex.assert_trees_all_close(_f64((final.h, ys)), want, rtol=1e-5, atol=1e-5)


def test_indrnn_init_and_clip_gradient():
    T = 100
    bound = 2 ** (1 / T)  # Li et al.'s bound for relu over T steps
    cell = lstmx.indrnn(256, recurrent_max=bound)
    u = np.asarray(cell.init(jax.random.key(0), 3).u)
    assert u.min() >= 0.0 and u.max() <= bound and u.max() > 0.9 * bound
    u_default = np.asarray(lstmx.indrnn(256).init(jax.random.key(0), 3).u)
    assert u_default.min() >= 0.0 and u_default.max() <= 1.0
    # Li et al.'s adding-problem init: w_x ~ N(0, 0.001^2), u ~ U[recurrent_min, bound].
    li = lstmx.indrnn(256, recurrent_max=bound, recurrent_min=1 / bound, input_std=1e-3)
    li_params = li.init(jax.random.key(1), 40)
    w_x, u_li = np.asarray(li_params.w_x), np.asarray(li_params.u)
    assert w_x.shape == (40, 256) and abs(w_x.std() / 1e-3 - 1) < 0.05 and abs(w_x.mean()) < 1e-4
    assert u_li.min() >= 1 / bound and u_li.max() <= bound
    assert np.ptp(u_li) > 0.9 * (bound - 1 / bound)
    # Where the clip is active, u gets no gradient; inside it, it does.
    params = cell.init(jax.random.key(0), 3)._replace(
        u=jnp.asarray(np.r_[3.0, -3.0, 0.5, np.zeros(253)], jnp.float32)
    )
    xs = jnp.ones((1, 5, 3))

    def loss(params):
        return jnp.sum(lstmx.scan(cell, params, xs)[1] ** 2)

    grad_u = np.asarray(jax.grad(loss)(params).u)
    assert grad_u[0] == 0.0 and grad_u[1] == 0.0


# --------------------------------------------------------------------------------------
# minGRU / minLSTM against NumPy loops of Feng et al. 2024, and the paper's log-space scan.
# --------------------------------------------------------------------------------------


def _g(v):
    """The paper's g: v + 0.5 for v >= 0, sigmoid(v) otherwise."""
    return np.where(v >= 0, v + 0.5, _sigmoid(v))


def _min_step(kind, params, negative=False):
    """One step of the paper's equations; ``negative``: Grazzi et al.'s transition 2a - 1."""
    W, b = np.asarray(params.w_x, np.float64), np.asarray(params.b, np.float64)
    H = W.shape[1] // (2 if kind == "min_gru" else 3)
    widen = (lambda a: 2.0 * a - 1.0) if negative else (lambda a: a)

    def step(h, x):
        k = x @ W + b
        if kind == "min_gru":
            z, h_tilde = _sigmoid(k[:, :H]), _g(k[:, H:])
            return widen(1.0 - z) * h + z * h_tilde
        f, i, h_tilde = _sigmoid(k[:, :H]), _sigmoid(k[:, H : 2 * H]), _g(k[:, 2 * H :])
        return widen(f / (f + i)) * h + i / (f + i) * h_tilde

    return step


def _paper_parallel_scan_log(kind, params, xs, h0):
    """Feng et al.'s Appendix-A log-space form, in NumPy float64, for h0 > 0:
    ``log h = a* + logcumsumexp([log h0, log b] - a*)``, ``a* = [0, cumsum(log a)]``."""
    W, b = np.asarray(params.w_x, np.float64), np.asarray(params.b, np.float64)
    H = h0.shape[-1]
    k = xs.astype(np.float64) @ W + b  # [B, T, G*H]
    softplus = lambda v: np.logaddexp(v, 0.0)  # noqa: E731
    log_g = lambda v: np.where(v >= 0, np.log(np.maximum(v, 0) + 0.5), -softplus(-v))  # noqa: E731
    if kind == "min_gru":
        log_a, log_b = -softplus(k[..., :H]), -softplus(-k[..., :H]) + log_g(k[..., H:])
    else:
        diff = softplus(-k[..., :H]) - softplus(-k[..., H : 2 * H])
        log_a, log_b = -softplus(diff), -softplus(-diff) + log_g(k[..., 2 * H :])
    a_star = np.concatenate([np.zeros_like(h0)[:, None], np.cumsum(log_a, 1)], 1)
    values = np.concatenate([np.log(h0)[:, None], log_b], 1)
    log_h = a_star + np.logaddexp.accumulate(values - a_star, axis=1)
    return np.exp(log_h)[:, 1:]


FACTORIES = {"min_gru": lstmx.min_gru, "min_lstm": lstmx.min_lstm}


@pytest.mark.parametrize("negative", [False, True], ids=["", "negative_eigenvalues"])
@pytest.mark.parametrize("kind", list(FACTORIES))
def test_min_rnn_equals_numpy_loop_and_the_papers_log_scan(kind, negative):
    """Both paths (with negative eigenvalues the parallel one is a linear-space scan), both
    directions, with lengths, from a signed initial state; then the paper's own log form."""
    B, T, I, H = 3, 40, 4, 6
    lengths = np.array([T, 17, 0])
    xs, h0 = _normal(B, T, I), _normal(B, H)  # h0 of both signs
    for parallel in (False, True):
        cell = FACTORIES[kind](H, parallel=parallel, negative_eigenvalues=negative)
        params = _random_params(cell, I, scale=1.0)
        for reverse in (False, True):
            want = _np_scan(_min_step(kind, params, negative), xs, h0, lengths, reverse)
            # Eager: an associative scan compiles for seconds; op by op it does not.
            for run in (lstmx.scan, lstmx.scan_stepwise):
                final, ys = run(
                    cell,
                    params,
                    jnp.asarray(xs),
                    lstmx.MinRNNState(jnp.asarray(h0)),
                    lengths=jnp.asarray(lengths),
                    reverse=reverse,
                )
                chex.assert_trees_all_close(_f64((final.h, ys)), want, rtol=1e-5, atol=1e-5)
    if negative:  # the transition does go negative: the option is not a no-op
        plain = _np_scan(_min_step(kind, params), xs, h0)[1]
        assert np.max(np.abs(plain - _np_scan(_min_step(kind, params, True), xs, h0)[1])) > 0.1
        return
    # The paper's own form (it needs h0 > 0) agrees with the same loop.
    h0_positive = np.abs(h0).astype(np.float64) + 0.1
    _, want = _np_scan(_min_step(kind, params), xs, h0_positive)
    paper = _paper_parallel_scan_log(kind, params, xs, h0_positive)
    chex.assert_trees_all_close(paper, want, rtol=1e-10, atol=1e-10)
    _, ys = lstmx.scan(
        FACTORIES[kind](H, parallel=True),
        params,
        jnp.asarray(xs),
        lstmx.MinRNNState(jnp.asarray(h0_positive, jnp.float32)),
    )
    chex.assert_trees_all_close(_f64(ys), paper, rtol=1e-5, atol=1e-5)


def test_min_gru_with_negative_eigenvalues_keeps_parity_at_any_length():
    """The mechanism Grazzi et al. describe: with z saturated to 1 on a 1 and to 0 on a 0,
    a = 1 - 2z flips h -> c - h on each 1, so h in {0, c} is the parity of the prefix, at
    length 1,000 as at 2. Without the option a = 1 - z is in (0, 1), and the same weights
    give h -> c on each 1: h says whether a 1 has been seen, not how many."""
    T, c = 1000, 1.0
    bits = RNG.integers(0, 2, (2, T))
    xs = jnp.asarray(np.stack([bits, 1 - bits], -1), jnp.float32)  # one-hot [B, T, 2]
    # Logits: z = σ(±30) on a 1 / a 0; h̃ = g(c - 0.5) = c on both.
    params = lstmx.MinGRUParams(
        w_x=jnp.asarray([[30.0, 0.0], [-30.0, 0.0]]), b=jnp.asarray([0.0, c - 0.5])
    )
    parity = np.cumsum(bits, 1) % 2
    # The sequential path (both paths equal the step loop: the tests above). float32 gates
    # are within ~1e-7 of 0 and 1, so |a| = 1 - O(1e-7) and h drifts by about
    # T * 2e-7 = 2e-4 from c over 1,000 steps.
    cell = lstmx.min_gru(1, parallel=False, negative_eigenvalues=True)
    _, ys = lstmx.scan(cell, params, xs)
    np.testing.assert_allclose(np.asarray(ys[..., 0]), c * parity, atol=1e-3)
    _, ys = lstmx.scan(lstmx.min_gru(1), params, xs)
    assert np.mean(np.abs(np.asarray(ys[..., 0]) - c * parity) < 0.5) < 0.9


@partial(jax.jit, static_argnums=(0, 1), static_argnames=("reverse",))
def _values_and_grads(run, cell, params, xs, h0, lengths, reverse):
    """``((final, ys), (d params, d xs, d h0))`` of ``run`` (``lstmx.scan`` or
    ``scan_stepwise``) under a loss on both outputs and the final state."""

    def loss(params, xs, h0):
        final, ys = run(cell, params, xs, h0, lengths=lengths, reverse=reverse)
        return jnp.sum(ys * jnp.cos(ys)) + jnp.sum(jnp.sin(final.h)), (final, ys)

    (_, values), grads = jax.value_and_grad(loss, (0, 1, 2), has_aux=True)(params, xs, h0)
    return values, grads


@pytest.mark.parametrize(
    "kind, reverse, negative",
    [("min_gru", False, False), ("min_lstm", True, False), ("min_lstm", False, True)],
)
def test_min_rnn_parallel_equals_stepwise_in_values_and_gradients_at_t512(kind, reverse, negative):
    """The associative scans (log-space; linear-space with negative eigenvalues) against
    autodiff of the step loop, T = 512, with a signed initial state and lengths; errors
    relative to each leaf's size. (One direction per cell: each associative-scan gradient
    costs ~15 s of XLA:CPU compilation; both directions of both cells run at T = 6 in
    tests/test_contract.py.)"""
    B, T, I, H = 3, 512, 4, 8
    parallel = FACTORIES[kind](H, parallel=True, negative_eigenvalues=negative)
    sequential = FACTORIES[kind](H, parallel=False, negative_eigenvalues=negative)
    params = _random_params(parallel, I, scale=1.0)
    xs, h0 = jnp.asarray(_normal(B, T, I)), lstmx.MinRNNState(jnp.asarray(_normal(B, H)))
    lengths = jnp.asarray([T, 300, 1])
    got = _values_and_grads(lstmx.scan, parallel, params, xs, h0, lengths, reverse=reverse)
    want = _values_and_grads(
        lstmx.scan_stepwise, sequential, params, xs, h0, lengths, reverse=reverse
    )
    chex.assert_tree_all_finite(got)
    chex.assert_trees_all_close(*_scaled(got, want), rtol=0, atol=2e-5)


_BLOCK_CASES = {"one_block": ((2, 3), 64), "three_blocks_padded": ((2, 3), 2 * 64 + 5),
                "no_batch_axis": ((), 2 * 64 + 5)}  # fmt: skip


@pytest.mark.parametrize(
    "kind, batch_shape, T",
    [
        *(pytest.param(kind, *case, id=f"{name}-{kind}")
          for kind in FACTORIES for name, case in _BLOCK_CASES.items()),
        # Negative eigenvalues change only a's formula and its slope: the padded case.
        *(pytest.param(kind, *_BLOCK_CASES["three_blocks_padded"], id=f"three_blocks_padded-{kind}")
          for kind in ("min_gru_neg", "min_lstm_neg")),
    ],
)  # fmt: skip
def test_min_rnn_sequential_blocks_equal_stepwise_in_values_and_gradients(kind, batch_shape, T):
    """The blocked sequential loop (one GEMM per block of <= BLOCK_STEPS steps, hand-written
    VJP) against autodiff of the step loop: one block, several blocks with identity padding
    (T = 133 runs as 3 blocks of 45), extra batch axes and none; both directions, with
    lengths where there is a batch; gradients of params, xs and the initial state."""
    from lstmx.cells import min_rnn

    assert min_rnn.BLOCK_STEPS == 64, "the T values above straddle 64-step blocks"
    I, H = 3, 5
    cell = lstmx.variant(kind, H, parallel=False)
    params = _random_params(cell, I, scale=1.0)
    xs = jnp.asarray(_normal(*batch_shape, T, I))
    h0 = lstmx.MinRNNState(jnp.asarray(_normal(*batch_shape, H)))
    lengths = None
    if batch_shape:  # one full sequence, one empty, the rest anywhere in between
        lengths = RNG.integers(0, T + 1, batch_shape)
        lengths[0, 0], lengths[0, 1] = T, 0
        lengths = jnp.asarray(lengths)
    for reverse in (False, True):
        got = _values_and_grads(lstmx.scan, cell, params, xs, h0, lengths, reverse=reverse)
        want = _values_and_grads(
            lstmx.scan_stepwise, cell, params, xs, h0, lengths, reverse=reverse
        )
        chex.assert_tree_all_finite(got)
        chex.assert_trees_all_close(*_scaled(got, want), rtol=0, atol=2e-5)


def test_min_rnn_parallel_choice():
    from lstmx.cells import min_rnn

    assert min_rnn.uses_parallel_scan(lstmx.min_gru(4, parallel=True).options)
    assert not min_rnn.uses_parallel_scan(lstmx.min_lstm(4, parallel=False).options)
    auto = min_rnn.uses_parallel_scan(lstmx.min_gru(4).options)
    assert auto == (jax.default_backend() != "cpu")


# --------------------------------------------------------------------------------------
# Registry, counts, gates, bad options.
# --------------------------------------------------------------------------------------

# Counts at I = 10, H = 128, worked out by hand from the equations.
COUNTS_I10_H128 = {
    "mgu": 10 * 256 + 128 * 256 + 256 + 128,  # 35,712 (Flax MGUCell's count)
    "indrnn": 10 * 128 + 128 + 128,  # 1,536
    "min_gru": 10 * 256 + 256,  # 2,816
    "min_lstm": 10 * 384 + 384,  # 4,224
}


@pytest.mark.parametrize("name", list(COUNTS_I10_H128))
def test_variants_counts_and_roles(name):
    assert name in lstmx.variant_names()
    description = lstmx.describe(lstmx.variant(name, 128), 10)
    assert description.total == COUNTS_I10_H128[name]
    assert all(row.role for row in description.rows)


@pytest.mark.parametrize(
    "name, gates",
    [
        ("mgu", ["f", "n"]),
        ("indrnn", []),
        ("min_gru", ["z"]),
        ("min_lstm", ["f", "i"]),
    ],
)
def test_step_with_gates(name, gates):
    cell = lstmx.variant(name, 4)
    params = _random_params(cell, 3)
    state = cell.initial_state((2,))
    x = jnp.asarray(_normal(2, 3))
    new_state, y, got = cell.step_with_gates(params, state, x)
    assert list(got) == gates
    chex.assert_trees_all_close((new_state, y), cell.step(params, state, x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: lstmx.mgu(0), ValueError, "hidden_size must be an int >= 1, got 0"),
        (lambda: lstmx.mgu(-3), ValueError, "hidden_size must be an int >= 1"),
        (lambda: lstmx.mgu(4.0), TypeError, "hidden_size must be an int, got float"),
        (
            lambda: lstmx.mgu(4, reset_gate=1),
            TypeError,
            "reset_gate must be True or False, got int",
        ),
        (lambda: lstmx.mgu(4, reset_gate="yes"), TypeError, "reset_gate must be True or False"),
        (lambda: lstmx.indrnn(0), ValueError, "hidden_size must be an int >= 1"),
        (
            lambda: lstmx.indrnn(4, recurrent_max=0.0),
            ValueError,
            "recurrent_max must be None or a positive",
        ),
        (
            lambda: lstmx.indrnn(4, recurrent_max=-1),
            ValueError,
            "recurrent_max must be None or a positive",
        ),
        (lambda: lstmx.indrnn(4, recurrent_max=math.inf), ValueError, "positive finite number"),
        (
            lambda: lstmx.indrnn(4, recurrent_max="2"),
            TypeError,
            "recurrent_max must be None or a positive number",
        ),
        (lambda: lstmx.indrnn(4, recurrent_max=True), TypeError, "got bool True"),
        (
            lambda: lstmx.indrnn(4, recurrent_max=0.5, recurrent_min=0.5),
            ValueError,
            r"recurrent_min must be >= 0 and below the top of the init draw .* 0.5, got 0.5",
        ),
        (lambda: lstmx.indrnn(4, recurrent_min=-0.1), ValueError, "recurrent_min must be >= 0"),
        (lambda: lstmx.indrnn(4, recurrent_min=None), TypeError, "recurrent_min must be a number"),
        (
            lambda: lstmx.indrnn(4, input_std=0.0),
            ValueError,
            "input_std must be None or a positive",
        ),
        (lambda: lstmx.indrnn(4, input_std=math.nan), ValueError, "input_std must be a finite"),
        (lambda: lstmx.indrnn(4, input_std="1e-3"), TypeError, "input_std must be a number"),
        (lambda: lstmx.indrnn(4, "relu"), TypeError, "activation must be callable, got str"),
        (lambda: lstmx.min_gru(0), ValueError, "hidden_size must be an int >= 1"),
        (lambda: lstmx.min_lstm(-1), ValueError, "hidden_size must be an int >= 1"),
        (
            lambda: lstmx.min_gru(4, parallel="yes"),
            ValueError,
            'parallel must be True, False or "auto"',
        ),
        (
            lambda: lstmx.min_lstm(4, parallel=None),
            ValueError,
            'parallel must be True, False or "auto"',
        ),
        (
            lambda: lstmx.min_gru(4, negative_eigenvalues=1),
            TypeError,
            "negative_eigenvalues must be True or False, got int 1",
        ),
    ],
)
def test_bad_options_are_refused(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_wrong_params_are_refused():
    xs = jnp.zeros((2, 5, 3))
    with pytest.raises(TypeError, match="params must be MinGRUParams"):
        lstmx.scan(lstmx.min_gru(4), lstmx.min_lstm(4).init(jax.random.key(0), 3), xs)
    with pytest.raises(ValueError, match=r"params.u must have shape \(4,\)"):
        params = lstmx.indrnn(4).init(jax.random.key(0), 3)
        lstmx.scan(lstmx.indrnn(4), params._replace(u=jnp.zeros((5,))), xs)
    with pytest.raises(ValueError, match="params.b_hn must be None"):
        lstmx.scan(lstmx.mgu(4, reset_gate=False), lstmx.mgu(4).init(jax.random.key(0), 3), xs)
