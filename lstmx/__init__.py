"""lstmx: recurrent cells as pure JAX functions, sequence runners, tasks and diagnostics.

Quick use::

    import jax, lstmx
    cell = lstmx.lstm(128)
    params = cell.init(jax.random.key(0), input_size=10)
    final_state, ys = lstmx.scan(cell, params, xs)   # xs [B, T, 10] -> ys [B, T, 128]
"""

# Re-exports; __all__ below is built from cells.__all__ and sequence.__all__.
from lstmx import cells, convert, diagnostics, sequence, tasks  # noqa: F401
from lstmx.cells import *  # noqa: F403
from lstmx.describe import Description, ParameterRow, describe  # noqa: F401
from lstmx.sequence import *  # noqa: F403

__version__ = "0.1.0"

# The cells' and the sequence runners' public names, and this package's own.
__all__ = sorted(
    [
        *(name for name in cells.__all__ if name != "lstm_gate_blocks"),  # lstmx.cells only
        *sequence.__all__,
        "Description",
        "ParameterRow",
        "convert",
        "describe",
        "diagnostics",
        "tasks",
    ]
)
