r"""What a cell's parameters are: a table of every array, its shape, role and count.

::

    >>> print(lstmx.describe(lstmx.lstm(2), input_size=2))
    parameter  shape  count  role
    w_x        2×8       16  input kernel W_x: x_t → gate blocks [i f g o], 2 columns each
    w_h        2×8       16  recurrent kernel W_h: h_{t-1} → gate blocks [i f g o]
    b          8          8  bias b of gate blocks [i f g o]
    total                40

Shapes come from ``jax.eval_shape`` of the cell's ``init``, so nothing is computed or
allocated. Names are field paths into the params pytree (``w_x``, ``p``, ``w_gates``,
``layers[1].w_h`` for a stack, ``forward.b`` for a bidirectional layer); fields that are
None (no peepholes, no gate recurrence) have no row. The roles come from the cell's own
options record (``cell.options``); a cell built by hand, without one, gets names and
shapes only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from lstmx import _checks
from lstmx.cells import (
    Cell,
    GRUOptions,
    IndRNNOptions,
    LSTMOptions,
    MGUOptions,
    MinGRUOptions,
    MinLSTMOptions,
    RegularizedOptions,
    RNNOptions,
    SLSTMOptions,
)
from lstmx.sequence import Bidirectional, StackOptions

__all__ = ["Description", "ParameterRow", "describe"]


class ParameterRow(NamedTuple):
    """One parameter array.

    Attributes:
      name: field path into the params pytree, e.g. ``"w_x"`` or ``"layers[1].w_h"``.
      shape: the array's shape.
      role: what the array does in the cell's equations (empty for unknown params types).
      count: number of scalars, the product of ``shape``.
    """

    name: str
    shape: tuple[int, ...]
    role: str
    count: int


class Description(NamedTuple):
    """Every parameter array of a cell and their total; ``str()`` gives the text table.

    Attributes:
      rows: one :class:`ParameterRow` per array, in pytree order.
      total: the number of trainable scalars, the sum of the rows' counts.
    """

    rows: tuple[ParameterRow, ...]
    total: int

    def table(self) -> str:
        """An aligned plain-text table, one line per array and a total line."""
        header = ("parameter", "shape", "count", "role")
        lines = [(r.name, _format_shape(r.shape), f"{r.count:,}", r.role) for r in self.rows]
        lines.append(("total", "", f"{self.total:,}", ""))
        widths = [max(len(line[i]) for line in [header, *lines]) for i in range(3)]

        def render(line: tuple[str, str, str, str]) -> str:
            name, shape, count, role = line
            text = f"{name:<{widths[0]}}  {shape:<{widths[1]}}  {count:>{widths[2]}}  {role}"
            return text.rstrip()

        return "\n".join(render(line) for line in [header, *lines])

    def to_markdown(self) -> str:
        """A Markdown table with the same columns and a bold total row."""
        lines = ["| parameter | shape | count | role |", "|---|---|--:|---|"]
        for row in self.rows:
            role = row.role.replace("|", r"\|")
            lines.append(f"| `{row.name}` | {_format_shape(row.shape)} | {row.count:,} | {role} |")
        lines.append(f"| **total** | | **{self.total:,}** | |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def describe(cell: Cell | Bidirectional, input_size: int) -> Description:
    """Lists every parameter array of ``cell`` for ``input_size`` inputs, with the total.

    Args:
      cell: an :class:`lstmx.Cell` (a single cell or a :func:`lstmx.stack`) or an
        :class:`lstmx.Bidirectional` layer.
      input_size: ``I``, the number of input features.

    Returns:
      A :class:`Description`; ``print`` it for the table, or read ``rows`` and ``total``.

    Raises:
      TypeError: ``cell`` is not a cell.
      ValueError: ``input_size`` is not a positive int.
    """
    if not isinstance(cell, (Cell, Bidirectional)):
        raise TypeError(
            f"cell must be an lstmx.Cell or lstmx.Bidirectional, got {type(cell).__name__}."
        )
    input_size = _checks.positive_int("input_size", input_size)
    shapes = jax.eval_shape(lambda key: cell.init(key, input_size), jax.random.key(0))
    if isinstance(cell, Bidirectional):
        rows = (
            *_rows(cell.forward, shapes.forward, "forward."),
            *_rows(cell.backward, shapes.backward, "backward."),
        )
    else:
        rows = tuple(_rows(cell, shapes, ""))
    return Description(tuple(rows), sum(row.count for row in rows))


def _rows(cell: Cell, params: Any, prefix: str):
    options = cell.options
    if isinstance(options, StackOptions):
        for index, (layer, layer_params) in enumerate(zip(options.layers, params.layers)):
            yield from _rows(layer, layer_params, f"{prefix}layers[{index}].")
        return
    if isinstance(options, RegularizedOptions):  # the wrapped cell's params, unchanged
        yield from _rows(options.cell, params, prefix)
        return
    roles_of = {
        LSTMOptions: _lstm_roles,
        GRUOptions: _gru_roles,
        RNNOptions: _rnn_roles,
        MGUOptions: _mgu_roles,
        IndRNNOptions: _indrnn_roles,
        MinGRUOptions: _min_gru_roles,
        MinLSTMOptions: _min_lstm_roles,
        SLSTMOptions: _slstm_roles,
    }
    roles = roles_of[type(options)](options) if type(options) in roles_of else {}
    if hasattr(params, "_fields"):
        yield from _named(params, prefix, roles)
    else:  # a params pytree this module does not know: names and shapes only
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            yield _row(_path_name(prefix, path), leaf, "")


def _path_name(prefix: str, path: tuple) -> str:
    """``layers[0].w``-style name of a pytree path: fields and dict keys dotted, indices
    bracketed."""
    name = prefix.rstrip(".")
    for key in path:
        if isinstance(key, jax.tree_util.SequenceKey):
            name += f"[{key.idx}]"
        else:
            part = (
                key.name if isinstance(key, jax.tree_util.GetAttrKey) else getattr(key, "key", key)
            )
            name += f".{part}" if name else str(part)
    return name or "params"


def _named(params: NamedTuple, prefix: str, roles: Mapping[str, str]):
    for field in params._fields:
        leaf = getattr(params, field)
        if leaf is not None:
            yield _row(prefix + field, leaf, roles.get(field, ""))


def _row(name: str, leaf: Any, role: str) -> ParameterRow:
    shape = tuple(int(d) for d in leaf.shape)
    return ParameterRow(name, shape, role, math.prod(shape))


def _format_shape(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape) if shape else "scalar"


def _blocks_text(blocks: tuple[str, ...]) -> str:
    return "[" + " ".join(blocks) + "]"


def _lstm_roles(options: LSTMOptions) -> dict[str, str]:
    H, blocks, sigmoid_gates = options.hidden_size, options.blocks, options.sigmoid_gates
    k = len(sigmoid_gates)
    gates = f"gate blocks {_blocks_text(blocks)}"
    previous = [name for name in sigmoid_gates if name != "o"]
    seen = [f"{', '.join(previous)} see{'s' * (len(previous) == 1)} c_{{t-1}}"] * bool(previous)
    seen += ["o sees the new c_t"] * ("o" in sigmoid_gates)
    peephole = f"; {', '.join(seen)}" if seen else ""
    gate_rows = _blocks_text(sigmoid_gates)
    return {
        "w_x": f"input kernel W_x: x_t → {gates}, {H} columns each{_missing_gates_note(options)}",
        "w_h": f"recurrent kernel W_h: h_{{t-1}} → {gates}",
        "b": f"bias b of {gates}" + ("; holds the LN shifts β1 + β2" * options.layer_norm),
        "p": f"diagonal peephole weights, one row per sigmoid gate {gate_rows}{peephole}",
        "w_gates": (
            f"full gate recurrence (Greff FGR): previous activations of {gate_rows} → "
            f"their pre-activations, {k}×{k} blocks of {H}×{H}"
        ),
        "w_hr": f"projection W_hr (LSTMP): o ⊙ tanh(c_t) [{H}] → h_t [{options.proj_size}]",
        "ln_h_gain": f"layer-norm gain α1 of h_{{t-1}} W_h, over all {gates}",
        "ln_x_gain": f"layer-norm gain α2 of x_t W_x, over all {gates}",
        "ln_c_gain": "layer-norm gain α3 of c_t in h_t = o ⊙ tanh(LN(c_t))",
        "ln_c_shift": "layer-norm shift β3 of c_t in h_t = o ⊙ tanh(LN(c_t))",
    }


def _missing_gates_note(options: LSTMOptions) -> str:
    notes = []
    if options.coupled:
        notes.append("i = 1 − f (coupled)")
    elif not options.input_gate:
        notes.append("i = 1")
    if not options.forget_gate:
        notes.append("f = 1")
    if not options.output_gate:
        notes.append("o = 1")
    if not options.input_activation:
        notes.append("g = z_g (no tanh)")
    if not options.output_activation:
        notes.append("h = o ⊙ c (no tanh)")
    return f"; {', '.join(notes)}" if notes else ""


def _kernel_roles(blocks: str, H: int, recurrent_note: str) -> dict[str, str]:
    """The roles of ``w_x`` and ``w_h`` in a cell whose kernels both feed ``blocks``."""
    return {
        "w_x": f"input kernel W_x: x_t → {blocks}, {H} columns each",
        "w_h": f"recurrent kernel W_h: h_{{t-1}} → {blocks}{recurrent_note}",
    }


def _gru_roles(options: GRUOptions) -> dict[str, str]:
    if options.reset_after:
        reset = "; n block reset after the matmul: r ⊙ (h W_hn + b_hn)"
    else:
        reset = "; n block reset before the matmul: (r ⊙ h) W_hn (Cho et al.)"
    return {
        **_kernel_roles("gate blocks [r z n]", options.hidden_size, reset),
        "b_x": "input bias b_x of gate blocks [r z n]",
        "b_h": "recurrent bias b_h of gate blocks [r z n], apart from b_x because of the reset",
    }


def _rnn_roles(options: RNNOptions) -> dict[str, str]:
    return {
        "w_x": "input kernel W_x: x_t → pre-activation",
        "w_h": "recurrent kernel W_h: h_{t-1} → pre-activation",
        "b": "bias b",
    }


def _mgu_roles(options: MGUOptions) -> dict[str, str]:
    gated = "; n block gated after the matmul: f ⊙ (h W_hn + b_hn)" if options.reset_gate else ""
    return {
        **_kernel_roles("blocks [f n]", options.hidden_size, gated),
        "b_x": "input bias b_x of blocks [f n] (b_f starts at 1)",
        "b_hn": "recurrent bias b_hn of the candidate n, inside the gate product",
    }


def _indrnn_roles(options: IndRNNOptions) -> dict[str, str]:
    bound = options.recurrent_max
    clip = f", clipped to |u| ≤ {bound:g} in the forward pass" if bound is not None else ""
    return {
        "w_x": "input kernel W_x: x_t → pre-activation",
        "u": f"recurrent weights u: u ⊙ h_{{t-1}}, one per unit{clip}",
        "b": "bias b",
    }


def _min_gru_roles(options: MinGRUOptions) -> dict[str, str]:
    H = options.hidden_size
    return {
        "w_x": f"input kernel W_x: x_t → blocks [z h̃], {H} columns each (no recurrent kernel)",
        "b": "bias b of blocks [z h̃]",
    }


def _min_lstm_roles(options: MinLSTMOptions) -> dict[str, str]:
    H = options.hidden_size
    return {
        "w_x": f"input kernel W_x: x_t → blocks [f i h̃], {H} columns each (no recurrent kernel)",
        "b": "bias b of blocks [f i h̃]",
    }


def _slstm_roles(options: SLSTMOptions) -> dict[str, str]:
    H, K, d = options.hidden_size, options.num_heads, options.head_size
    return {
        "w_x": f"input kernel W_x: x_t → gate blocks [i f z o], {H} columns each",
        "w_h": (
            f"block-diagonal recurrent kernel R, {K} head blocks of {d}×{4 * d}: "
            f"head k's h_{{t-1}} → its columns of [i f z o]"
        ),
        "b": f"bias b of gate blocks [i f z o] (forget gate {options.forget_gate})",
    }
