r"""Regularisers inside the recurrence: zoneout, variational and Semeniuta dropout; keyed, pure.

:func:`regularized` wraps any cell whose state has an ``h`` field (and a ``c`` field for
``zoneout_c``). Randomness reaches a step as an optional ``key`` (a
:class:`lstmx.StepKey`): :func:`lstmx.scan` called with ``key=`` gives step ``t``
``lstmx.step_key(key, t)`` and the cell *trains*, drawing masks; called without a key
the cell runs its deterministic *expectation*. Every other cell is untouched: its step
takes no key and ``scan`` refuses a key for it.

* **Zoneout** (Krueger et al. 2016), separately for ``h`` and ``c``, a fresh mask per step:

  .. math::
      h_t = d^h_t \odot h_{t-1} + (1 - d^h_t) \odot \tilde h_t, \qquad
      d^h_t \sim \mathrm{Bernoulli}(z_h)

  (likewise ``c`` with :math:`z_c`), where :math:`\tilde h_t` is the wrapped cell's new
  state. Expectation: :math:`h_t = z_h h_{t-1} + (1 - z_h) \tilde h_t`. The output is the
  zoned ``h``.
* **Variational dropout** (Gal & Ghahramani 2016): one mask per sequence on the input and
  one on :math:`h_{t-1}` as the step reads it, inverted (kept units scaled by
  :math:`1/(1-p)`), so the expectation is the plain cell:

  .. math::
      \tilde h_t = \mathrm{cell}(x_t \odot m^x / (1-p_x),\; h_{t-1} \odot m^h / (1-p_h)),
      \qquad m \sim \mathrm{Bernoulli}(1 - p)

* **Recurrent dropout on the candidate** (Semeniuta, Severyn & Barth 2016), LSTM cells
  only, a fresh inverted mask per step on the block input where it enters the cell state:
  :math:`c_t = f \odot c_{t-1} + i \odot (m_t \odot g_t) / (1 - p_g)`; so the memory is
  never erased by dropout, only not written. Expectation: the plain cell.

Masks: the per-sequence ones from ``key.sequence`` (input ``fold_in(·, 0)``, recurrent
``fold_in(·, 1)``), the per-step ones from ``key.step`` (``h`` ``fold_in(·, 2)``, ``c``
``fold_in(·, 3)``), each of the full ``[*batch, features]`` shape, so every sequence of a
batch has its own masks. All rates 0 give exactly the wrapped cell.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from lstmx.cells import lstm
from lstmx.cells.base import Cell, Params, State
from lstmx.cells.lstm import LSTMOptions

Array = jax.Array

__all__ = ["RegularizedOptions", "regularized"]


@dataclasses.dataclass(frozen=True)
class RegularizedOptions:
    """What a regularised cell is: the wrapped cell and its rates.

    Attributes:
      cell: the wrapped :class:`lstmx.Cell`.
      zoneout_h: probability of keeping each unit of ``h`` from the previous step, [0, 1].
      zoneout_c: the same for the cell state ``c`` (cells with a ``c`` field only).
      input_dropout: probability of dropping each input feature, once per sequence, [0, 1).
      recurrent_dropout: probability of dropping each unit of ``h_{t-1}`` as the step reads
        it, once per sequence, [0, 1).
      candidate_dropout: probability of dropping each unit of an LSTM's block input ``g``
        where it enters the cell state, afresh every step, [0, 1) (Semeniuta et al.).
    """

    cell: Cell
    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    candidate_dropout: float = 0.0

    stochastic = True
    """A regularised cell has randomness: its step takes an optional ``key``."""

    @property
    def family(self) -> str:
        """The wrapped cell's family: regularisation does not change what a cell is."""
        return getattr(self.cell.options, "family", "custom")

    @property
    def hidden_size(self) -> int:
        return getattr(self.cell.options, "hidden_size", self.cell.output_size)

    def parameter_roles(self) -> dict[str, str]:
        """The wrapped cell's (none for a cell built by hand): the params are its params."""
        inner = self.cell.options
        return inner.parameter_roles() if hasattr(inner, "parameter_roles") else {}

    def matmul_flops(self, input_size: int) -> int:
        """The wrapped cell's: the masks are elementwise."""
        return self.cell.options.matmul_flops(input_size)

    def __post_init__(self):
        if not isinstance(self.cell, Cell):
            raise TypeError(f"regularized needs an lstmx.Cell, got {type(self.cell).__name__}.")
        rates = (
            "zoneout_h",
            "zoneout_c",
            "input_dropout",
            "recurrent_dropout",
            "candidate_dropout",
        )
        for name in rates:
            rate = getattr(self, name)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)):
                raise TypeError(f"{name} must be a number, got {type(rate).__name__} {rate!r}.")
            high, bracket = (1.0, "]") if name.startswith("zoneout") else (1.0 - 1e-12, ")")
            if not 0.0 <= rate <= high:
                raise ValueError(f"{name} must lie in [0, 1{bracket}, got {rate}.")
        if self.candidate_dropout and not isinstance(self.cell.options, LSTMOptions):
            raise ValueError(
                "candidate_dropout acts on an LSTM's block input g; the wrapped cell is a "
                f"{type(self.cell.options).__name__}, not an LSTM."
            )


def regularized(
    cell: Cell,
    *,
    zoneout_h: float = 0.0,
    zoneout_c: float = 0.0,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    candidate_dropout: float = 0.0,
) -> Cell:
    """``cell`` with zoneout and/or variational dropout (equations in the module docstring).

    The params and state are the wrapped cell's. ``step(params, state, x, key=None)``:
    with a :class:`lstmx.StepKey` it draws masks, without one it runs the expectation.
    When both zoneout rates are 0 the expectation is the wrapped cell itself, so
    :func:`lstmx.scan` without a key keeps the wrapped cell's fast path.

    Raises:
      ValueError: a rate outside its range, ``zoneout_c`` for a cell whose state has no
        ``c`` field (or a rate on ``h`` without ``h``), or ``candidate_dropout`` for a cell
        that is not an LSTM.
    """
    options = RegularizedOptions(
        cell, zoneout_h, zoneout_c, input_dropout, recurrent_dropout, candidate_dropout
    )
    fields = getattr(jax.eval_shape(lambda: cell.initial_state(())), "_fields", ())
    for rate, field in ((zoneout_h, "h"), (zoneout_c, "c"), (recurrent_dropout, "h")):
        if rate and field not in fields:
            raise ValueError(
                f"this cell's state has no {field!r} field (fields: {fields}); "
                f"a rate acting on {field} cannot apply."
            )
    plain = zoneout_h == 0 and zoneout_c == 0

    def step(params: Params, state: State, x: Array, key: Any = None) -> tuple[State, Array]:
        new_state, y, _ = gated_step(options, params, state, x, key)
        return new_state, y

    return Cell(
        init=cell.init,
        initial_state=cell.initial_state,
        step=step,
        output_size=cell.output_size,
        options=options,
        fast_scan=cell.fast_scan if plain else None,
        step_with_gates=partial(gated_step, options),
    )


def gated_step(
    options: RegularizedOptions, params: Params, state: State, x: Array, key: Any = None
) -> tuple[State, Array, dict[str, Array]]:
    """One regularised step; the gates are the wrapped cell's ``step_with_gates``.

    A wrapped cell without one (built by hand) runs its ``step`` and reports no gates.
    """
    if key is not None and not (hasattr(key, "sequence") and hasattr(key, "step")):
        raise TypeError(
            "key must be an lstmx.StepKey (lstmx.step_key(key, t)), got "
            f"{type(key).__name__}; lstmx.scan(..., key=key) builds them."
        )
    read_state, read_x = state, x
    if key is not None:
        read_x = x * _keep_mask(key.sequence, 0, options.input_dropout, x)
        if options.recurrent_dropout:
            mask = _keep_mask(key.sequence, 1, options.recurrent_dropout, state.h)
            read_state = state._replace(h=state.h * mask)
    if key is not None and options.candidate_dropout:
        mask = _keep_mask(key.step, 4, options.candidate_dropout, state.c)
        new_state, y, gates = lstm.gated_step(
            options.cell.options, params, read_state, read_x, candidate_mask=mask
        )
    elif options.cell.step_with_gates is None:
        new_state, y = options.cell.step(params, read_state, read_x)
        gates = {}
    else:
        new_state, y, gates = options.cell.step_with_gates(params, read_state, read_x)
    for index, field, rate in ((2, "h", options.zoneout_h), (3, "c", options.zoneout_c)):
        if rate:
            old, new = getattr(state, field), getattr(new_state, field)
            if key is None:
                zoned = rate * old + (1.0 - rate) * new
            else:
                keep_old = jax.random.bernoulli(
                    jax.random.fold_in(key.step, index), rate, old.shape
                )
                zoned = jnp.where(keep_old, old, new)
            new_state = new_state._replace(**{field: zoned})
    if options.zoneout_h:
        y = new_state.h
    return new_state, y, gates


def _keep_mask(key: Array, index: int, rate: float, like: Array) -> Array:
    """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
    if not rate:
        return jnp.ones((), like.dtype)
    keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1.0 - rate, like.shape)
    return keep.astype(like.dtype) / jnp.asarray(1.0 - rate, like.dtype)
