"""Gradients: check_grads against finite differences, and finite over 200 steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import lstmx

NAMES = lstmx.variant_names()


def _random_tree(tree, key, scale=0.5):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        treedef, [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    )


@pytest.mark.parametrize("name", NAMES)
def test_check_grads_small_cell(name):
    """Reverse- and forward-mode derivatives of a scan loss match finite differences (float64)."""
    with jax.enable_x64(True):
        cell = lstmx.variant(name, 3)
        params = _random_tree(cell.init(jax.random.key(0), 2, jnp.float64), jax.random.key(1))
        xs = jax.random.normal(jax.random.key(2), (2, 5, 2), jnp.float64)
        state = _random_tree(cell.initial_state((2,), jnp.float64), jax.random.key(3))
        readout = jax.random.normal(jax.random.key(4), (2, 5, 3), jnp.float64)

        def loss(params, xs, state):
            final, ys = lstmx.scan(cell, params, xs, state, lengths=jnp.array([5, 3]))
            return jnp.sum(ys * readout) + jnp.sum(final.h**2)

        check_grads(loss, (params, xs, state), order=1, modes=("rev", "fwd"), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_over_200_steps(name):
    cell = lstmx.variant(name, 16)
    params = cell.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (4, 200, 4))

    @jax.jit
    def grads(params, xs):
        def loss(params, xs):
            _, ys = lstmx.scan(cell, params, xs)
            return jnp.mean(ys[:, -1] ** 2)

        return jax.grad(loss, argnums=(0, 1))(params, xs)

    param_grads, input_grads = grads(params, xs)
    for leaf in jax.tree_util.tree_leaves(param_grads):
        assert np.all(np.isfinite(leaf))
    assert np.all(np.isfinite(input_grads))
    # The loss at step 200 reaches back to the first half of the sequence at least a little.
    assert np.abs(input_grads[:, 150]).max() > 0.0
