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
options record (``cell.options.parameter_roles()``); a cell built by hand, without one,
gets names and shapes only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax

from lstmx import _checks
from lstmx.cells import Cell
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
    # Every lstmx options record says its params' roles (a regularised cell: the wrapped
    # cell's); a cell built by hand may have none.
    roles = options.parameter_roles() if hasattr(options, "parameter_roles") else {}
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
