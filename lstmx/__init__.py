"""lstmx: recurrent cells as pure JAX functions, long-dependency tasks and comparisons.

Quick use::

    import jax, lstmx
    cell = lstmx.lstm(128)
    params = cell.init(jax.random.key(0), input_size=10)
    final_state, ys = lstmx.scan(cell, params, xs)   # xs [B, T, 10] -> ys [B, T, 128]
"""

from lstmx import convert, diagnostics, tasks
from lstmx.cells import (
    Cell,
    FGRState,
    GRUParams,
    GRUState,
    LSTMParams,
    LSTMState,
    RNNParams,
    RNNState,
    gru,
    lstm,
    rnn,
    sigmoid,
    variant,
    variant_names,
    variant_summary,
)
from lstmx.describe import Description, ParameterRow, describe
from lstmx.sequence import (
    Bidirectional,
    BidirectionalParams,
    BidirectionalState,
    StackParams,
    StackState,
    bidirectional,
    scan,
    scan_stepwise,
    stack,
)

__version__ = "0.1.0"

__all__ = [
    "Bidirectional",
    "BidirectionalParams",
    "BidirectionalState",
    "Cell",
    "Description",
    "FGRState",
    "GRUParams",
    "GRUState",
    "LSTMParams",
    "LSTMState",
    "ParameterRow",
    "RNNParams",
    "RNNState",
    "StackParams",
    "StackState",
    "bidirectional",
    "convert",
    "describe",
    "diagnostics",
    "gru",
    "lstm",
    "rnn",
    "scan",
    "scan_stepwise",
    "sigmoid",
    "stack",
    "tasks",
    "variant",
    "variant_names",
    "variant_summary",
]
