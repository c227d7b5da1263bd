"""lstmx's minGRU and minLSTM against ``mingru-pytorch`` (lucidrains), values and gradients.

The peer's layout, from its source (``minGRU_pytorch/minGRU.py`` and ``minLSTM.py``): one
bias-free ``Linear(dim, k·dim)`` whose output is chunked into ``hidden, gate`` (minGRU) or
``hidden, f, i`` (minLSTM), with ``expansion_factor=1`` and no output projection, so the
hidden size is the input size. Its ``seq_len > 1`` path is the paper's log-space parallel
scan (``heinsen_associative_scan_log``), its ``seq_len == 1`` path the sequential step.
lstmx's blocks are ``z, h̃`` and ``f, i, h̃`` in ``w_x [I, kH]`` with a bias ``b`` (zero here).

The peer's parallel path starts a minGRU from ``log(prev_hidden)`` (a positive state) and
a minLSTM from ``log_g(prev_hidden)``, i.e. from ``g(prev_hidden)``, unlike its own
sequential step: a start state is therefore compared through the sequential step, and the
parallel path from the zero state, where both agree.

The peer runs in float64: in float32 its log-space scan is itself 1e-4 off its own float64
gradients (measured: minGRU weight gradient 9.9e-5, lstmx's 9e-7), so lstmx (float32) is
held to the peer's float64 run.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[bench]')")
_REASON = "mingru-pytorch is not installed (pip install -e '.[bench]')"
peer_min_gru = pytest.importorskip("minGRU_pytorch.minGRU", reason=_REASON).minGRU
peer_min_lstm = pytest.importorskip("minGRU_pytorch.minLSTM", reason=_REASON).minLSTM

B, T, H = 3, 16, 6
PATHS = [True, False]  # lstmx's parallel (log-space associative scan) and sequential paths


def _peer(kind: str, seed: int):
    torch.manual_seed(seed)
    layer = peer_min_gru(H) if kind == "min_gru" else peer_min_lstm(H)
    with torch.no_grad():  # larger than the default init, so the gates move off 0.5
        _peer_weight(layer).weight.mul_(3.0)
    return layer.double()


def _peer_weight(layer) -> torch.nn.Linear:
    """The peer's one input projection (its name differs between the two cells)."""
    if isinstance(layer, peer_min_gru):
        return layer.to_hidden_and_gate
    return layer.to_hidden_and_f_i_gate


def _lstmx_params(kind: str, weight: jax.Array):
    """The peer's ``Linear`` weight ``[kH, I]`` (chunks hidden, gate / hidden, f, i) as lstmx
    params: ``w_x [I, kH]`` in lstmx's block order, ``b = 0``."""
    chunks = jnp.split(weight, 2 if kind == "min_gru" else 3, axis=0)
    hidden, gates = chunks[0], chunks[1:]
    w_x = jnp.concatenate([*gates, hidden], axis=0).T
    zeros = jnp.zeros((w_x.shape[1],), w_x.dtype)
    params_type = lstmx.MinGRUParams if kind == "min_gru" else lstmx.MinLSTMParams
    return params_type(w_x, zeros)


def _cell(kind: str, parallel: bool):
    return (
        lstmx.min_gru(H, parallel=parallel)
        if kind == "min_gru"
        else lstmx.min_lstm(H, parallel=parallel)
    )


def _data(seed: int):
    rng = np.random.default_rng(seed)
    xs = rng.normal(0.0, 1.0, (B, T, H)).astype(np.float32)
    readout = rng.normal(0.0, 1.0, (B, T, H)).astype(np.float32)
    return xs, readout


@pytest.mark.parametrize("parallel", PATHS, ids=["parallel", "sequential"])
@pytest.mark.parametrize("kind", ["min_gru", "min_lstm"])
def test_parallel_scan_from_zero_state(kind, parallel):
    layer = _peer(kind, seed=0)
    xs, readout = _data(1)
    x_torch = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    ys_peer = layer(x_torch)
    (ys_peer * torch.tensor(readout, dtype=torch.float64)).sum().backward()
    weight = _peer_weight(layer).weight

    def loss(weight, xs):
        _, ys = lstmx.scan(_cell(kind, parallel), _lstmx_params(kind, weight), xs)
        return jnp.sum(ys * readout), ys

    (_, ys), (d_weight, d_xs) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        jnp.asarray(weight.detach().numpy(), jnp.float32), jnp.asarray(xs)
    )
    chex.assert_trees_all_close(ys, ys_peer.detach().numpy(), atol=2e-6, rtol=1e-5)
    chex.assert_trees_all_close(
        (d_weight, d_xs), (weight.grad.numpy(), x_torch.grad.numpy()), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("kind", ["min_gru", "min_lstm"])
def test_sequential_steps_from_a_start_state(kind):
    layer = _peer(kind, seed=2)
    xs, readout = _data(3)
    h0 = np.random.default_rng(4).normal(0.0, 1.0, (B, H)).astype(np.float32)
    x_torch = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    h_torch = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    h, outs = h_torch[:, None], []
    for t in range(T):  # the peer's seq_len == 1 path, one step at a time
        h = layer(x_torch[:, t : t + 1], prev_hidden=h)
        outs.append(h)
    ys_peer = torch.cat(outs, dim=1)
    (ys_peer * torch.tensor(readout, dtype=torch.float64)).sum().backward()
    weight = _peer_weight(layer).weight

    def loss(weight, xs, h0):
        cell = _cell(kind, False)
        _, ys = lstmx.scan_stepwise(cell, _lstmx_params(kind, weight), xs, lstmx.MinRNNState(h0))
        return jnp.sum(ys * readout), ys

    (_, ys), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(
        jnp.asarray(weight.detach().numpy(), jnp.float32), jnp.asarray(xs), jnp.asarray(h0)
    )
    chex.assert_trees_all_close(ys, ys_peer.detach().numpy(), atol=2e-6, rtol=1e-5)
    want = (weight.grad.numpy(), x_torch.grad.numpy(), h_torch.grad.numpy())
    chex.assert_trees_all_close(grads, want, atol=1e-5, rtol=1e-5)


def test_min_gru_parallel_from_a_positive_start_state():
    # The peer's parallel minGRU starts from log(prev_hidden): a positive state.
    layer = _peer("min_gru", seed=5)
    xs, _ = _data(6)
    h0 = np.random.default_rng(7).uniform(0.1, 2.0, (B, 1, H)).astype(np.float32)
    ys_peer = layer(torch.tensor(xs).double(), prev_hidden=torch.tensor(h0).double())
    ys_peer = ys_peer.detach().numpy()
    weight = jnp.asarray(_peer_weight(layer).weight.detach().numpy(), jnp.float32)
    params = _lstmx_params("min_gru", weight)
    for parallel in PATHS:
        start = lstmx.MinRNNState(jnp.asarray(h0[:, 0]))
        _, ys = lstmx.scan(_cell("min_gru", parallel), params, jnp.asarray(xs), start)
        chex.assert_trees_all_close(ys, ys_peer, atol=2e-6, rtol=1e-5)
