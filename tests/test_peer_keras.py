"""lstmx against Keras 3's own ``LSTM`` and ``GRU`` layers (JAX backend), values and
gradients, with weights mapped from Keras's source (``keras/src/layers/rnn/lstm.py`` and
``gru.py``):

* ``LSTM``: ``kernel [I, 4H]``, ``recurrent_kernel [H, 4H]``, ``bias [4H]``, blocks i, f, c,
  o (its ``z0, z1, z2, z3``); the state is ``[h, c]``. lstmx's blocks are i, f, g, o: the
  same layout, so the weights carry over as they are.
* ``GRU``: ``kernel [I, 3H]``, ``recurrent_kernel [H, 3H]``, blocks z, r, h, and
  ``h_t = z ⊙ h_{t-1} + (1 - z) ⊙ hh``. With ``reset_after=True`` (its default, cuDNN's)
  ``bias [2, 3H]`` is the input bias over the recurrent bias, and ``r`` multiplies
  ``h U_h + b_rh``: lstmx's ``gru``. With ``reset_after=False`` the one ``bias [3H]`` is
  the input's and ``r`` multiplies ``h`` before ``U_h``: lstmx's ``gru_cho``. lstmx's
  blocks are r, z, n, so the z and r blocks swap.

Every weight, bias and the start state are random (nothing hides behind Keras's zero bias or
zero state); the gradients are ``jax.grad`` of the same loss through Keras's
``stateless_call`` and through ``lstmx.scan`` (the fast path) and ``lstmx.scan_stepwise``.
"""

from __future__ import annotations

import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lstmx

if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
    pytest.skip("Keras is set to another backend (KERAS_BACKEND)", allow_module_level=True)
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install -e '.[bench]')")

B, T, I, H = 3, 9, 5, 6
RUNS = [lstmx.scan, lstmx.scan_stepwise]
# Keras broadcasts [B, H] against [H]; the suite raises on implicit rank promotion.
KERAS_NUMPY = jax.numpy_rank_promotion("allow")


def _random(*shape, seed):
    return np.random.default_rng(seed).normal(0.0, 0.5, shape).astype(np.float32)


def _keras_layer(kind: str, reset_after: bool = True):
    if kind == "lstm":
        layer = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    else:
        layer = keras.layers.GRU(
            H, return_sequences=True, return_state=True, reset_after=reset_after
        )
    with KERAS_NUMPY:
        layer.build((B, T, I))
    return layer


def _random_keras_weights(layer, seed: int) -> list[np.ndarray]:
    return [_random(*v.shape, seed=seed + n) for n, v in enumerate(layer.trainable_variables)]


def _keras_loss(layer, readout):
    """``loss(weights, xs, state)``: Keras's outputs and final state read into one scalar."""
    non_trainable = [v.value for v in layer.non_trainable_variables]  # its seed generator

    def loss(weights, xs, state):
        with KERAS_NUMPY:
            (ys, *final), _ = layer.stateless_call(
                weights, non_trainable, xs, initial_state=list(state)
            )
        return jnp.sum(ys * readout) + sum(jnp.sum(jnp.sin(s)) for s in final), (ys, final)

    return loss


def _lstm_params_from_keras(kernel, recurrent_kernel, bias) -> lstmx.LSTMParams:
    return lstmx.LSTMParams(jnp.asarray(kernel), jnp.asarray(recurrent_kernel), jnp.asarray(bias))


def _keras_to_lstmx_blocks(a):
    """GRU blocks z, r, h (Keras) -> r, z, n (lstmx), on the last axis."""
    z, r, h = jnp.split(a, 3, axis=-1)
    return jnp.concatenate([r, z, h], axis=-1)


def _gru_params_from_keras(kernel, recurrent_kernel, bias, reset_after) -> lstmx.GRUParams:
    b_x, b_h = (bias[0], bias[1]) if reset_after else (bias, jnp.zeros_like(bias))
    return lstmx.GRUParams(
        *(_keras_to_lstmx_blocks(a) for a in (kernel, recurrent_kernel, b_x, b_h))
    )


CASES = [
    ("lstm", True, lambda: lstmx.lstm(H)),
    ("gru_reset_after", True, lambda: lstmx.gru(H)),
    ("gru_reset_before", False, lambda: lstmx.gru(H, reset_after=False)),
]


@pytest.mark.parametrize("kind, reset_after, make_cell", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("run", RUNS, ids=["fast", "stepwise"])
def test_keras_values_and_gradients(kind, reset_after, make_cell, run):
    layer = _keras_layer("lstm" if kind == "lstm" else "gru", reset_after)
    weights = _random_keras_weights(layer, seed=10)
    xs = _random(B, T, I, seed=1)
    readout = _random(B, T, H, seed=2)
    keras_state = [_random(B, H, seed=3)] + ([_random(B, H, seed=4)] if kind == "lstm" else [])

    keras_loss = _keras_loss(layer, jnp.asarray(readout))
    (want_loss, (want_ys, want_final)), want_grads = jax.value_and_grad(
        keras_loss, argnums=(0, 1, 2), has_aux=True
    )([jnp.asarray(w) for w in weights], jnp.asarray(xs), [jnp.asarray(s) for s in keras_state])

    cell = make_cell()

    def lstmx_loss(weights, xs, state):
        if kind == "lstm":
            params = _lstm_params_from_keras(*weights)
            start = lstmx.LSTMState(h=state[0], c=state[1])
        else:
            params = _gru_params_from_keras(*weights, reset_after)
            start = lstmx.GRUState(state[0])
        final, ys = run(cell, params, xs, start)
        final = [final.h, final.c] if kind == "lstm" else [final.h]
        return jnp.sum(ys * readout) + sum(jnp.sum(jnp.sin(s)) for s in final), (ys, final)

    (loss, (ys, final)), grads = jax.value_and_grad(lstmx_loss, argnums=(0, 1, 2), has_aux=True)(
        [jnp.asarray(w) for w in weights], jnp.asarray(xs), [jnp.asarray(s) for s in keras_state]
    )
    chex.assert_trees_all_close(
        (ys, final, loss), (want_ys, want_final, want_loss), atol=2e-6, rtol=1e-5
    )
    chex.assert_trees_all_close(grads, want_grads, atol=1e-5, rtol=1e-5)


def test_keras_default_init_counts_match():
    # The same number of parameters for the same layer: nothing is dropped in the mapping.
    for kind, reset_after, make_cell in CASES:
        layer = _keras_layer("lstm" if kind == "lstm" else "gru", reset_after)
        keras_count = sum(int(np.prod(v.shape)) for v in layer.trainable_variables)
        lstmx_count = lstmx.describe(make_cell(), I).total
        # Keras's reset-before GRU has one bias; lstmx keeps b_h (zero in the mapping).
        extra = 3 * H if kind == "gru_reset_before" else 0
        assert lstmx_count == keras_count + extra, kind
