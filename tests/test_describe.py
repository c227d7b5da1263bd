"""lstmx.describe: parameter tables, counts for every variant, roles read from the cell.

Bad input to describe is in tests/test_bad_input.py.
"""

import math

import jax
import pytest

import lstmx
from lstmx.describe import Description, ParameterRow, describe

# Parameter counts for hidden size H=3 and I=2 inputs, worked out by hand from the
# layouts in the README's "The cells": LSTM G*H*(I+H+1) + k*H (peepholes) + (k*H)^2 (FGR);
# GRU 3H*(I+H+2); RNN H*(I+H+1). Newer cells' modules hold their own counts.
HAND_COUNTS = {
    "rnn": 3 * (2 + 3 + 1),  # 18
    "lstm": 12 * (2 + 3 + 1),  # 72
    "peephole": 72 + 3 * 3,  # 81
    "cifg": 9 * (2 + 3 + 1) + 2 * 3,  # 60: blocks f g o, peepholes f o
    "gru": 9 * (2 + 3 + 2),  # 63
    "gru_cho": 63,
    "nig": 60,
    "nfg": 60,
    "nog": 60,
    "niaf": 81,
    "noaf": 81,
    "np": 72,
    "fgr": 81 + 9 * 9,  # 162
}


def test_hand_counts_cover_the_documented_variants():
    assert set(HAND_COUNTS) <= set(lstmx.variant_names())


def test_lstm_2_on_2_inputs_is_the_issue_example():
    description = describe(lstmx.lstm(2), 2)
    assert description.rows == (
        ParameterRow("w_x", (2, 8), description.rows[0].role, 16),
        ParameterRow("w_h", (2, 8), description.rows[1].role, 16),
        ParameterRow("b", (8,), description.rows[2].role, 8),
    )
    assert description.total == 40
    assert "input kernel" in description.rows[0].role
    assert "recurrent kernel" in description.rows[1].role
    assert all("[i f g o]" in row.role for row in description.rows)
    table = str(description)
    assert table == description.table()
    lines = table.splitlines()
    assert lines[0].split() == ["parameter", "shape", "count", "role"]
    assert lines[1].split()[:3] == ["w_x", "2×8", "16"]
    assert lines[2].split()[:3] == ["w_h", "2×8", "16"]
    assert lines[3].split()[:3] == ["b", "8", "8"]
    assert lines[4].split() == ["total", "40"]
    # Columns are aligned: every count ends under the end of the header's "count".
    edge = lines[0].index("count") + len("count")
    for line, count in zip(lines[1:], ["16", "16", "8", "40"]):
        assert line[edge - len(count) : edge + 1] == count + (" " if line[edge:] else "")


@pytest.mark.parametrize("name", list(HAND_COUNTS))
def test_counts_for_every_variant(name):
    cell = lstmx.variant(name, 3)
    description = describe(cell, 2)
    assert description.total == HAND_COUNTS[name]
    assert description.total == sum(row.count for row in description.rows)
    params = cell.init(jax.random.key(0), 2)
    leaves = jax.tree_util.tree_leaves(params)
    assert [row.shape for row in description.rows] == [leaf.shape for leaf in leaves]
    assert all(row.count == math.prod(row.shape) for row in description.rows)
    assert all(row.role for row in description.rows)


@pytest.mark.parametrize(
    "name, blocks, note",
    [
        ("lstm", "[i f g o]", None),
        ("cifg", "[f g o]", "i = 1 − f (coupled)"),
        ("nig", "[f g o]", "; i = 1"),
        ("nfg", "[i g o]", "; f = 1"),
        ("nog", "[i f g]", "; o = 1"),
        ("niaf", "[i f g o]", "g = z_g (no tanh)"),
        ("noaf", "[i f g o]", "h = o ⊙ c (no tanh)"),
        ("gru", "[r z n]", None),
    ],
)
def test_the_cell_names_its_own_gate_blocks(name, blocks, note):
    """The roles come from ``cell.options``: cifg and nig share the blocks [f g o] and are
    told apart, with no variant name given."""
    rows = {row.name: row for row in describe(lstmx.variant(name, 3), 2).rows}
    assert blocks in rows["w_x"].role and blocks in rows["w_h"].role
    if note is None:
        assert ";" not in rows["w_x"].role
    else:
        assert rows["w_x"].role.endswith(note) or note in rows["w_x"].role


def test_roles_of_the_optional_lstm_arrays():
    rows = {row.name: row for row in describe(lstmx.variant("fgr", 3), 2).rows}
    assert rows["p"].shape == (3, 3) and "peephole" in rows["p"].role
    assert "[i f o]" in rows["p"].role
    assert rows["w_gates"].shape == (9, 9) and "FGR" in rows["w_gates"].role
    assert "3×3 blocks of 3×3" in rows["w_gates"].role
    cifg = {row.name: row for row in describe(lstmx.variant("cifg", 3), 2).rows}
    assert "[f o]" in cifg["p"].role and "i = 1 − f" in cifg["w_x"].role
    nog = {row.name: row for row in describe(lstmx.variant("nog", 3), 2).rows}
    assert "[i f]" in nog["p"].role and "new c_t" not in nog["p"].role


def test_gru_reset_convention_is_read_from_the_cell():
    after = {r.name: r.role for r in describe(lstmx.gru(3), 2).rows}
    before = {r.name: r.role for r in describe(lstmx.gru(3, reset_after=False), 2).rows}
    assert "r ⊙ (h W_hn + b_hn)" in after["w_h"]
    assert "(r ⊙ h) W_hn" in before["w_h"]


def test_any_combination_of_options_is_described():
    cell = lstmx.lstm(3, input_gate=False, output_gate=False)
    description = describe(cell, 2)
    assert description.total == 6 * (2 + 3 + 1)
    assert "[f g]" in description.rows[0].role and "i = 1, o = 1" in description.rows[0].role


def test_stack_and_bidirectional_rows_are_field_paths():
    description = describe(lstmx.stack([lstmx.lstm(3), lstmx.gru(4)]), 2)
    assert [row.name for row in description.rows] == [
        "layers[0].w_x",
        "layers[0].w_h",
        "layers[0].b",
        "layers[1].w_x",
        "layers[1].w_h",
        "layers[1].b_x",
        "layers[1].b_h",
    ]
    assert description.rows[3].shape == (3, 12)  # the GRU reads the LSTM's 3 outputs
    assert description.total == 72 + 12 * (3 + 4 + 2)
    bidirectional = describe(lstmx.bidirectional(lstmx.rnn(3), lstmx.lstm(2)), 2)
    assert [row.name for row in bidirectional.rows][:4] == [
        "forward.w_x",
        "forward.w_h",
        "forward.b",
        "backward.w_x",
    ]
    assert bidirectional.total == 18 + 40


def test_markdown_table():
    markdown = describe(lstmx.lstm(2), 2).to_markdown().splitlines()
    assert markdown[0] == "| parameter | shape | count | role |"
    assert markdown[2].startswith("| `w_x` | 2×8 | 16 | input kernel")
    assert markdown[-1] == "| **total** | | **40** | |"
    assert len(markdown) == 6


def test_description_is_data():
    description = describe(lstmx.rnn(4), 1)
    assert isinstance(description, Description)
    assert description._asdict()["total"] == 4 * (1 + 4 + 1)
    assert [row._asdict()["name"] for row in description.rows] == ["w_x", "w_h", "b"]


def test_no_arrays_are_computed(monkeypatch):
    """Shapes come from jax.eval_shape: init runs on abstract values only."""
    seen = []
    cell = lstmx.lstm(2)

    def init(key, input_size, dtype=jax.numpy.float32):
        params = cell.init(key, input_size, dtype)
        seen.extend(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(params))
        return params

    assert describe(cell._replace(init=init), 2).total == 40
    assert seen and all(seen)


def test_params_of_an_unknown_type_get_path_names_and_no_role():
    def init(key, input_size, dtype=jax.numpy.float32):
        zeros = jax.numpy.zeros
        return {"a": zeros((input_size, 2), dtype), "b": [zeros((3,), dtype), zeros((), dtype)]}

    custom = lstmx.rnn(2)._replace(init=init)
    description = describe(lstmx.stack([lstmx.rnn(4), custom]), 3)
    rows = [(row.name, row.shape, row.role, row.count) for row in description.rows[3:]]
    assert rows == [
        ("layers[1].a", (4, 2), "", 8),
        ("layers[1].b[0]", (3,), "", 3),
        ("layers[1].b[1]", (), "", 1),
    ]
    assert description.total == 4 * (3 + 4 + 1) + 12
    assert "scalar" in str(description)
