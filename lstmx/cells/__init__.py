"""Recurrent cells as pure functions, one module per cell family.

Every cell is a :class:`Cell` (see :mod:`lstmx.cells.base`); its options record says what
it is, and its module holds its equations once, as functions of that record, including
``step_with_gates``, the step that also returns the gate activations
(:func:`step_with_gates` below finds it for any cell).
"""

from __future__ import annotations

from typing import Any

from lstmx.cells import gru as _gru
from lstmx.cells import indrnn as _indrnn
from lstmx.cells import lstm as _lstm
from lstmx.cells import mgu as _mgu
from lstmx.cells import min_rnn as _min_rnn
from lstmx.cells import regularized as _regularized
from lstmx.cells import rnn as _rnn
from lstmx.cells import slstm as _slstm
from lstmx.cells.base import Array, Cell, Params, State, sigmoid
from lstmx.cells.gru import GRUOptions, GRUParams, GRUState, gru
from lstmx.cells.indrnn import IndRNNOptions, IndRNNParams, IndRNNState, indrnn
from lstmx.cells.lstm import FGRState, LSTMOptions, LSTMParams, LSTMState, lstm, lstm_gate_blocks
from lstmx.cells.mgu import MGUOptions, MGUParams, MGUState, mgu
from lstmx.cells.min_rnn import (
    MinGRUOptions,
    MinGRUParams,
    MinLSTMOptions,
    MinLSTMParams,
    MinRNNState,
    min_gru,
    min_lstm,
)
from lstmx.cells.regularized import RegularizedOptions, regularized
from lstmx.cells.rnn import RNNOptions, RNNParams, RNNState, rnn
from lstmx.cells.slstm import SLSTMOptions, SLSTMParams, SLSTMState, slstm
from lstmx.cells.variants import variant, variant_names, variant_summary

__all__ = [
    "Cell",
    "FGRState",
    "GRUOptions",
    "GRUParams",
    "GRUState",
    "IndRNNOptions",
    "IndRNNParams",
    "IndRNNState",
    "LSTMOptions",
    "LSTMParams",
    "LSTMState",
    "MGUOptions",
    "MGUParams",
    "MGUState",
    "MinGRUOptions",
    "MinGRUParams",
    "MinLSTMOptions",
    "MinLSTMParams",
    "MinRNNState",
    "RNNOptions",
    "RNNParams",
    "RNNState",
    "RegularizedOptions",
    "SLSTMOptions",
    "SLSTMParams",
    "SLSTMState",
    "gru",
    "indrnn",
    "lstm",
    "lstm_gate_blocks",
    "regularized",
    "mgu",
    "min_gru",
    "min_lstm",
    "rnn",
    "sigmoid",
    "slstm",
    "step_with_gates",
    "variant",
    "variant_names",
    "variant_summary",
]

# The step of each cell family that also returns its gate activations, by options type.
_STEPS_WITH_GATES = {
    LSTMOptions: _lstm.step_with_gates,
    GRUOptions: _gru.step_with_gates,
    RNNOptions: _rnn.step_with_gates,
    SLSTMOptions: _slstm.step_with_gates,
    MGUOptions: _mgu.step_with_gates,
    IndRNNOptions: _indrnn.step_with_gates,
    MinGRUOptions: _min_rnn.step_with_gates,
    MinLSTMOptions: _min_rnn.step_with_gates,
    RegularizedOptions: _regularized.step_with_gates,
}


def step_with_gates(
    cell: Cell, params: Params, state: State, x: Array
) -> tuple[State, Array, dict[str, Any]]:
    """``cell.step`` that also returns the gate activations ``{name: [*batch, H]}``.

    The gates are computed by the cell's own equations (its module's ``step_with_gates``),
    so diagnostics never re-implement them. An Elman RNN returns ``{}``.

    Raises:
      TypeError: the cell is not a single lstmx cell (a stack, or a cell built by hand).
    """
    gated_step = _STEPS_WITH_GATES.get(type(getattr(cell, "options", None)))
    if gated_step is None:
        raise TypeError(
            "step_with_gates needs a single lstmx cell (lstm, gru, rnn, ...), got a cell with "
            f"options {type(getattr(cell, 'options', None)).__name__}."
        )
    return gated_step(cell.options, params, state, x)
