"""What the library's tests share: tolerances, random non-zero trees, a Python-loop scan.

Random test values are drawn with NumPy, so that making test data costs no XLA
compilation; ``jax.random`` is kept for what goes through ``init`` (keys).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Tol(NamedTuple):
    """An explicit ``rtol`` / ``atol`` pair (``**tol._asdict()`` for chex assertions)."""

    rtol: float
    atol: float


# Two float32 computations of the same maths in a different order (fast path vs step
# loop, jit vs eager, unroll 2 vs 1) agree to a few ulps; 1e-5 leaves room for T <= 10.
F32 = Tol(rtol=1e-5, atol=1e-5)
# bfloat16 keeps 8 significant bits (eps 2^-8 = 0.0039): two orders of the same sums
# differ by a few ulps of the largest term.
BF16 = Tol(rtol=5e-2, atol=5e-2)


def random_like(tree: Any, seed: int, scale: float = 0.5, dtype: Any = None) -> Any:
    """A pytree shaped like ``tree`` (arrays or ShapeDtypeStructs) of N(0, scale^2) values.

    Every leaf, biases, peepholes and states included, becomes random and non-zero, so
    that no term of an equation hides behind a zero.
    """
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(scale * rng.standard_normal(x.shape), dtype or x.dtype), tree
    )


def random_params(cell, input_size: int, seed: int, scale: float = 0.5, dtype=jnp.float32):
    """Random non-zero params of ``cell`` (the structure of ``cell.init``, no compilation)."""
    shapes = jax.eval_shape(lambda key: cell.init(key, input_size, dtype), jax.random.key(0))
    return random_like(shapes, seed, scale)


def random_state(cell, batch_shape: tuple, seed: int, scale: float = 0.5, dtype=jnp.float32):
    """A random non-zero initial state of ``cell`` for ``batch_shape``."""
    return random_like(jax.eval_shape(lambda: cell.initial_state(batch_shape, dtype)), seed, scale)


def python_loop(cell, params, xs, state, *, reverse: bool = False, lengths=None, step=None):
    """The reference for ``lstmx.scan``: ``cell.step`` in a Python loop (haiku's way).

    Args:
      xs: ``[*batch, T, I]``.
      lengths: ``[*batch]`` or None; where ``t >= lengths`` the state is kept and the
        output is zero, which with ``reverse`` starts each sequence at its own last step.
      step: the step to call (``cell.step`` when None), e.g. a jitted one.

    Returns:
      ``(final_state, ys [*batch, T, O])``.
    """
    step = cell.step if step is None else step
    num_steps = xs.shape[-2]
    order = range(num_steps - 1, -1, -1) if reverse else range(num_steps)
    ys = [None] * num_steps
    for t in order:
        new_state, y = step(params, state, xs[..., t, :])
        if lengths is None:
            state, ys[t] = new_state, y
            continue
        keep = (t < np.asarray(lengths))[..., None]
        state = jax.tree_util.tree_map(
            lambda a, b, keep=keep: jnp.where(keep, a, b), new_state, state
        )
        ys[t] = jnp.where(keep, y, jnp.zeros_like(y))
    return state, jnp.stack(ys, axis=-2)


def relative_error(got: Any, want: Any) -> float:
    """Largest ``|got - want|`` of each leaf over that leaf's largest ``|want|``, over all
    leaves (in float64)."""
    errors = [
        np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64)))
        / max(np.max(np.abs(np.asarray(w, np.float64))), 1e-30)
        for g, w in zip(
            jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True
        )
    ]
    return max(errors)


def max_abs_error(got: Any, want: Any) -> float:
    """Largest ``|got - want|`` over all leaves (in float64)."""
    return max(
        float(np.max(np.abs(np.asarray(g, np.float64) - np.asarray(w, np.float64))))
        for g, w in zip(
            jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True
        )
    )
