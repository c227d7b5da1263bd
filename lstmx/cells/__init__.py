"""Recurrent cells as pure functions, one module per cell family.

Every cell is a :class:`Cell` (see :mod:`lstmx.cells.base`) and carries its own behaviour:
``cell.step_with_gates`` is the step that also returns the gate activations, and its
options record says its ``family``, its ``parameter_roles()`` and its
``matmul_flops(input_size)``. Each module holds its family's equations once; this package
re-exports every module's public names (``__all__`` is their union).
"""

from __future__ import annotations

from lstmx.cells import base as _base
from lstmx.cells import gru as _gru
from lstmx.cells import indrnn as _indrnn
from lstmx.cells import janet as _janet
from lstmx.cells import lstm as _lstm
from lstmx.cells import mgu as _mgu
from lstmx.cells import min_rnn as _min_rnn
from lstmx.cells import regularized as _regularized
from lstmx.cells import rnn as _rnn
from lstmx.cells import slstm as _slstm
from lstmx.cells import variants as _variants
from lstmx.cells.base import *  # noqa: F403
from lstmx.cells.base import Array, Params, State  # noqa: F401  (type aliases)
from lstmx.cells.gru import *  # noqa: F403
from lstmx.cells.indrnn import *  # noqa: F403
from lstmx.cells.janet import *  # noqa: F403
from lstmx.cells.lstm import *  # noqa: F403
from lstmx.cells.mgu import *  # noqa: F403
from lstmx.cells.min_rnn import *  # noqa: F403
from lstmx.cells.regularized import *  # noqa: F403
from lstmx.cells.rnn import *  # noqa: F403
from lstmx.cells.slstm import *  # noqa: F403
from lstmx.cells.variants import *  # noqa: F403

# The star imports rebind ``lstm``, ``gru``, ... to the cell constructors
# (``lstmx.cells.lstm(64)``); the modules are reached through the private aliases above.
__all__ = sorted(
    {
        *_base.__all__,
        *_gru.__all__,
        *_indrnn.__all__,
        *_janet.__all__,
        *_lstm.__all__,
        *_mgu.__all__,
        *_min_rnn.__all__,
        *_regularized.__all__,
        *_rnn.__all__,
        *_slstm.__all__,
        *_variants.__all__,
    }
)
