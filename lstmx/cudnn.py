r"""An opt-in cuDNN path for the plain LSTM, through ``jax.experimental.rnn``.

``jax.experimental.rnn.lstm`` calls cuDNN's fused LSTM on an NVIDIA GPU. It takes one flat
weight vector in cuDNN's layout (per layer: ``W_ih [4H, I]``, ``W_hh [4H, H]``, then
``b_ih [4H]``, ``b_hh [4H]``, gate order i, f, g, o, as PyTorch's ``nn.LSTM``).
:func:`scan` converts an :func:`lstmx.lstm` cell's params on the way in (``W_ih = w_xᵀ``,
``W_hh = w_hᵀ``, ``b_ih = b``, ``b_hh = 0``), so gradients come back in lstmx's layout by
autodiff of that conversion; :func:`to_cudnn_weights` / :func:`from_cudnn_weights` convert
explicitly (``from`` folds ``b_ih + b_hh`` into ``b``).

Only the plain LSTM qualifies (no peepholes, ablations, projection, clipping or layer
norm; :func:`supported`). cuDNN is used only when asked (``lstmx.cudnn.scan``), never by
:func:`lstmx.scan`. ``reference=True`` runs ``jax.experimental.rnn.lstm_ref``, JAX's own
reference of the same computation on any backend, which is how the conversion is tested
without a GPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lstmx import _checks
from lstmx.cells.base import Cell
from lstmx.cells.lstm import LSTMOptions, LSTMParams, LSTMState

Array = jax.Array

__all__ = ["from_cudnn_weights", "scan", "supported", "to_cudnn_weights"]


def supported(cell: Cell) -> bool:
    """Whether ``cell`` is a plain :func:`lstmx.lstm`, the one cuDNN computes (the init
    options, ``forget_bias``, ``init`` and ``t_max``, do not matter)."""
    options = getattr(cell, "options", None)
    if not isinstance(options, LSTMOptions):
        return False
    return (
        options.blocks == ("i", "f", "g", "o")
        and options.input_activation
        and options.output_activation
        and not (options.peephole or options.full_gate_recurrence or options.layer_norm)
        and options.proj_size is None
        and options.cell_clip is None
    )


def _check(cell: Cell) -> None:
    if not supported(cell):
        raise ValueError(
            "lstmx.cudnn runs the plain LSTM only (lstmx.lstm(H) without peepholes, "
            f"ablations, proj_size, clipping or layer_norm); got options {cell.options}."
        )


def to_cudnn_weights(params: LSTMParams) -> Array:
    """lstmx LSTM params -> cuDNN's flat weights ``[4H·I + 4H·H + 8H]`` (``b_hh = 0``)."""
    return jnp.concatenate(
        [params.w_x.T.ravel(), params.w_h.T.ravel(), params.b, jnp.zeros_like(params.b)]
    )


def from_cudnn_weights(weights: Array, input_size: int, hidden_size: int) -> LSTMParams:
    """cuDNN's flat weights of a 1-layer unidirectional LSTM -> lstmx params."""
    from jax.experimental import rnn

    _checks.positive_int("input_size", input_size)
    _checks.positive_int("hidden_size", hidden_size)
    expected = rnn.get_num_params_in_lstm(input_size, hidden_size, 1, False)
    if getattr(weights, "shape", None) != (expected,):
        raise ValueError(
            f"weights must be a flat [{expected}] array for input_size={input_size}, "
            f"hidden_size={hidden_size}; got shape {getattr(weights, 'shape', None)}."
        )
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden_size, 1, False)
    return LSTMParams(w_ih[0].T, w_hh[0].T, b_ih[0] + b_hh[0])


def scan(
    cell: Cell,
    params: LSTMParams,
    xs: Array,
    state: LSTMState | None = None,
    *,
    lengths: Array | None = None,
    reference: bool = False,
) -> tuple[LSTMState, Array]:
    """Runs a plain LSTM over ``xs [B, T, I]`` with cuDNN (``jax.experimental.rnn.lstm``).

    Same values and gradients as :func:`lstmx.scan` (``lengths``: outputs past a
    sequence's length are zero, the final state is the one at its length; every length
    at least 1); batch-major, one batch axis, no ``reverse``. Not tested on a GPU yet (no
    device was lent to the round that wrote it); ``reference=True`` is, on CPU.

    Args:
      reference: run ``jax.experimental.rnn.lstm_ref`` instead of cuDNN (any backend).

    Raises:
      ValueError: the cell is not a plain LSTM, or ``xs`` is not ``[B, T, I]``.
    """
    from jax.experimental import rnn

    _check(cell)
    xs = _checks.float_array("xs", xs)
    if xs.ndim != 3:
        raise ValueError(f"xs must be [B, T, I], got shape {tuple(xs.shape)}.")
    batch, steps, input_size = xs.shape
    hidden = cell.options.hidden_size
    if state is None:
        state = cell.initial_state((batch,), xs.dtype)
    seq_lengths = jnp.full((batch,), steps, jnp.int32) if lengths is None else lengths
    seq_lengths = jnp.asarray(seq_lengths, jnp.int32)
    if seq_lengths.shape != (batch,):
        raise ValueError(f"lengths must be [{batch}], got shape {tuple(seq_lengths.shape)}.")
    if not isinstance(seq_lengths, jax.core.Tracer) and not (
        (seq_lengths >= 1).all() and (seq_lengths <= steps).all()
    ):
        raise ValueError(f"lengths must be in [1, {steps}] (cuDNN runs no empty sequence).")
    h0, c0 = state.h[None], state.c[None]
    weights = to_cudnn_weights(params)
    if reference:
        w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(weights, input_size, hidden, 1, False)
        ys, h_n, c_n = rnn.lstm_ref(
            xs, h0, c0, w_ih, w_hh, b_ih, b_hh, seq_lengths, input_size, hidden, 1, 0.0, False
        )
    else:
        ys, h_n, c_n = rnn.lstm(xs, h0, c0, weights, seq_lengths, input_size, hidden, 1, 0.0, False)
    valid = jnp.arange(steps)[None, :, None] < seq_lengths[:, None, None]
    ys = jnp.where(valid, ys, jnp.zeros_like(ys))
    return LSTMState(h_n[0], c_n[0]), ys
