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
None (no peepholes, no gate recurrence) have no row.

A :class:`lstmx.Cell` carries only functions, not the options it was built with, so the
roles come from the params' type and shapes. For an LSTM whose gate blocks cannot be told
apart by shape (3 blocks: CIFG, NIG, NFG and NOG all have 3), the role lists the
possibilities; pass ``variant=`` (and the factory's options, as for :func:`lstmx.variant`)
to name the blocks exactly.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from lstmx import _checks, cells
from lstmx.cells import GRUParams, LSTMParams, RNNParams
from lstmx.sequence import Bidirectional, BidirectionalParams, StackParams

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


def describe(cell: Any, input_size: int, variant: str | None = None, **options: Any) -> Description:
    """Lists every parameter array of ``cell`` for ``input_size`` inputs, with the total.

    Args:
      cell: an :class:`lstmx.Cell` (a single cell or a :func:`lstmx.stack`) or an
        :class:`lstmx.Bidirectional`.
      input_size: ``I``, the number of input features.
      variant: optional name from :func:`lstmx.variant_names` that ``cell`` was built as;
        with it the roles name the LSTM gate blocks exactly (and the GRU's reset
        convention). It applies to every LSTM (or GRU) layer of a stack.
      **options: the factory's keyword options applied over the variant's, as in
        :func:`lstmx.variant` (e.g. ``coupled=True``); only together with ``variant``.

    Returns:
      A :class:`Description`; ``print`` it for the table, or read ``rows`` and ``total``.

    Raises:
      TypeError: ``cell`` is not a cell, or an option is not one of the factory's.
      ValueError: ``input_size`` is not a positive int, ``variant`` is unknown, or the
        params' shapes contradict ``variant``.
    """
    if not isinstance(cell, (cells.Cell, Bidirectional)):
        raise TypeError(
            f"cell must be an lstmx.Cell or lstmx.Bidirectional, got {type(cell).__name__}."
        )
    input_size = _checks.positive_int("input_size", input_size)
    if variant is None and options:
        raise TypeError(f"options {sorted(options)} need a variant name to apply to.")
    layout = None if variant is None else _layout(variant, options)
    shapes = jax.eval_shape(lambda key: cell.init(key, input_size), jax.random.key(0))
    if layout is not None and layout.kind not in _kinds(shapes):
        kind = layout.kind.upper()
        raise ValueError(
            f"variant {variant!r} names {kind} params but the cell has no {kind} layer."
        )
    rows = tuple(_rows(shapes, "", layout))
    return Description(rows, sum(row.count for row in rows))


# --------------------------------------------------------------------------------------
# Gate layouts (shared with lstmx.diagnostics).
# --------------------------------------------------------------------------------------

_LSTM_GATE_ORDER = ("i", "f", "g", "o")
_GRU_GATE_ORDER = ("r", "z", "n")


class _Layout(NamedTuple):
    """The forward-pass structure of a named variant with options.

    Attributes:
      kind: "lstm", "gru" or "rnn".
      options: every keyword option of the factory, defaults filled in.
      blocks: gate blocks of the kernels, in order (LSTM: i, f, g, o minus absent ones;
        GRU: r, z, n; RNN: none).
      sigmoid_gates: the LSTM's sigmoid gates with weights, in the order i, f, o (the rows
        of ``p`` and the blocks of ``w_gates``); GRU: r, z.
    """

    kind: str
    options: dict
    blocks: tuple[str, ...]
    sigmoid_gates: tuple[str, ...]


def _layout(variant: str, overrides: Mapping[str, Any]) -> _Layout:
    """Gate layout of ``lstmx.variant(variant, H, **overrides)``, without building it."""
    entry = cells._lookup(variant)  # ValueError listing the valid names
    parameters = inspect.signature(entry.factory).parameters
    defaults = {
        name: p.default
        for name, p in parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY or name == "activation"
    }
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise TypeError(
            f"variant {variant!r} ({entry.factory.__name__}) does not take {unknown}; "
            f"its options are {sorted(defaults)}."
        )
    options = {**defaults, **entry.options, **overrides}
    cells.variant(variant, 1, **overrides)  # refuses impossible combinations, as the factory
    if entry.factory is cells.gru:
        return _Layout("gru", options, _GRU_GATE_ORDER, ("r", "z"))
    if entry.factory is cells.rnn:
        return _Layout("rnn", options, (), ())
    blocks = cells.lstm_gate_blocks(
        options["coupled"], options["input_gate"], options["forget_gate"], options["output_gate"]
    )
    return _Layout("lstm", options, blocks, tuple(name for name in blocks if name != "g"))


def _lstm_blocks_from_shapes(num_blocks: int) -> list[tuple[str, ...]]:
    """Every i/f/g/o block layout with ``num_blocks`` blocks (g is always present)."""
    layouts = []
    for sigmoid_gates in itertools.combinations(("i", "f", "o"), num_blocks - 1):
        layouts.append(tuple(n for n in _LSTM_GATE_ORDER if n == "g" or n in sigmoid_gates))
    return layouts


# --------------------------------------------------------------------------------------
# Rows.
# --------------------------------------------------------------------------------------


def _rows(params: Any, prefix: str, layout: _Layout | None):
    if isinstance(params, StackParams):
        for index, layer in enumerate(params.layers):
            yield from _rows(layer, f"{prefix}layers[{index}].", layout)
    elif isinstance(params, BidirectionalParams):
        yield from _rows(params.forward, f"{prefix}forward.", layout)
        yield from _rows(params.backward, f"{prefix}backward.", layout)
    elif isinstance(params, LSTMParams):
        yield from _named(params, prefix, _lstm_roles(params, layout, prefix))
    elif isinstance(params, GRUParams):
        yield from _named(params, prefix, _gru_roles(params, layout))
    elif isinstance(params, RNNParams):
        roles = {
            "w_x": "input kernel W_x: x_t → pre-activation",
            "w_h": "recurrent kernel W_h: h_{t-1} → pre-activation",
            "b": "bias b",
        }
        yield from _named(params, prefix, roles)
    else:  # a params type this module does not know: names and shapes only
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


def _kinds(params: Any) -> set[str]:
    """The single-cell kinds ("lstm", "gru", "rnn") among the layers of ``params``."""
    if isinstance(params, StackParams):
        return set().union(*(_kinds(layer) for layer in params.layers))
    if isinstance(params, BidirectionalParams):
        return _kinds(params.forward) | _kinds(params.backward)
    kinds = {LSTMParams: "lstm", GRUParams: "gru", RNNParams: "rnn"}
    return {kinds[type(params)]} if type(params) in kinds else set()


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


def _lstm_roles(params: LSTMParams, layout: _Layout | None, prefix: str) -> dict[str, str]:
    H = params.w_h.shape[0]
    G = params.w_h.shape[1] // H if H else 0
    note = ""
    if layout is not None and layout.kind == "lstm":
        blocks = layout.blocks
        if len(blocks) != G:
            raise ValueError(
                f"{prefix}w_h has {G} gate blocks but that variant has {len(blocks)} "
                f"{_blocks_text(blocks)}; was the cell built with other options?"
            )
        note = _missing_gates_note(layout)
        for field, option in (("p", "peephole"), ("w_gates", "full_gate_recurrence")):
            if (getattr(params, field) is not None) != bool(layout.options[option]):
                raise ValueError(
                    f"{prefix}{field} is {'absent' if getattr(params, field) is None else 'set'}"
                    f" but that variant has {option}={layout.options[option]}."
                )
    else:
        candidates = _lstm_blocks_from_shapes(G) if 1 <= G <= 4 else []
        blocks = candidates[0] if len(candidates) == 1 else None
    if blocks is not None:
        gates = f"gate blocks {_blocks_text(blocks)}"
        kernel = f"{gates}, {H} columns each{note}"
        sigmoid_gates = tuple(n for n in blocks if n != "g")
    else:
        options = " or ".join(_blocks_text(c) for c in candidates)
        gates = f"{G} gate blocks (see {prefix}w_x)"
        kernel = f"{G} gate blocks, {H} columns each: {options} (pass variant= to say which)"
        sigmoid_gates = None
    k = params.p.shape[0] if params.p is not None else None
    if k is None and params.w_gates is not None:
        k = params.w_gates.shape[0] // H
    if sigmoid_gates is not None and k in (None, len(sigmoid_gates)):
        gate_rows = _blocks_text(sigmoid_gates)
        previous = [n for n in sigmoid_gates if n != "o"]
        seen = [f"{', '.join(previous)} see{'s' * (len(previous) == 1)} c_{{t-1}}"] * bool(previous)
        seen += ["o sees the new c_t"] * ("o" in sigmoid_gates)
        peephole = f"; {', '.join(seen)}" if seen else ""
    else:
        gate_rows = f"({k} of i, f, o, in that order)"
        peephole = "; i, f see c_{t-1}, o sees the new c_t"
    return {
        "w_x": f"input kernel W_x: x_t → {kernel}",
        "w_h": f"recurrent kernel W_h: h_{{t-1}} → {gates}",
        "b": f"bias b of {gates}",
        "p": f"diagonal peephole weights, one row per sigmoid gate {gate_rows}{peephole}",
        "w_gates": (
            f"full gate recurrence (Greff FGR): previous activations of {gate_rows} → "
            f"their pre-activations, {k}×{k} blocks of {H}×{H}"
        ),
    }


def _missing_gates_note(layout: _Layout) -> str:
    options = layout.options
    notes = []
    if options["coupled"]:
        notes.append("i = 1 − f (coupled)")
    elif not options["input_gate"]:
        notes.append("i = 1")
    if not options["forget_gate"]:
        notes.append("f = 1")
    if not options["output_gate"]:
        notes.append("o = 1")
    if not options["input_activation"]:
        notes.append("g = z_g (no tanh)")
    if not options["output_activation"]:
        notes.append("h = o ⊙ c (no tanh)")
    return f"; {', '.join(notes)}" if notes else ""


def _gru_roles(params: GRUParams, layout: _Layout | None) -> dict[str, str]:
    H = params.w_h.shape[0]
    reset = ""
    if layout is not None and layout.kind == "gru":
        if layout.options["reset_after"]:
            reset = "; n block reset after the matmul: r ⊙ (h W_hn + b_hn)"
        else:
            reset = "; n block reset before the matmul: (r ⊙ h) W_hn (Cho et al.)"
    return {
        "w_x": f"input kernel W_x: x_t → gate blocks [r z n], {H} columns each",
        "w_h": f"recurrent kernel W_h: h_{{t-1}} → gate blocks [r z n]{reset}",
        "b_x": "input bias b_x of gate blocks [r z n]",
        "b_h": "recurrent bias b_h of gate blocks [r z n], apart from b_x because of the reset",
    }
