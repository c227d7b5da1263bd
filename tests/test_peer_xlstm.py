"""lstmx's sLSTM against NX-AI's own sLSTM cell (``xlstm`` 2.0.6, ``sLSTMCell`` with the
``vanilla`` PyTorch backend), values and gradients, from a random non-zero start state.

The peer, from its source (``xlstm/blocks/slstm/cell.py`` and the pointwise step
``slstm_forward_pointwise`` in ``xlstm/blocks/slstm/src/vanilla/slstm.py``):

* The cell takes the *pre-computed* gate inputs ``Wx [B, T, 4H]`` (its sLSTM layer makes
  them with a head-wise projection and a convolution); with ``input_shape="BSGNH"`` the
  ``4H`` features are gate-major (i, f, z, o), then head, then unit: the layout of the
  columns of lstmx's ``w_x [I, 4H]``. The peer is therefore driven with ``x @ w_x``,
  computed in torch from the same ``w_x``, so that ``w_x`` gets its gradient there too.
* ``recurrent_kernel`` (the external, backend-independent view) is ``[K, d, 4, d]``:
  entry ``[k, j, g, e]`` carries unit ``j`` of head ``k``'s ``h_{t-1}`` into unit ``e``
  of head ``k``'s gate ``g`` (``slstm_forward``: ``h.reshape(B, K, 1, d) @ R`` per head,
  output ``(B, K, 4, d) -> (B, 4, K, d)``). lstmx's ``w_h [K, d, 4d]`` is that reshaped.
* ``bias`` (external) is ``[K, 4, d]``; the pointwise step adds it gate-major, so lstmx's
  ``b [4H]`` is ``bias.permute(1, 0, 2)`` flattened (the vanilla backend's own
  ``_bias_ext2int``).
* The state is ``[4, B, H]``, stacked ``(h, c, n, m)``: lstmx's ``SLSTMState`` fields.
* The step: ``m_t = max(ĩ, log σ(f̃) + m_{t-1})`` (``= ĩ`` if ``n == 0`` everywhere),
  ``i' = min(exp(ĩ - m_t), 1)``, ``f' = min(exp(log σ(f̃) + m_{t-1} - m_t), 1)``,
  ``c = f' c + i' tanh(z̃)``, ``n = f' n + i'``, ``h = σ(õ) c / n``: lstmx's equations.
  The two documented differences (lstmx's module docstring) do not apply here: from a
  start state with ``n > 0`` everywhere both take the max, and from the zero state
  (``n == 0`` everywhere) both take ``ĩ``; both clamps are no-ops or agree with lstmx's
  ``exp(min(·, 0))``. So states map one to one, with no rescaling of ``c``, ``n`` or ``m``.

The peer's ``function="slstm"`` has the sigmoid forget gate only (its other function,
``"lstm"``, is a plain LSTM): lstmx's ``slstm_exp`` (``forget_gate="exp"``) has no peer
here; tests/test_slstm.py holds it to an un-stabilised reference.

The peer runs in float64 (``.double()``: the vanilla backend ignores its ``dtype``
settings and computes in the inputs' dtype). lstmx runs once in float32 (held to the
float64 peer at float32 tolerances) and once in float64 (``jax.enable_x64``, held to it
at near-rounding tolerances). Every weight, bias and start-state entry is random and the
pre-activations have a standard deviation above 1, so the gates spread far from 0.5 and
the stabiliser ``m`` moves.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[bench]')")
_peer_cell = pytest.importorskip(
    "xlstm.blocks.slstm.cell", reason="NX-AI's xlstm is not installed (pip install -e '.[bench]')"
)

B, T, I, H = 3, 7, 5, 8
HEADS = [1, 2, 4]
# (values atol, values rtol, gradients atol, gradients rtol) for lstmx at each dtype,
# against the float64 peer. Measured worst absolute errors over the 6 cases of each dtype:
# float32 outputs 1.9e-7, final states 7.3e-7, gradients 2.1e-6 (largest |gradient| 11);
# float64 outputs 3.3e-16, final states 1.8e-15, gradients 8.9e-15.
TOLERANCES = {
    "float32": (2e-6, 1e-5, 1e-5, 1e-5),
    "float64": (1e-13, 1e-12, 1e-12, 1e-12),
}


def _peer(num_heads: int):
    config = _peer_cell.sLSTMCellConfig(
        hidden_size=H,
        num_heads=num_heads,
        backend="vanilla",
        function="slstm",
        input_shape="BSGNH",  # [B, T, 4H], features gate-major, then head, then unit
        output_shape="BSH",  # [B, T, H], as lstmx's outputs
        dtype="float32",
    )
    return _peer_cell.sLSTMCell(config).double()


def _float32_exact(rng, scale, *shape):
    """Normal draws rounded to float32, so both sides see exactly the same numbers."""
    return (scale * rng.standard_normal(shape)).astype(np.float32).astype(np.float64)


def _set_random_peer_weights(peer, seed: int) -> None:
    """Random ``recurrent_kernel [K, d, 4, d]`` and ``bias [K, 4, d]``, written through the
    peer's external (backend-independent) views."""
    rng = np.random.default_rng(seed)
    K, d = peer.config.num_heads, peer.config.head_dim
    peer.recurrent_kernel[...] = torch.from_numpy(_float32_exact(rng, 0.5, K, d, 4, d))
    peer.bias[...] = torch.from_numpy(_float32_exact(rng, 1.0, K, 4, d))


def _lstmx_w_h(recurrent_kernel: np.ndarray) -> np.ndarray:
    """The peer's ``recurrent_kernel [K, d, 4, d]`` (head, input unit, gate, output unit)
    as lstmx's ``w_h [K, d, 4d]`` (head, input unit, gate-major output columns)."""
    K, d, G, _ = recurrent_kernel.shape
    return recurrent_kernel.reshape(K, d, G * d)


def _lstmx_b(bias: np.ndarray) -> np.ndarray:
    """The peer's ``bias [K, 4, d]`` (head, gate, unit) as lstmx's ``b [4H]`` (gate-major,
    then head, then unit)."""
    return np.transpose(bias, (1, 0, 2)).reshape(-1)


def _data(seed: int, start: str):
    rng = np.random.default_rng(seed)
    w_x = _float32_exact(rng, 0.6, I, 4 * H)
    xs = _float32_exact(rng, 1.0, B, T, I)
    readout = _float32_exact(rng, 1.0, B, T, H)
    if start == "zero":
        state = np.zeros((4, B, H))
    else:  # h in (-1, 1), n > 0 (as after any step), |c| < n, any m
        n = rng.uniform(0.5, 3.0, (B, H))
        h = rng.uniform(-0.9, 0.9, (B, H))
        c = n * rng.uniform(-0.9, 0.9, (B, H))
        m = rng.normal(0.0, 1.0, (B, H))
        state = np.stack([h, c, n, m]).astype(np.float32).astype(np.float64)
    return w_x, xs, readout, state


def _run_peer(peer, w_x, xs, readout, state, start):
    """The peer's outputs, final state and gradients, all in lstmx's layout."""
    w_x_t = torch.tensor(w_x, requires_grad=True)
    xs_t = torch.tensor(xs, requires_grad=True)
    state_t = torch.tensor(state, requires_grad=True)
    # start="zero" uses the peer's own zero state (its `state=None` path).
    ys, final = peer(xs_t @ w_x_t, None if start == "zero" else state_t)
    loss = (ys * torch.tensor(readout)).sum() + torch.sin(final).sum()
    loss.backward()
    grads = {
        "w_x": w_x_t.grad.numpy(),
        "w_h": _lstmx_w_h(peer.recurrent_kernel.grad.numpy()),
        "b": _lstmx_b(peer.bias.grad.numpy()),
        "xs": xs_t.grad.numpy(),
    }
    if start != "zero":
        grads["state"] = state_t.grad.numpy()
    return ys.detach().numpy(), final.detach().numpy(), loss.item(), grads


def _run_lstmx(num_heads, params, xs, readout, state, start, dtype):
    cell = lstmx.slstm(H, num_heads=num_heads)
    cast = lambda a: jnp.asarray(a, dtype)  # noqa: E731

    def loss(params, xs, state):
        start_state = None if start == "zero" else lstmx.SLSTMState(*state)
        final, ys = lstmx.scan(cell, params, xs, start_state)
        final = jnp.stack(final)  # [4, B, H]: h, c, n, m, as the peer's
        return jnp.sum(ys * readout) + jnp.sum(jnp.sin(final)), (ys, final)

    params = lstmx.SLSTMParams(*(cast(a) for a in params))
    (value, (ys, final)), (d_params, d_xs, d_state) = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    )(params, cast(xs), cast(state))
    grads = {"w_x": d_params.w_x, "w_h": d_params.w_h, "b": d_params.b, "xs": d_xs}
    if start != "zero":
        grads["state"] = jnp.stack(d_state)
    to_np = lambda a: np.asarray(a, np.float64)  # noqa: E731
    return to_np(ys), to_np(final), float(value), jax.tree_util.tree_map(to_np, grads)


@pytest.mark.parametrize("start", ["random", "zero"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("num_heads", HEADS, ids=[f"heads{k}" for k in HEADS])
def test_slstm_values_and_gradients_match_nx_ai(num_heads, dtype, start):
    peer = _peer(num_heads)
    _set_random_peer_weights(peer, seed=10 + num_heads)
    w_x, xs, readout, state = _data(20 + num_heads, start)
    w_h = _lstmx_w_h(peer.recurrent_kernel[...].numpy())
    b = _lstmx_b(peer.bias[...].numpy())
    # Pre-activations far from 0: the gates are not all near 0.5.
    assert np.std(xs @ w_x + b) > 1.0

    want_ys, want_final, want_loss, want_grads = _run_peer(peer, w_x, xs, readout, state, start)
    with jax.enable_x64(dtype == "float64"):
        ys, final, value, grads = _run_lstmx(
            num_heads, (w_x, w_h, b), xs, readout, state, start, jnp.dtype(dtype)
        )

    atol, rtol, grad_atol, grad_rtol = TOLERANCES[dtype]
    chex.assert_trees_all_close(
        (ys, final, value), (want_ys, want_final, want_loss), atol=atol, rtol=rtol
    )
    chex.assert_trees_all_close(grads, want_grads, atol=grad_atol, rtol=grad_rtol)
    # The stabiliser moved and the normaliser grew: the exponential input gate was exercised.
    assert np.ptp(want_final[3]) > 1.0 and np.all(want_final[2] > 0.5)


def test_weight_mapping_is_a_bijection_of_the_peer_parameters():
    """Each peer parameter entry lands on its own lstmx entry, and the counts agree once
    lstmx's input kernel (outside the peer's cell) is added."""
    K = 2
    peer = _peer(K)
    d = H // K
    rk = np.arange(K * d * 4 * d, dtype=np.float64).reshape(K, d, 4, d)
    bias = np.arange(K * 4 * d, dtype=np.float64).reshape(K, 4, d)
    np.testing.assert_array_equal(np.sort(_lstmx_w_h(rk).ravel()), rk.ravel())
    np.testing.assert_array_equal(np.sort(_lstmx_b(bias)), bias.ravel())
    # Head 1, gate f (1), input unit 2 -> output unit 3: lstmx's w_h[1][2, 1*d + 3].
    assert _lstmx_w_h(rk)[1, 2, d + 3] == rk[1, 2, 1, 3]
    # Bias of head 1, gate z (2), unit 0: lstmx's b[2H + 1*d + 0].
    assert _lstmx_b(bias)[2 * H + d] == bias[1, 2, 0]
    peer_count = sum(p.numel() for p in peer.parameters())
    assert lstmx.describe(lstmx.slstm(H, num_heads=K), I).total == peer_count + I * 4 * H
