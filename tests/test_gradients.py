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


@pytest.mark.parametrize(
    "run, modes",
    [(lstmx.scan, ("rev",)), (lstmx.scan_stepwise, ("rev", "fwd"))],
    ids=["fast_path", "stepwise"],
)
@pytest.mark.parametrize("name", NAMES)
def test_check_grads_small_cell(name, run, modes):
    """Derivatives of a scan loss match finite differences (float64).

    The fast path has a custom VJP, so only reverse mode goes through it.
    """
    with jax.enable_x64(True):
        cell = lstmx.variant(name, 3)
        params = _random_tree(cell.init(jax.random.key(0), 2, jnp.float64), jax.random.key(1))
        xs = jax.random.normal(jax.random.key(2), (2, 5, 2), jnp.float64)
        state = _random_tree(cell.initial_state((2,), jnp.float64), jax.random.key(3))
        readout = jax.random.normal(jax.random.key(4), (2, 5, 3), jnp.float64)

        def loss(params, xs, state):
            final, ys = run(cell, params, xs, state, lengths=jnp.array([5, 3]))
            return jnp.sum(ys * readout) + jnp.sum(final.h**2)

        check_grads(loss, (params, xs, state), order=1, modes=modes, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("name", NAMES)
def test_fast_path_gradients_equal_stepwise(name, reverse):
    """The fast path (custom VJP) and the plain step loop agree in values and gradients."""
    cell = lstmx.variant(name, 6)
    params = _random_tree(cell.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (4, 9, 3))
    state = _random_tree(cell.initial_state((4,)), jax.random.key(3))
    readout = jax.random.normal(jax.random.key(4), (4, 9, 6))
    lengths = jnp.array([9, 4, 0, 1])

    def loss(run, params, xs, state):
        final, ys = run(cell, params, xs, state, lengths=lengths, reverse=reverse)
        final_terms = sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree_util.tree_leaves(final))
        return jnp.sum(ys * readout) + final_terms

    fast = jax.jit(jax.value_and_grad(lambda *a: loss(lstmx.scan, *a), argnums=(0, 1, 2)))
    plain = jax.jit(jax.value_and_grad(lambda *a: loss(lstmx.scan_stepwise, *a), argnums=(0, 1, 2)))
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
        fast(params, xs, state),
        plain(params, xs, state),
    )


def test_fast_path_gradients_through_a_stack_and_vmap():
    cell = lstmx.stack([lstmx.lstm(5), lstmx.gru(4, reset_after=False)])
    params = _random_tree(cell.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (2, 4, 7, 3))  # vmapped over the leading axis

    def loss(run, params, xs):
        return jnp.sum(run(cell, params, xs)[1] ** 2)

    def batched(run):
        return jax.vmap(jax.grad(lambda p, x: loss(run, p, x)), in_axes=(None, 0))(params, xs)

    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5),
        batched(lstmx.scan),
        batched(lstmx.scan_stepwise),
    )


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
