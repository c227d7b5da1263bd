"""Flax linen adapters: any lstmx cell inside a Flax model.

Two ways in, both storing the cell's params NamedTuple (e.g. :class:`lstmx.LSTMParams`) as
one Flax parameter named ``"cell"``:

* :class:`RNN` runs a cell over a whole sequence with :func:`lstmx.scan`, so training
  gets the fast path (a hand-made VJP on saved gates, :mod:`lstmx._fused`). Prefer it.
* :class:`CellWrapper` is a ``flax.linen.RNNCellBase``: one step, for code written around
  ``flax.linen.RNN`` or ``flax.linen.Bidirectional``. Its carry follows Flax's convention
  for the cells Flax has: the tuple ``(c, h)`` for the LSTM family (as ``nn.LSTMCell``),
  the array ``h`` for one-vector states (GRU, MGU, Elman RNN, IndRNN, minGRU / minLSTM, as
  ``nn.GRUCell``); cells Flax has no counterpart of (FGR, sLSTM) keep their lstmx state.

Example::

    import flax.linen as nn
    import jax
    import lstmx
    from lstmx.linen import RNN

    class Classifier(nn.Module):
        @nn.compact
        def __call__(self, xs):                        # xs [B, T, I]
            _, ys = RNN(lstmx.lstm(128))(xs)          # ys [B, T, 128]
            return nn.Dense(10)(ys[:, -1])            # [B, 10]

    variables = Classifier().init(jax.random.key(0), xs)
    lstm_params = variables["params"]["RNN_0"]["cell"]   # an lstmx.LSTMParams
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from lstmx import _checks
from lstmx.cells import Cell, State
from lstmx.cells.base import HiddenState
from lstmx.cells.lstm import LSTMState
from lstmx.sequence import Bidirectional, scan

Array = jax.Array

__all__ = ["RNN", "CellWrapper", "from_flax_carry", "to_flax_carry"]


def to_flax_carry(state: State) -> Any:
    """An lstmx state as Flax's carry: ``LSTMState(h, c)`` -> ``(c, h)`` (``nn.LSTMCell``);
    a one-vector state (``GRUState(h)``, ...) -> ``h`` (``nn.GRUCell``); any other state
    (FGR, sLSTM: no Flax counterpart) as it is."""
    if isinstance(state, LSTMState):
        return (state.c, state.h)
    if isinstance(state, HiddenState):
        return state.h
    return state


def from_flax_carry(cell: Cell, carry: Any, dtype: Any = jnp.float32) -> State:
    """The inverse of :func:`to_flax_carry` for ``cell``'s state type.

    Raises:
      TypeError: the carry has not the form Flax's convention gives this cell's state.
    """
    kind = type(jax.eval_shape(lambda: cell.initial_state((), dtype)))
    if issubclass(kind, LSTMState):
        if isinstance(carry, LSTMState) or not (isinstance(carry, tuple) and len(carry) == 2):
            raise TypeError(
                "an LSTM's carry is Flax's (c, h) tuple (CellWrapper.initialize_carry gives "
                f"it); got {type(carry).__name__}."
            )
        c, h = carry
        return LSTMState(h=h, c=c)
    if issubclass(kind, HiddenState):
        if isinstance(carry, tuple):
            raise TypeError(
                f"a {kind.__name__[:-5] or 'one-vector'} cell's carry is Flax's array h "
                f"(CellWrapper.initialize_carry gives it); got {type(carry).__name__}."
            )
        return kind(h=carry)
    return carry


def _check_cell(cell: Any, allow_bidirectional: bool) -> None:
    allowed = (Cell, Bidirectional) if allow_bidirectional else (Cell,)
    if not isinstance(cell, allowed):
        names = " or ".join(f"lstmx.{kind.__name__}" for kind in allowed)
        raise TypeError(
            f"cell must be an {names} (e.g. lstmx.lstm(128)), got {type(cell).__name__}."
        )


class RNN(nn.Module):
    """Runs an lstmx cell over a sequence as a Flax linen module.

    The params are created on first call by ``cell.init(key, xs.shape[-1], param_dtype)``
    and stored as one parameter, ``"cell"``; the forward pass is :func:`lstmx.scan`, so
    every lstmx cell (variants, :func:`lstmx.stack`) works, and so does an
    :class:`lstmx.Bidirectional` (no ``reverse``; its apply runs both directions).

    Example::

        rnn = RNN(lstmx.stack([lstmx.lstm(64), lstmx.lstm(64)]))
        variables = rnn.init(jax.random.key(0), xs)           # xs [B, T, I]
        final_state, ys = rnn.apply(variables, xs)            # ys [B, T, 64]
        # the same numbers as lstmx.scan(rnn.cell, variables["params"]["cell"], xs)

    Attributes:
      cell: an :class:`lstmx.Cell` (or :class:`lstmx.Bidirectional`).
      param_dtype: dtype passed to ``cell.init``.
      unroll: passed to :func:`lstmx.scan`.
    """

    cell: Cell | Bidirectional
    param_dtype: Any = jnp.float32
    unroll: int = 1

    @nn.compact
    def __call__(
        self,
        xs: Array,
        *,
        initial_state: State | None = None,
        lengths: Array | None = None,
        reverse: bool = False,
        time_major: bool = False,
    ) -> tuple[State, Array]:
        """Runs the cell over ``xs``.

        Args:
          xs: ``[*batch, T, I]``, or ``[T, *batch, I]`` with ``time_major=True``.
          initial_state: the cell's state; zeros when None.
          lengths: ``[*batch]`` lengths of right-padded sequences; outputs past a
            sequence's length are zero and its final state is the one after its last step.
          reverse: run from the last step to the first (outputs keep their positions).
          time_major: whether time is the first axis of ``xs`` and ``ys``.

        Returns:
          ``(final_state, ys)``, ``ys [*batch, T, O]`` (``[T, *batch, O]`` time-major).
        """
        cell = self.cell
        _check_cell(cell, allow_bidirectional=True)
        xs = _checks.float_array("xs", xs)
        if xs.ndim < 2:
            layout = "[T, *batch, features]" if time_major else "[*batch, T, features]"
            raise ValueError(f"xs must be {layout} (at least 2 axes), got shape {xs.shape}.")
        input_size = xs.shape[-1]
        params = self.param("cell", lambda key: cell.init(key, input_size, self.param_dtype))
        if isinstance(cell, Bidirectional):
            if reverse:
                raise ValueError("reverse=True is not defined for an lstmx.Bidirectional cell.")
            return cell.apply(
                params,
                xs,
                initial_state,
                lengths=lengths,
                time_major=time_major,
                unroll=self.unroll,
            )
        return scan(
            cell,
            params,
            xs,
            initial_state,
            lengths=lengths,
            reverse=reverse,
            time_major=time_major,
            unroll=self.unroll,
        )


class CellWrapper(nn.RNNCellBase):
    """An lstmx cell as a ``flax.linen.RNNCellBase``, for ``flax.linen.RNN`` and friends.

    One call is one ``cell.step``. The carry is Flax's (:func:`to_flax_carry`), so code
    written for ``nn.LSTMCell`` (``c, h = carry``) or ``nn.GRUCell`` works unchanged. Flax's own
    ``RNN`` calls the cell step by step, so the input projection stays inside the loop:
    :class:`RNN` is faster where you don't need Flax's ``RNN`` interface. Note that with
    ``seq_lengths`` Flax's ``RNN`` leaves outputs past a sequence's length as computed
    (not zeroed, unlike :func:`lstmx.scan`).

    Example::

        layer = flax.linen.RNN(CellWrapper(lstmx.gru(64)), return_carry=True)
        variables = layer.init(jax.random.key(0), xs)         # xs [B, T, I]
        h, ys = layer.apply(variables, xs)                    # [B, 64], [B, T, 64]
        params = variables["params"]["cell"]["cell"]          # an lstmx.GRUParams

    Attributes:
      cell: an :class:`lstmx.Cell`.
      param_dtype: dtype of the params and of the carry from :meth:`initialize_carry`.
    """

    cell: Cell
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry: State, x: Array) -> tuple[State, Array]:
        """One step: ``carry`` from :meth:`initialize_carry`, ``x [*batch, I]``.

        Returns:
          ``(new_carry, y)``, ``y [*batch, O]``.
        """
        cell = self.cell
        _check_cell(cell, allow_bidirectional=False)
        x = _checks.float_array("x", x)
        if x.ndim < 1:
            raise ValueError("x must be [*batch, features], got a scalar.")
        input_size = x.shape[-1]
        params = self.param("cell", lambda key: cell.init(key, input_size, self.param_dtype))
        state, y = cell.step(params, from_flax_carry(cell, carry, x.dtype), x)
        return to_flax_carry(state), y

    @nn.nowrap
    def initialize_carry(self, rng: Array, input_shape: tuple[int, ...]) -> Any:
        """Zeros, ``cell.initial_state(input_shape[:-1], param_dtype)`` as Flax's carry
        (:func:`to_flax_carry`); ``rng`` is unused.

        Args:
          rng: a PRNG key (Flax's interface; the lstmx initial state is deterministic).
          input_shape: the shape of one step's input, ``[*batch, I]``.
        """
        del rng
        _check_cell(self.cell, allow_bidirectional=False)
        return to_flax_carry(self.cell.initial_state(tuple(input_shape[:-1]), self.param_dtype))

    @property
    def num_feature_axes(self) -> int:
        """One feature axis: inputs are ``[*batch, I]``."""
        return 1
