"""Gradients against finite differences (float64), and vmap of gradients.

That ``lstmx.scan``'s hand-made VJP equals autodiff of ``lax.scan`` (``scan_stepwise``)
for every cell, and that gradients stay finite over 200 steps, is in
tests/test_contract.py; here both are held to finite differences, which use no autodiff.
"""

import chex
import jax
import jax.numpy as jnp
import pytest
from _helpers import F32, random_like, random_params, random_state
from jax.test_util import check_grads

import lstmx


@pytest.mark.parametrize(
    "name, run, modes",
    [
        # The fast path has a custom VJP, so only reverse mode goes through it. Autodiff
        # of the elementwise part at saved projections: full gate recurrence, the GRU.
        # The LSTM's hand-written backward (lstmx.cells.lstm_backward): peepholes, CIFG
        # (with peepholes), a linear block input (NIAF).
        ("fgr", lstmx.scan, ("rev",)),
        ("peephole", lstmx.scan, ("rev",)),
        ("cifg", lstmx.scan, ("rev",)),
        ("niaf", lstmx.scan, ("rev",)),
        ("gru", lstmx.scan, ("rev",)),
        ("janet", lstmx.scan, ("rev",)),
        # scan_stepwise supports forward mode too; Cho's GRU has no fast path.
        ("peephole", lstmx.scan_stepwise, ("rev", "fwd")),
        ("gru_cho", lstmx.scan_stepwise, ("rev",)),
    ],
    ids=[
        "fgr-fast_path",
        "peephole-fast_path",
        "cifg-fast_path",
        "niaf-fast_path",
        "gru-fast_path",
        "janet-fast_path",
        "peephole-stepwise",
        "gru_cho-stepwise",
    ],
)
def test_check_grads_small_cell(name, run, modes):
    """Derivatives of a scan loss with lengths match finite differences (float64)."""
    with jax.enable_x64(True):
        cell = lstmx.variant(name, 3)
        params = random_params(cell, 2, seed=1, dtype=jnp.float64)
        xs = random_like(jax.ShapeDtypeStruct((2, 5, 2), jnp.float64), seed=2, scale=1.0)
        state = random_state(cell, (2,), seed=3, dtype=jnp.float64)
        readout = random_like(jax.ShapeDtypeStruct((2, 5, 3), jnp.float64), seed=4, scale=1.0)

        def loss(params, xs, state):
            final, ys = run(cell, params, xs, state, lengths=jnp.array([5, 3]), reverse=True)
            return jnp.sum(ys * readout) + jnp.sum(final.h**2)

        check_grads(loss, (params, xs, state), order=1, modes=modes, atol=1e-6, rtol=1e-6)


def test_fast_path_gradients_through_a_stack_and_vmap():
    cell = lstmx.stack([lstmx.lstm(5), lstmx.gru(4, reset_after=False)])
    params = random_params(cell, 3, seed=1)
    xs = random_like(jax.ShapeDtypeStruct((2, 4, 7, 3), jnp.float32), seed=2, scale=1.0)

    def loss(run, params, xs):
        return jnp.sum(run(cell, params, xs)[1] ** 2)

    def batched(run):
        return jax.vmap(jax.grad(lambda p, x: loss(run, p, x)), in_axes=(None, 0))(params, xs)

    fast = batched(lstmx.scan)
    chex.assert_trees_all_close(fast, batched(lstmx.scan_stepwise), **F32._asdict())
    chex.assert_tree_all_finite(fast)
