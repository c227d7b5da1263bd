"""Any lstmx cell as a Flax NNX module, and weights to and from Flax NNX's own cells.

NNX is Flax's current API: modules are Python objects that hold their parameters as
``nnx.Param`` variables. :class:`RNN` holds an lstmx cell's params (the cell's own
NamedTuple, each array an ``nnx.Param``) and runs :func:`lstmx.scan` over a sequence, so
it trains with ``nnx.Optimizer`` like any NNX layer. :class:`CellAdapter` is one step, an
``nnx.RNNCellBase`` for ``nnx.RNN`` and ``nnx.Bidirectional``, with Flax's carry
(``(c, h)`` for an LSTM, ``h`` for a GRU)::

    model = lstmx.nnx.RNN(lstmx.lstm(64), input_size=10, rngs=nnx.Rngs(0))
    final_state, ys = model(xs)                          # xs [B, T, 10] -> ys [B, T, 64]
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
    layer = nnx.RNN(lstmx.nnx.CellAdapter(lstmx.gru(64), 10, rngs=nnx.Rngs(0)))

Weights of Flax's ``nnx.LSTMCell`` (linen's parameter names, with the input forget kernel
called ``if_``), ``nnx.OptimizedLSTMCell`` (fused ``dense_i`` without bias and ``dense_h``
with bias, gate order i, f, g, o: lstmx's own layout) and ``nnx.GRUCell`` (fused
``dense_i`` with bias, ``dense_h`` *without* bias: NNX's GRU has no ``b_hn``, flax#5594)
convert exactly with :func:`from_nnx_lstm`, :func:`to_nnx_lstm`, :func:`from_nnx_gru` and
:func:`to_nnx_gru`. This module imports ``flax.nnx``; :mod:`lstmx.convert` imports no Flax.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lstmx import _checks, convert
from lstmx.cells import Cell, GRUParams, LSTMParams
from lstmx.linen import from_flax_carry, to_flax_carry
from lstmx.sequence import scan

Array = jax.Array

__all__ = ["RNN", "CellAdapter", "from_nnx_gru", "from_nnx_lstm", "to_nnx_gru", "to_nnx_lstm"]


def _is_variable(value: Any) -> bool:
    return isinstance(value, nnx.Variable)


def _held_params(owner: str, cell: Any, input_size, rngs, dtype, params) -> Any:
    """The params an NNX module holds: ``cell.init(rngs.params(), input_size, dtype)`` or
    the given ``params``, not both; each array an ``nnx.Param``."""
    if not isinstance(cell, Cell):
        raise TypeError(f"cell must be an lstmx.Cell, got {type(cell).__name__}.")
    if (params is None) == (input_size is None or rngs is None):
        raise ValueError(
            f"{owner} needs either input_size and rngs (to initialise params) or params, "
            f"got input_size={input_size!r}, rngs={rngs!r} and params of type "
            f"{type(params).__name__}."
        )
    if params is None:
        params = cell.init(rngs.params(), input_size, dtype)
    return nnx.data(jax.tree_util.tree_map(nnx.Param, params))


def _plain(params: Any) -> Any:
    return jax.tree_util.tree_map(lambda v: v[...], params, is_leaf=_is_variable)


class RNN(nnx.Module):
    """An lstmx cell run over sequences, its params held as ``nnx.Param`` variables.

    Attributes:
      cell: the :class:`lstmx.Cell` (static).
      params: the cell's params NamedTuple (e.g. :class:`lstmx.LSTMParams`) with every
        array an ``nnx.Param``, so ``nnx.state(model, nnx.Param)`` names them ``params.w_x``,
        ``params.w_h``, ...
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        dtype: Any = jnp.float32,
        params: Any = None,
    ) -> None:
        """Either initialises the params, ``cell.init(rngs.params(), input_size, dtype)``, or
        holds given ``params`` (e.g. converted from PyTorch or Flax), not both."""
        self.cell = cell
        self.params = _held_params("RNN", cell, input_size, rngs, dtype, params)

    def cell_params(self) -> Any:
        """The params as plain arrays, the NamedTuple ``cell.step`` takes."""
        return _plain(self.params)

    def __call__(
        self,
        xs: Array,
        state: Any = None,
        *,
        lengths: Array | None = None,
        reverse: bool = False,
        time_major: bool = False,
        unroll: int = 1,
    ) -> tuple[Any, Array]:
        """``lstmx.scan(cell, params, xs, state, ...) -> (final_state, ys)``; ``unroll``
        as in :func:`lstmx.scan` (and ``flax.nnx.RNN``)."""
        return scan(
            self.cell,
            self.cell_params(),
            xs,
            state,
            lengths=lengths,
            reverse=reverse,
            time_major=time_major,
            unroll=unroll,
        )


class CellAdapter(nnx.RNNCellBase):
    """An lstmx cell as one step of Flax NNX's recurrent API (``nnx.RNN``, ``nnx.Bidirectional``).

    The carry is Flax's (:func:`lstmx.linen.to_flax_carry`): code written for
    ``nnx.LSTMCell`` or ``nnx.GRUCell`` works unchanged. One call is one ``cell.step``, so
    the input projection stays inside the loop: :class:`RNN` (a whole :func:`lstmx.scan`)
    is faster where you don't need NNX's ``RNN`` interface.

    Attributes:
      cell: the :class:`lstmx.Cell` (static).
      params: its params, each array an ``nnx.Param``.
      dtype: the dtype of the params and of the carry from :meth:`initialize_carry`.
    """

    def __init__(
        self,
        cell: Cell,
        input_size: int | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        dtype: Any = jnp.float32,
        params: Any = None,
    ) -> None:
        """As :class:`RNN`: ``input_size`` and ``rngs`` to initialise, or ``params``."""
        self.cell = cell
        self.dtype = dtype
        self.params = _held_params("CellAdapter", cell, input_size, rngs, dtype, params)

    def params_tree(self) -> Any:
        """The params as plain arrays, the NamedTuple ``cell.step`` takes."""
        return _plain(self.params)

    def __call__(self, carry: Any, inputs: Array) -> tuple[Any, Array]:
        """One step: ``carry`` as :meth:`initialize_carry` gives it, ``inputs [*batch, I]``;
        returns ``(new_carry, y)``, ``y [*batch, O]``."""
        x = _checks.float_array("inputs", inputs)
        params = self.params_tree()
        state, y = self.cell.step(params, from_flax_carry(self.cell, carry, x.dtype), x)
        return to_flax_carry(state), y

    def initialize_carry(
        self, input_shape: tuple[int, ...], rngs: Any = None, carry_init: Any = None
    ) -> Any:
        """Zeros of the batch shape ``input_shape[:-1]`` as Flax's carry; ``rngs`` is unused
        (the lstmx initial state is deterministic).

        Raises:
          ValueError: a ``carry_init`` (lstmx states start at zero; pass ``initial_carry``
            to ``nnx.RNN`` for another start).
        """
        del rngs
        if carry_init is not None:
            raise ValueError(
                "CellAdapter's carry starts at zeros; give nnx.RNN an initial_carry instead "
                "of a carry_init."
            )
        state = self.cell.initial_state(tuple(input_shape[:-1]), self.dtype)
        return to_flax_carry(state)

    @property
    def num_feature_axes(self) -> int:
        """One feature axis: inputs are ``[*batch, I]``."""
        return 1


def _pure_params(module: nnx.Module, expected: tuple[type, ...]) -> dict:
    if not isinstance(module, expected):
        names = " or ".join(t.__name__ for t in expected)
        raise TypeError(f"module must be a flax.nnx {names}, got {type(module).__name__}.")
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


def from_nnx_lstm(module: nnx.LSTMCell | nnx.OptimizedLSTMCell) -> LSTMParams:
    """Flax ``nnx.LSTMCell`` / ``nnx.OptimizedLSTMCell`` weights as :class:`lstmx.LSTMParams`.

    The result runs with ``lstmx.lstm(H)`` and gives NNX's outputs (NNX's carry is
    ``(c, h)``, as linen's: :func:`lstmx.convert.from_flax_carry`).
    """
    tree = _pure_params(module, (nnx.LSTMCell, nnx.OptimizedLSTMCell))
    if isinstance(module, nnx.OptimizedLSTMCell):
        return LSTMParams(
            w_x=jnp.asarray(tree["dense_i"]["kernel"]),
            w_h=jnp.asarray(tree["dense_h"]["kernel"]),
            b=jnp.asarray(tree["dense_h"]["bias"]),
        )
    tree["if"] = tree.pop("if_")  # "if" is a Python keyword, so NNX names it "if_"
    return convert.from_flax_lstm(tree)


def to_nnx_lstm(params: LSTMParams, *, optimized: bool = False) -> nnx.Module:
    """A new ``nnx.LSTMCell`` (or ``nnx.OptimizedLSTMCell``) holding ``params``, exactly.

    Raises:
      ValueError: for peephole, full-gate-recurrence or gate-dropping variants, which
        Flax has no cell for (as :func:`lstmx.convert.to_flax_lstm`).
    """
    tree = convert.to_flax_lstm(params)["params"]  # checks params are the standard LSTM's
    input_size, hidden_size = tree["ii"]["kernel"].shape
    if optimized:
        module = nnx.OptimizedLSTMCell(
            input_size, hidden_size, param_dtype=params.w_x.dtype, rngs=nnx.Rngs(0)
        )
        fused = {
            "dense_i": {"kernel": params.w_x},
            "dense_h": {"kernel": params.w_h, "bias": params.b},
        }
        return _with_params(module, fused)
    tree["if_"] = tree.pop("if")
    module = nnx.LSTMCell(input_size, hidden_size, param_dtype=params.w_x.dtype, rngs=nnx.Rngs(0))
    return _with_params(module, tree)


def from_nnx_gru(module: nnx.GRUCell) -> GRUParams:
    """Flax ``nnx.GRUCell`` weights as :class:`lstmx.GRUParams` (``reset_after=True``).

    NNX's GRU computes ``n = tanh(x W_in + b_in + r ⊙ (h W_hn))``: its ``dense_h`` has no
    bias, so ``b_h = 0``; ``b_x`` is ``dense_i``'s bias.
    """
    tree = _pure_params(module, (nnx.GRUCell,))
    bias = jnp.asarray(tree["dense_i"]["bias"])
    return GRUParams(
        w_x=jnp.asarray(tree["dense_i"]["kernel"]),
        w_h=jnp.asarray(tree["dense_h"]["kernel"]),
        b_x=bias,
        b_h=jnp.zeros_like(bias),
    )


def to_nnx_gru(params: GRUParams) -> nnx.GRUCell:
    """A new ``nnx.GRUCell`` holding ``params``, exactly.

    ``b_hr`` and ``b_hz`` only ever add to ``b_xr`` and ``b_xz`` and are folded into
    ``dense_i``'s bias. NNX's GRU has no ``b_hn``, so a non-zero ``b_hn`` is refused
    (it sits inside the reset product and cannot be moved).

    Raises:
      ValueError: if ``params.b_h``'s last ``H`` entries (``b_hn``) are not all zero.
      TypeError: if ``params`` is not :class:`lstmx.GRUParams`.
    """
    if not isinstance(params, GRUParams):
        raise TypeError(f"params must be lstmx.GRUParams, got {type(params).__name__}.")
    input_size, three_h = params.w_x.shape
    H = three_h // 3
    if bool(jnp.any(params.b_h[2 * H :] != 0)):
        raise ValueError(
            "Flax nnx.GRUCell has no recurrent bias b_hn (flax#5594), but params.b_h[2H:] "
            "is not zero; this GRU cannot be expressed as an NNX GRUCell exactly."
        )
    b_x = params.b_x.at[: 2 * H].add(params.b_h[: 2 * H])
    tree = {"dense_i": {"kernel": params.w_x, "bias": b_x}, "dense_h": {"kernel": params.w_h}}
    module = nnx.GRUCell(input_size, H, param_dtype=params.w_x.dtype, rngs=nnx.Rngs(0))
    return _with_params(module, tree)


def _with_params(module: nnx.Module, tree: dict) -> nnx.Module:
    """``module`` with its ``nnx.Param`` values replaced by the arrays of ``tree``."""
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, tree)
    nnx.update(module, state)
    return module
