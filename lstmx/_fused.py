r"""The fast sequence path: a scan with a hand-made VJP.

For a cell whose step is ``pointwise(params, state, project_inputs(params, x),
state.h @ w_h)`` (an input projection, one recurrent GEMM, then elementwise work), this
module runs the sequence with ``lax.scan`` and differentiates it by hand, keeping in the
forward loop what the backward needs, as cuDNN's reserve space does:

* forward: the plain loop, saving each step's incoming state and either the cell's own
  residuals (a :class:`HandBackward`: post-activation gates, ``tanh(c_t)``...) or, for a
  cell without one, the two projections ``x_proj`` and ``hh``;
* backward: a reverse loop whose only GEMMs are ``dh_{t-1} += dz_t W_hᵀ`` and the weight
  gradients' shares: the cell's hand-written elementwise backward, or else the VJP of
  ``pointwise`` at the saved projections (autodiff of elementwise work only; nothing is
  recomputed through a GEMM);
* weight gradients: the input projection's VJP at each step inside that loop (``dW_x``,
  the biases it reads and ``d x_t``), and :math:`dW_h = \sum_t h_{t-1}^\top dz_t` inside
  the loop too when a step has at least :data:`W_H_IN_LOOP_MIN_ROWS` rows, else as one
  ``[H, T*B] @ [T*B, G*H]`` GEMM after it over the stored ``dz``.

Measured interleaved on XLA:CPU (2-core AMD EPYC, jax 0.10; README "Speed"): recomputing
the projections in the backward loop cost 4-18 % of a training step, autodiff of the LSTM's
elementwise part (against its hand-written backward) another 5-11 %; the GRU's hand-written
backward gained nothing measurable over autodiff and was dropped. Storing ``dz`` for GEMMs
after the loop cost more than the GEMMs saved: the weight gradients' shares inside the loop
made a step 13.5 % faster at B = 128 (LSTM and GRU, H = 128) and 2 % at B = 32, H = 512, where only
``dW_x``'s moved in (``dW_h``'s in-loop GEMM, contracting 32 rows, was slower there).

The input projection stays inside the loop on purpose: hoisting it out as one
``[T*B, I] @ [I, G*H]`` GEMM made the forward loop 2-2.5x slower, because each step then
reads its slice of a large ``[T, B, G*H]`` array inside the gate fusion; projecting
``[B, I]`` per step costs little and keeps the loop fast.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Array = jax.Array
Pointwise = Callable[[Any, Any, Array, Array], tuple[Any, Array, Any]]


class HandBackward(NamedTuple):
    """A cell's elementwise step split into a saving forward and a hand-written backward.

    Attributes:
      forward: ``forward(params, state, x_proj, hh) -> (new_state, y, residuals)``, the
        values of ``pointwise`` plus what ``backward`` needs (a pytree of arrays).
      backward: ``backward(params, state, residuals, d_new_state, dy) -> (d_params,
        d_state, d_x_proj, d_hh)``: the VJP of ``forward``'s ``(new_state, y)`` at
        ``(params, state, x_proj, hh)``. ``d_params`` has ``params``'s structure with
        ``w_x`` and ``w_h`` None; ``d_state.h`` leaves out the path through ``hh`` (the
        loop adds ``d_hh W_hᵀ``); ``d_hh`` None means "equal to ``d_x_proj``" (a cell
        that reads only ``x_proj + hh``), which spares the loop a second ``[T, B, G*H]``
        output.
    """

    forward: Callable[..., tuple[Any, Array, Any]]
    backward: Callable[..., tuple[Any, Any, Array, Array]]


#: From how many rows per step (the batch, all batch axes together) the backward loop adds
#: each step's ``h_{t-1}^T dz_t`` to ``dW_h`` itself, instead of storing every ``dz_t`` and
#: taking one ``[H, T*B] @ [T*B, G*H]`` GEMM after the loop. Measured interleaved on XLA:CPU
#: (README "Speed"): at B = 128 and 256 the loop's GEMM was 2-15 % faster (no ``[T, B,
#: G*H]`` array to write and read back), at B = 32 the single GEMM 14-17 % faster (a
#: contraction over 32 rows runs GEMMs slowly), at 64 mixed (3 % slower to 30 % faster).
W_H_IN_LOOP_MIN_ROWS = 128


def _rows(x: Array) -> Array:
    """``x [..., F]`` as a matrix ``[rows, F]``."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


def _elementwise_params(params):
    """The params the elementwise part reads: all but the two kernels."""
    return params._replace(w_x=None, w_h=None)


def _where(valid, a, b):
    return jax.tree_util.tree_map(lambda x, y: jnp.where(valid, x, y), a, b)


def make_fast_scan(
    project_inputs: Callable, pointwise: Pointwise, hand: HandBackward | None = None
) -> Callable:
    """Builds ``fast_scan(params, state, xs, valid, reverse, unroll)``.

    Args:
      project_inputs: the cell's ``project_inputs(params, x)``, the part of the step that
        reads only ``x`` (affine for most cells; ``LN(x W_x) + b`` for a layer-norm LSTM). It
        need not be affine: the backward takes its VJP over the whole sequence at ``xs``.
      pointwise: ``pointwise(params, state, x_proj_t, hh_t) -> (state, y, gates)`` with
        ``hh_t = state.h @ params.w_h``; it must not read ``params.w_x`` or ``params.w_h``.
        The gates are dropped.
      hand: the cell's hand-written backward of ``pointwise``, or None to differentiate
        ``pointwise`` by autodiff at the saved projections.

    Returns:
      A function of ``params``, the initial ``state``, ``xs [T, *batch, I]``, ``valid``
      (``[T, *batch]`` bool or None), and static ``reverse`` and ``unroll``, returning
      ``(final_state, ys [T, *batch, O])``; reverse-mode differentiable in params, state
      and xs.
    """
    if hand is None:

        def forward_saving(params, state, x_proj, hh):
            new_state, y = pointwise(params, state, x_proj, hh)[:2]
            return new_state, y, (x_proj, hh)

        def backward(small, state, saved, d_state, dy):
            x_proj, hh = saved
            _, vjp = jax.vjp(lambda *a: pointwise(*a)[:2], small, state, x_proj, hh)
            return vjp((d_state, dy))

    else:
        forward_saving, backward = hand

    def forward_loop(params, state, xs, valid, reverse, unroll, keep):
        def body(state, inputs):
            x_t, valid_t = inputs
            x_proj = project_inputs(params, x_t)
            new_state, y, saved = forward_saving(params, state, x_proj, state.h @ params.w_h)
            if valid_t is not None:  # where False, the state is kept and the output is zero
                new_state = _where(valid_t[..., None], new_state, state)
                y = jnp.where(valid_t[..., None], y, jnp.zeros_like(y))
            return new_state, ((y, (state, saved)) if keep else y)

        return lax.scan(body, state, (xs, valid), reverse=reverse, unroll=unroll)

    @partial(jax.custom_vjp, nondiff_argnums=(4, 5))
    def fast_scan(params, state, xs, valid, reverse, unroll):
        return forward_loop(params, state, xs, valid, reverse, unroll, keep=False)

    def fast_scan_forward(params, state, xs, valid, reverse, unroll):
        final, (ys, saved) = forward_loop(params, state, xs, valid, reverse, unroll, keep=True)
        return (final, ys), (params, saved, xs, valid)

    def fast_scan_backward(reverse, unroll, residuals, cotangents):
        params, (states, saved), xs, valid = residuals
        d_final, d_ys = cotangents
        # Transposed once here, not inside the loop: each step's ``dz W_hᵀ`` then reads a
        # row-major [G*H, H] operand. Measured interleaved on XLA:CPU: that GEMM alone
        # 1.25x faster at [32, 2048] @ [2048, 512], the training step 3-4 % faster at
        # B = 32, H = 512 (LSTM, GRU) and unchanged at B = 128, H = 128.
        w_h_transposed = params.w_h.T
        small = _elementwise_params(params)
        rows = int(np.prod(states.h.shape[1:-1], dtype=int))  # rows of one step's GEMMs
        w_h_in_loop = rows >= W_H_IN_LOOP_MIN_ROWS

        def body(carry, inputs):
            d_state, d_params = carry
            state, saved_t, x_t, valid_t, dy_t = inputs
            d_kept = None
            if valid_t is not None:  # a kept step passes d_state through untouched
                mask = valid_t[..., None]
                d_kept = _where(mask, jax.tree_util.tree_map(jnp.zeros_like, d_state), d_state)
                d_state = _where(mask, d_state, jax.tree_util.tree_map(jnp.zeros_like, d_state))
                dy_t = jnp.where(mask, dy_t, jnp.zeros_like(dy_t))
            d_small_t, d_prev, d_x_proj, d_hh = backward(small, state, saved_t, d_state, dy_t)
            if d_hh is None:
                d_hh = d_x_proj
            d_prev = d_prev._replace(h=d_prev.h + d_hh @ w_h_transposed)
            if d_kept is not None:
                d_prev = jax.tree_util.tree_map(jnp.add, d_prev, d_kept)
            # This step's share of the input kernel's (and bias's) gradient and d x_t: the
            # VJP of project_inputs at x_t, its rows flattened so that dW_x is one GEMM.
            _, project_vjp = jax.vjp(project_inputs, params, _rows(x_t))
            d_projection, d_x = project_vjp(_rows(d_x_proj))
            d_x = d_x.reshape(x_t.shape)
            d_w_h = _rows(state.h).T @ _rows(d_hh) if w_h_in_loop else None
            d_t = jax.tree_util.tree_map(
                jnp.add, d_projection._replace(w_x=None, w_h=None), d_small_t
            )._replace(w_x=d_projection.w_x, w_h=d_w_h)
            d_params = jax.tree_util.tree_map(jnp.add, d_params, d_t)
            return (d_prev, d_params), (d_x, None if w_h_in_loop else d_hh)

        # Sums over steps run in float32 at least, so that bfloat16 params lose no more to
        # the T additions than one GEMM would.
        zeros = jax.tree_util.tree_map(
            lambda leaf: jnp.zeros(leaf.shape, jnp.promote_types(leaf.dtype, jnp.float32)),
            params,
        )
        if not w_h_in_loop:
            zeros = zeros._replace(w_h=None)
        (d_state, d_params), (d_xs, d_hh) = lax.scan(
            body,
            (d_final, zeros),
            (states, saved, xs, valid, d_ys),
            reverse=not reverse,
            unroll=unroll,
        )
        if not w_h_in_loop:  # dW_h = sum over steps and batch of h_{t-1}^T dz_t, as one GEMM
            d_params = d_params._replace(w_h=_rows(states.h).T @ _rows(d_hh))
        d_params = jax.tree_util.tree_map(lambda d, p: d.astype(p.dtype), d_params, params)
        d_valid = None if valid is None else np.zeros(valid.shape, jax.dtypes.float0)
        return d_params, d_state, d_xs, d_valid

    fast_scan.defvjp(fast_scan_forward, fast_scan_backward)
    return fast_scan
