r"""The fast sequence path: a scan with a hand-made VJP.

For a cell whose step is ``pointwise(params, state, project_inputs(params, x),
state.h @ w_h)`` (an input projection, one recurrent GEMM, then elementwise work), this
module runs the sequence with ``lax.scan`` and differentiates it by hand:

* forward: the plain loop, keeping only each step's incoming state as residual;
* backward: a reverse loop that recomputes each step's projections from that state and
  takes the VJP of the elementwise part, sending ``dh_{t-1} += dz_t W_hᵀ`` around the loop;
* after the loop, every weight gradient as one GEMM over all steps:
  :math:`dW_h = \sum_t h_{t-1}^\top dz_t`, and the input kernel's and bias's gradients
  (with ``d xs``) as the VJP of ``project_inputs`` over the whole sequence; autodiff of
  ``lax.scan`` instead accumulates T small GEMMs inside the backward loop.

The input projection stays inside the loop on purpose. Measured on XLA:CPU (jax 0.10):
hoisting it out as one ``[T*B, I] @ [I, G*H]`` GEMM made the forward loop 2-2.5x slower,
because each step then reads its slice of a large ``[T, B, G*H]`` array inside the gate
fusion; projecting ``[B, I]`` per step costs little and keeps the loop fast.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
Pointwise = Callable[[Any, Any, Array, Array], tuple[Any, Array, Any]]


def _masked(pointwise: Pointwise, params, state, x_proj, hh, valid):
    """One step; where ``valid`` is False the state is kept and the output is zero."""
    new_state, y = pointwise(params, state, x_proj, hh)[:2]  # the gates are not needed here
    if valid is None:
        return new_state, y
    valid = valid[..., None]
    new_state = jax.tree_util.tree_map(lambda a, b: jnp.where(valid, a, b), new_state, state)
    return new_state, jnp.where(valid, y, jnp.zeros_like(y))


def _elementwise_params(params):
    """The params the elementwise part reads: all but the two kernels."""
    return params._replace(w_x=None, w_h=None)


def make_fast_scan(project_inputs: Callable, pointwise: Pointwise) -> Callable:
    """Builds ``fast_scan(params, state, xs, valid, reverse, unroll)``.

    Args:
      project_inputs: the cell's ``project_inputs(params, x)``, the part of the step that
        reads only ``x`` (affine for most cells; ``LN(x W_x) + b`` for a layer-norm LSTM). It
        need not be affine: the backward takes its VJP over the whole sequence at ``xs``.
      pointwise: ``pointwise(params, state, x_proj_t, hh_t) -> (state, y, gates)`` with
        ``hh_t = state.h @ params.w_h``; it must not read ``params.w_x`` or ``params.w_h``.
        The gates are dropped.

    Returns:
      A function of ``params``, the initial ``state``, ``xs [T, *batch, I]``, ``valid``
      (``[T, *batch]`` bool or None), and static ``reverse`` and ``unroll``, returning
      ``(final_state, ys [T, *batch, O])``; reverse-mode differentiable in params, state
      and xs.
    """

    def forward_loop(params, state, xs, valid, reverse, unroll, keep_states):
        def body(state, inputs):
            x_t, valid_t = inputs
            x_proj = project_inputs(params, x_t)
            hh = state.h @ params.w_h
            new_state, y = _masked(pointwise, params, state, x_proj, hh, valid_t)
            return new_state, ((y, state) if keep_states else y)

        return lax.scan(body, state, (xs, valid), reverse=reverse, unroll=unroll)

    @partial(jax.custom_vjp, nondiff_argnums=(4, 5))
    def fast_scan(params, state, xs, valid, reverse, unroll):
        return forward_loop(params, state, xs, valid, reverse, unroll, keep_states=False)

    def fast_scan_forward(params, state, xs, valid, reverse, unroll):
        final, (ys, states) = forward_loop(params, state, xs, valid, reverse, unroll, True)
        return (final, ys), (params, states, xs, valid)

    def fast_scan_backward(reverse, unroll, residuals, cotangents):
        params, states, xs, valid = residuals
        d_final, d_ys = cotangents
        w_h = params.w_h
        small = _elementwise_params(params)

        def body(carry, inputs):
            d_state, d_small = carry
            state, x_t, valid_t, dy_t = inputs
            x_proj = project_inputs(params, x_t)
            hh = state.h @ w_h

            def step(small, state, x_proj, hh):
                return _masked(pointwise, small, state, x_proj, hh, valid_t)

            _, vjp = jax.vjp(step, small, state, x_proj, hh)
            d_small_t, d_prev, d_x_proj, d_hh = vjp((d_state, dy_t))
            d_prev = d_prev._replace(h=d_prev.h + d_hh @ w_h.T)
            d_small = jax.tree_util.tree_map(jnp.add, d_small, d_small_t)
            return (d_prev, d_small), (d_x_proj, d_hh)

        zeros = jax.tree_util.tree_map(jnp.zeros_like, small)
        (d_state, d_small), (d_x_proj, d_hh) = lax.scan(
            body,
            (d_final, zeros),
            (states, xs, valid, d_ys),
            reverse=not reverse,
            unroll=unroll,
        )
        # dW_h = sum over steps and batch of h_{t-1}^T dz_t, as one GEMM.
        h_prev = states.h.reshape(-1, states.h.shape[-1])
        d_w_h = h_prev.T @ d_hh.reshape(-1, d_hh.shape[-1])
        # The input kernel's and bias's gradients and d xs: one VJP over the sequence.
        _, project_vjp = jax.vjp(project_inputs, params, xs)
        d_projection, d_xs = project_vjp(d_x_proj)
        d_params = jax.tree_util.tree_map(
            jnp.add, d_projection._replace(w_x=None, w_h=None), d_small
        )._replace(w_x=d_projection.w_x, w_h=d_w_h)
        d_valid = None if valid is None else np.zeros(valid.shape, jax.dtypes.float0)
        return d_params, d_state, d_xs, d_valid

    fast_scan.defvjp(fast_scan_forward, fast_scan_backward)
    return fast_scan
