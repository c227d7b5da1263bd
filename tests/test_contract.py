"""The cell contract, held by every cell: one table, the same checks for each row.

As optax's ``alias_test.py`` runs every optimiser through the same checks, every cell of
:data:`CASES` (each named variant, a stack, chrono inits, bfloat16 params and inputs) is
held to the protocol of :class:`lstmx.Cell`:

* ``init``: every params leaf has the requested dtype and the documented shape; a
  half-precision init is the float32 init rounded;
* ``initial_state(batch_shape)``: zeros with batch shape ``()``, ``(3,)``, ``(2, 3)``;
* ``lstmx.scan`` equals a Python loop over ``step`` (forward, ``reverse=True``,
  ``lengths``, both), and equals ``lstmx.scan_stepwise`` in values and gradients;
* jit equals eager; ``vmap`` equals extra leading batch axes; ``unroll=2`` equals
  ``unroll=1``; gradients are finite over 200 steps.

Every name of ``lstmx.variant_names()`` gets its row automatically; any other cell (other
options, another dtype) is one row of :data:`CASES`. Each row's scans are compiled once
(one program per row, cached by :func:`_runs`; rows with equal options share it) and
read by several tests. Helpers shared with the other test files are in tests/_helpers.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _helpers import BF16, F32, Tol, python_loop, random_like, random_params, random_state

import lstmx

try:  # `python -m pytest` from the repository root
    from tests import reference as ref
except ImportError:  # `pytest` with tests/ on sys.path
    import reference as ref

B, T, I, H = 3, 6, 3, 4  # batch, steps, inputs, hidden units
LENGTHS = np.array([T, 3, 0])  # a full, a shorter and an empty sequence
LONG_T = 200


class CellCase(NamedTuple):
    """One row of the contract table.

    Attributes:
      name: the test id.
      make_cell: builds the cell (``H`` units, reading ``I`` inputs).
      dtype: the dtype of params, state and inputs.
      tol: tolerance of every comparison of two computations of the same maths.
      shapes: ``shapes(input_size) -> [shape, ...]``, the documented shape of every params
        leaf in pytree order; None to check dtypes only.
    """

    name: str
    make_cell: Callable[[], lstmx.Cell]
    dtype: Any = jnp.float32
    tol: Tol = F32
    shapes: Callable[[int], list[tuple[int, ...]]] | None = None


def _documented_shapes(name: str, hidden_size: int = H) -> Callable[[int], list] | None:
    """The params shapes of a named variant, from tests/reference.py (not from lstmx);
    None for a variant the reference does not know."""
    spec = ref.VARIANT_SPECS.get(name)
    if spec is None:
        return None

    def shapes(input_size: int) -> list:
        table = ref.param_shapes(spec, input_size, hidden_size)
        return [shape for shape in table.values() if shape is not None]

    return shapes


def _stack_shapes(input_size: int) -> list:
    return _documented_shapes("lstm")(input_size) + _documented_shapes("gru_cho", 3)(H)


CASES = [
    *(
        CellCase(name, functools.partial(lstmx.variant, name, H), shapes=_documented_shapes(name))
        for name in lstmx.variant_names()
    ),
    # A stack with a layer on the fast path and one on autodiff of lax.scan (Cho's GRU).
    CellCase(
        "stack_lstm_gru_cho",
        lambda: lstmx.stack([lstmx.lstm(H), lstmx.gru(3, reset_after=False)]),
        shapes=_stack_shapes,
    ),
    CellCase(
        "janet_chrono",
        lambda: lstmx.janet(H, init="chrono", t_max=10),
        shapes=lambda i: [(i, 2 * H), (H, 2 * H), (2 * H,)],  # [W_xf | W_xc], [W_hf | W_hc], b
    ),
    CellCase(
        "lstm_chrono",
        lambda: lstmx.lstm(H, init="chrono", t_max=10),
        shapes=_documented_shapes("lstm"),
    ),
    CellCase(
        "gru_chrono",
        lambda: lstmx.gru(H, init="chrono", t_max=10),
        shapes=_documented_shapes("gru"),
    ),
    CellCase(
        "peephole_bf16",
        lambda: lstmx.variant("peephole", H),
        jnp.bfloat16,
        BF16,
        _documented_shapes("peephole"),
    ),
    CellCase("gru_bf16", lambda: lstmx.gru(H), jnp.bfloat16, BF16, _documented_shapes("gru")),
    # The second round's cells with their non-default options (the defaults are the
    # variant rows above). Shapes from the equations: MGU w_x [I, 2H], w_h [H, 2H],
    # b_x [2H], b_hn [H] (none without the reset gate); IndRNN w_x [I, H], u [H], b [H];
    # minGRU w_x [I, 2H], b [2H]; minLSTM w_x [I, 3H], b [3H]. The parallel rows run the
    # log-space associative scan, which "auto" only picks off CPU. (The linear-space scan of
    # negative eigenvalues is held to the step loop, values and gradients, in
    # tests/test_new_cells.py and tests/test_min_rnn_accuracy.py.)
    CellCase(
        "mgu_no_reset_gate",
        lambda: lstmx.mgu(H, reset_gate=False),
        shapes=lambda i: [(i, 2 * H), (H, 2 * H), (2 * H,)],
    ),
    CellCase(
        "indrnn_recurrent_max",
        lambda: lstmx.indrnn(H, recurrent_max=2 ** (1 / T)),
        shapes=lambda i: [(i, H), (H,), (H,)],
    ),
    CellCase(
        "min_gru_parallel",
        lambda: lstmx.min_gru(H, parallel=True),
        shapes=lambda i: [(i, 2 * H), (2 * H,)],
    ),
    CellCase(
        "min_lstm_parallel",
        lambda: lstmx.min_lstm(H, parallel=True),
        shapes=lambda i: [(i, 3 * H), (3 * H,)],
    ),
]

parametrize_cases = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


def test_every_named_variant_has_a_row():
    names = {case.name for case in CASES}
    assert set(lstmx.variant_names()) <= names


def test_every_public_name_is_exported_and_exists():
    import importlib
    import pkgutil

    modules = [
        importlib.import_module(f"lstmx.cells.{info.name}")
        for info in pkgutil.iter_modules(lstmx.cells.__path__)
        # lstm_backward is the fast path's machinery, reached as a module, not re-exported.
        if not info.name.startswith("_") and info.name != "lstm_backward"
    ]
    assert "janet" in {module.__name__.rsplit(".", 1)[1] for module in modules}
    for module in modules:
        assert set(module.__all__) <= set(lstmx.cells.__all__), module.__name__
    assert set(lstmx.sequence.__all__) <= set(lstmx.__all__)
    assert set(lstmx.cells.__all__) - set(lstmx.__all__) == {"lstm_gate_blocks"}
    for name in lstmx.__all__:
        assert getattr(lstmx, name) is not None, name
    for name in lstmx.cells.__all__:
        assert getattr(lstmx.cells, name) is not None, name


# --------------------------------------------------------------------------------------
# Shared data and compiled programs, one per row.
# --------------------------------------------------------------------------------------


class _Data(NamedTuple):
    cell: lstmx.Cell
    params: Any
    state: Any
    xs: jax.Array
    readout: jax.Array


@functools.cache
def _data(case: CellCase) -> _Data:
    """Random non-zero params, initial state [B] and inputs [B, T, I] for a row."""
    cell = case.make_cell()
    params = random_params(cell, I, seed=1, dtype=case.dtype)
    state = random_state(cell, (B,), seed=2, dtype=case.dtype)
    xs = random_like(jax.ShapeDtypeStruct((B, T, I), case.dtype), seed=3, scale=1.0)
    readout = random_like(jax.ShapeDtypeStruct((B, T, cell.output_size), jnp.float32), seed=4)
    return _Data(cell, params, state, xs, readout)


def _loss(run, cell, readout, params, xs, state, *, reverse, unroll=1):
    """A scalar reading every output and every leaf of the final state, which it returns
    as auxiliary data: ``(loss, (final, ys))``."""
    final, ys = run(
        cell, params, xs, state, lengths=jnp.asarray(LENGTHS), reverse=reverse, unroll=unroll
    )
    final_terms = sum(jnp.sum(jnp.sin(leaf)) for leaf in jax.tree_util.tree_leaves(final))
    return jnp.sum(ys.astype(jnp.float32) * readout) + final_terms.astype(jnp.float32), (final, ys)


def _runs_key(case: CellCase):
    """Rows whose cells have equal options compute the same (np is lstm): one program."""
    options = case.make_cell().options
    try:
        hash(options)
    except TypeError:
        return case
    return case if options is None else (type(options), options, jnp.dtype(case.dtype))


# The contract's programs are compiled without XLA's backend optimisations: they check
# equalities, not speed, and this compiles them in about half the time (2.1 s against
# 3.8 s for the LSTM's program on 2 cores).
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
_RUNS: dict = {}


def _runs(case: CellCase) -> dict:
    """Every scan of the contract for one row, in one compiled program (15 loops).

    Keys: ``scan/plain`` (forward, no lengths); ``{scan,stepwise,unroll2}/{forward,reverse}``:
    ``(loss, (final, ys)), grads`` of :func:`_loss` (lengths ``[T, 3, 0]``); ``vmap`` and
    ``batched``: a ``[2, B]`` batch with lengths, by ``vmap`` and directly; ``long``: the
    gradients of the mean squared output over ``LONG_T`` steps from the cell's own init.
    """
    key = _runs_key(case)
    if key not in _RUNS:
        _RUNS[key] = _compute_runs(case)
    return _RUNS[key]


def _compute_runs(case: CellCase) -> dict:
    data = _data(case)
    cell = data.cell
    xs_2x3 = random_like(jax.ShapeDtypeStruct((2, B, T, I), case.dtype), seed=5, scale=1.0)
    lengths_2x3 = jnp.asarray(np.stack([LENGTHS, LENGTHS[::-1]]))
    init_params = cell.init(jax.random.key(0), I, case.dtype)
    xs_long = random_like(jax.ShapeDtypeStruct((2, LONG_T, I), case.dtype), seed=6, scale=1.0)

    def long_loss(params, xs):
        _, ys = lstmx.scan(cell, params, xs)
        return jnp.mean(ys.astype(jnp.float32) ** 2)

    def program(params, xs, state, readout, xs_2x3, init_params, xs_long):
        out = {"scan/plain": lstmx.scan(cell, params, xs, state)}
        runs = (("scan", lstmx.scan, 1), ("stepwise", lstmx.scan_stepwise, 1))
        for name, run, unroll in (*runs, ("unroll2", lstmx.scan, 2)):
            for direction in ("forward", "reverse") if name != "unroll2" else ("reverse",):
                loss = functools.partial(
                    _loss, run, cell, readout, reverse=direction == "reverse", unroll=unroll
                )
                grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
                out[f"{name}/{direction}"] = grad(params, xs, state)
        # vmap over two leading axes of unbatched [T, I] sequences vs a [2, B] batch.
        single = lambda x, n: lstmx.scan(cell, params, x, lengths=n)  # noqa: E731
        out["vmap"] = jax.vmap(jax.vmap(single))(xs_2x3, lengths_2x3)
        out["batched"] = lstmx.scan(cell, params, xs_2x3, lengths=lengths_2x3)
        out["long"] = jax.grad(long_loss, argnums=(0, 1))(init_params, xs_long)
        return out

    args = (data.params, data.xs, data.state, data.readout, xs_2x3, init_params, xs_long)
    compiled = jax.jit(program).lower(*args).compile(COMPILER_OPTIONS)
    out = compiled(*args)
    out["long_params"] = init_params
    return out


def _close(actual, expected, tol: Tol, *, message: str = ""):
    chex.assert_trees_all_equal_structs(actual, expected)
    chex.assert_trees_all_close(
        _as_float32(actual),
        _as_float32(expected),
        rtol=tol.rtol,
        atol=tol.atol,
        custom_message=message,
    )


def _as_float32(tree):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), tree)


# --------------------------------------------------------------------------------------
# init and initial_state.
# --------------------------------------------------------------------------------------


@parametrize_cases
def test_init_dtypes_and_documented_shapes(case):
    cell = case.make_cell()
    params = cell.init(jax.random.key(0), I, case.dtype)
    leaves = jax.tree_util.tree_leaves(params)
    chex.assert_type(leaves, case.dtype)
    chex.assert_tree_all_finite(params)
    if case.shapes is not None:
        assert [leaf.shape for leaf in leaves] == [tuple(s) for s in case.shapes(I)]
    if jnp.dtype(case.dtype).itemsize < 4:  # drawn in float32 and rounded
        full = cell.init(jax.random.key(0), I)
        chex.assert_trees_all_equal(
            params, jax.tree_util.tree_map(lambda a: a.astype(case.dtype), full)
        )


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)], ids=str)
@parametrize_cases
def test_initial_state_is_zeros_of_the_batch_shape(case, batch_shape):
    cell = case.make_cell()
    state = cell.initial_state(batch_shape, case.dtype)
    leaves = jax.tree_util.tree_leaves(state)
    assert leaves, "a state holds at least one array"
    chex.assert_type(leaves, case.dtype)
    for leaf in leaves:
        assert leaf.shape[:-1] == batch_shape, (leaf.shape, batch_shape)
        np.testing.assert_array_equal(np.asarray(leaf, np.float32), 0.0)
    # One step from it: the output and the new state keep the batch shape and dtype.
    params = jax.eval_shape(lambda key: cell.init(key, I, case.dtype), jax.random.key(0))
    x = jax.ShapeDtypeStruct((*batch_shape, I), case.dtype)
    new_state, y = jax.eval_shape(cell.step, params, state, x)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    assert (y.shape, y.dtype) == ((*batch_shape, cell.output_size), jnp.dtype(case.dtype))


# --------------------------------------------------------------------------------------
# scan.
# --------------------------------------------------------------------------------------


@functools.cache
def _jitted_step(case: CellCase):
    return jax.jit(_data(case).cell.step)


# (reverse, lengths) of each comparison with the Python loop.
MODES = {"forward": (False, None), "lengths": (False, LENGTHS), "lengths_reverse": (True, LENGTHS)}


@pytest.mark.parametrize("mode", list(MODES))
@parametrize_cases
def test_scan_equals_python_loop_over_step(case, mode):
    data = _data(case)
    reverse, lengths = MODES[mode]
    expected = python_loop(
        data.cell,
        data.params,
        data.xs,
        data.state,
        reverse=reverse,
        lengths=lengths,
        step=_jitted_step(case),
    )
    runs = _runs(case)
    if mode == "forward":
        _close(runs["scan/plain"], expected, case.tol, message="scan")
        return
    direction = "reverse" if reverse else "forward"
    (_, fast), _ = runs[f"scan/{direction}"]
    (_, plain), _ = runs[f"stepwise/{direction}"]
    _close(fast, expected, case.tol, message=f"scan, {mode}")
    _close(plain, expected, case.tol, message=f"scan_stepwise, {mode}")


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@parametrize_cases
def test_scan_equals_scan_stepwise_in_values_and_gradients(case, direction):
    """The fast path (a custom VJP where the cell has one) against autodiff of lax.scan,
    with lengths [T, 3, 0]: loss, final state, outputs and gradients."""
    runs = _runs(case)
    fast, plain = runs[f"scan/{direction}"], runs[f"stepwise/{direction}"]
    _close(fast, plain, case.tol)
    chex.assert_tree_all_finite(fast)


@parametrize_cases
def test_unroll_2_equals_unroll_1(case):
    """Values and gradients, reverse with lengths."""
    runs = _runs(case)
    _close(runs["unroll2/reverse"], runs["scan/reverse"], case.tol)


@parametrize_cases
def test_jit_equals_eager(case):
    data = _data(case)
    cell = data.cell
    x = data.xs[:, 0]
    _close(
        _jitted_step(case)(data.params, data.state, x),
        cell.step(data.params, data.state, x),
        case.tol,
    )
    eager = lstmx.scan(cell, data.params, data.xs, data.state)
    _close(_runs(case)["scan/plain"], eager, case.tol)


@parametrize_cases
def test_vmap_equals_extra_batch_axes(case):
    """``vmap(vmap(scan over one [T, I] sequence))`` equals a scan over ``[2, B, T, I]``."""
    runs = _runs(case)
    final, ys = runs["batched"]
    assert ys.shape == (2, B, T, case.make_cell().output_size)
    _close(runs["vmap"], runs["batched"], case.tol)


@parametrize_cases
def test_gradients_are_finite_over_200_steps(case):
    """From the cell's own init, d mean(ys^2) over 200 steps: finite, not all zero."""
    runs = _runs(case)
    param_grads, input_grads = runs["long"]
    chex.assert_tree_all_finite((param_grads, input_grads))
    chex.assert_trees_all_equal_shapes_and_dtypes(param_grads, runs["long_params"])
    leaves = jax.tree_util.tree_leaves(param_grads)
    assert max(np.abs(np.asarray(g, np.float32)).max() for g in leaves) > 0.0
