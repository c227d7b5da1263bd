r"""The cell protocol and what every cell module shares: initialisers and input checks.

A cell is a :class:`Cell`: a NamedTuple of pure functions built by a factory, in the
spirit of optax's ``GradientTransformation``, plus the frozen record of the options it
was built with::

    cell = lstmx.lstm(128)
    params = cell.init(key, input_size)        # a documented NamedTuple of arrays
    state = cell.initial_state((batch,))       # a NamedTuple with named fields
    state, y = cell.step(params, state, x)     # x [*batch, I] -> y [*batch, O]
    cell.options                               # e.g. LSTMOptions(hidden_size=128, ...)

Each cell family lives in its own module (:mod:`lstmx.cells.lstm`, ``gru``, ``rnn``, ...)
with its equations written once, as module-level functions of its options record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp

from lstmx import _checks
from lstmx._fused import HandBackward, make_fast_scan

Array = jax.Array
Params = Any
State = Any

__all__ = ["Cell", "CellOptions", "sigmoid"]


class Cell(NamedTuple):
    """A recurrent cell: three pure functions, its output size and its options.

    Attributes:
      init: ``init(key, input_size, dtype=float32) -> params``.
      initial_state: ``initial_state(batch_shape=(), dtype=float32) -> state`` (zeros).
      step: ``step(params, state, x) -> (state, y)``; ``x [*batch, I]``, ``y [*batch, O]``.
      output_size: ``O``, the size of ``y``.
      options: the frozen record of the options the cell was built with (for example
        :class:`lstmx.LSTMOptions`); :func:`lstmx.describe`, :mod:`lstmx.diagnostics` and
        the experiments read it. None for a cell built by hand.
      fast_scan: optional hook, the cell's own sequence path, used by :func:`lstmx.scan`
        in place of a ``lax.scan`` over ``step``:
        ``fast_scan(params, state, xs [T, *batch, I], valid [T, *batch] | None, reverse,
        unroll) -> (final_state, ys [T, *batch, O])``, with the semantics of
        :func:`lstmx.scan` (where ``valid`` is False the state is kept and the output is
        zero). It must agree with the step loop in values and gradients; the tests hold
        every cell's hook to :func:`lstmx.scan_stepwise`.
      step_with_gates: ``step_with_gates(params, state, x) -> (state, y, gates)``, ``step``
        that also returns the gate activations ``{name: [*batch, H]}`` computed by the same
        equations (``{}`` for an Elman RNN); :mod:`lstmx.diagnostics` reads it. None for a
        cell built by hand.

    A cell's options record says the rest of what the cell is (every lstmx options record
    has these; :class:`CellOptions` is the protocol):

    * ``options.family``: the cell family's name (``"lstm"``, ``"gru"``, ...), which the
      benchmark uses to pick the peers a cell is compared with;
    * ``options.parameter_roles()``: ``{params field: what it does}``, for
      :func:`lstmx.describe`;
    * ``options.matmul_flops(input_size)``: the matrix-product FLOPs of one step for one
      example, for the benchmark's FLOP rates.
    """

    init: Callable[..., Params]
    initial_state: Callable[..., State]
    step: Callable[[Params, State, Array], tuple[State, Array]]
    output_size: int
    options: Any = None
    fast_scan: Callable[..., tuple[State, Array]] | None = None
    step_with_gates: Callable[[Params, State, Array], tuple[State, Array, dict]] | None = None


class CellOptions(Protocol):
    """What every lstmx cell's options record provides beyond its fields (see :class:`Cell`)."""

    family: str
    hidden_size: int

    def parameter_roles(self) -> dict[str, str]:
        """``{params field: one line saying what it does}`` (fields without a role: absent)."""
        ...

    def matmul_flops(self, input_size: int) -> int:
        """Matrix-product FLOPs of one step for one example: 2 per multiply-add."""
        ...


def blocks_text(blocks: Sequence[str]) -> str:
    """``("i", "f", "g", "o")`` -> ``"[i f g o]"``, as the parameter roles name blocks."""
    return "[" + " ".join(blocks) + "]"


def kernel_roles(blocks: str, hidden_size: int, recurrent_note: str) -> dict[str, str]:
    """The roles of ``w_x`` and ``w_h`` in a cell whose kernels both feed ``blocks``."""
    return {
        "w_x": f"input kernel W_x: x_t → {blocks}, {hidden_size} columns each",
        "w_h": f"recurrent kernel W_h: h_{{t-1}} → {blocks}{recurrent_note}",
    }


class HiddenState(NamedTuple):
    """The state of a cell whose whole state is its last output: ``h [*batch, H]``.

    Such cells (GRU, MGU, Elman RNN, IndRNN, minGRU / minLSTM) each subclass it, so that
    their states stay distinct types and a cell refuses another family's state.
    """

    h: Array


def make_cell(
    options: Any,
    init_params: Callable[..., Params],
    initial_state: Callable[..., State],
    gated_step: Callable[..., tuple[State, Array, dict]],
    fast_scan: Callable[..., tuple[State, Array]] | None = None,
    output_size: int | None = None,
) -> Cell:
    """The :class:`Cell` of a cell module: its functions of ``options``, bound to ``options``.

    Args:
      options: the cell's frozen options record, passed first to each function below.
      init_params: ``init_params(options, key, input_size, dtype) -> params``.
      initial_state: ``initial_state(options, batch_shape, dtype) -> state``.
      gated_step: ``gated_step(options, params, state, x) -> (state, y, gates)``; the
        cell's ``step_with_gates`` is it bound to ``options``, and ``step`` is that without
        the gates.
      fast_scan: the cell's sequence path, already bound (see :class:`Cell`), or None.
      output_size: ``O``, the size of ``y``; ``options.hidden_size`` when None.
    """

    # Written out, not a partial of init_params, so that a wrong call names cell.init.
    def init(key: Array, input_size: Any = None, dtype: Any = jnp.float32, **unknown) -> Params:
        if unknown or input_size is None:
            wrong = f"unexpected keyword(s) {', '.join(sorted(unknown))}" if unknown else (
                "no input_size"
            )  # fmt: skip
            raise TypeError(
                f"cell.init got {wrong}; it takes init(key, input_size, dtype=jnp.float32)."
            )
        return init_params(options, key, input_size, dtype)

    def zeros(batch_shape: Sequence[int] = (), dtype: Any = jnp.float32) -> State:
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"initial_state's dtype must be a floating dtype (float32, bfloat16, ...), "
                f"got {jnp.dtype(dtype)}."
            )
        return initial_state(options, batch_shape, dtype)

    step_with_gates = partial(gated_step, options)
    return Cell(
        init=init,
        initial_state=zeros,
        step=drop_gates(step_with_gates),
        output_size=options.hidden_size if output_size is None else output_size,
        options=options,
        fast_scan=fast_scan,
        step_with_gates=step_with_gates,
    )


def zero_state(
    state_type: type, options: Any, batch_shape: Sequence[int] = (), dtype: Any = jnp.float32
) -> State:
    """``state_type`` with every field zeros ``[*batch_shape, options.hidden_size]``.

    The ``initial_state`` of a cell whose state fields are all ``H`` wide, as
    ``partial(zero_state, GRUState)``.
    """
    zeros = jnp.zeros((*_checks.batch_shape(batch_shape), options.hidden_size), dtype)
    return state_type(*(zeros for _ in state_type._fields))


def sigmoid(x: Array) -> Array:
    r"""Logistic sigmoid as :math:`\sigma(x) = \tfrac12 \tanh(\tfrac x2) + \tfrac12`.

    Mathematically identical to ``jax.nn.sigmoid``; XLA:CPU evaluates ``tanh`` several times
    faster than ``logistic`` (see the README's performance notes). Accurate to 1.2e-7 in
    absolute terms only (it is exactly 0 for x <= -16, where σ(x) <= 1.1e-7): safe wherever
    a gate multiplies or is added to quantities of size about 1, as in every gated cell's
    state update; not for a quotient of gates (minLSTM's normalised gates use
    ``jax.nn.sigmoid``). ``tests/test_min_rnn_accuracy.py`` holds the bound.
    """
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def affine(x: Array, w: Array, b: Array) -> Array:
    """``x @ w + b`` with the bias broadcast explicitly (``jax_numpy_rank_promotion="raise"``)."""
    z = x @ w
    return z + jnp.broadcast_to(b, z.shape)


# --------------------------------------------------------------------------------------
# Initialisers.
# --------------------------------------------------------------------------------------


def draw_dtype(dtype: Any) -> Any:
    """The dtype random initial values are drawn in before casting to ``dtype``.

    Half-precision params (bfloat16, float16) are drawn in float32 and cast: XLA:CPU has no
    half-precision QR for the orthogonal init, and this way ``init(key, I, jnp.bfloat16)``
    equals ``init(key, I)`` cast to bfloat16.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(
            f"init's dtype must be a real floating dtype (float32, bfloat16, ...), got {dtype}: "
            f"lstmx's cells are real-valued. {_checks.COMPLEX_HINT}"
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"init's dtype must be a floating dtype (float32, bfloat16, ...), got {dtype}."
        )
    return jnp.float32 if dtype.itemsize < 4 else dtype


def lecun_normal(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    """LeCun-normal values (variance ``1 / fan_in``), drawn as :func:`draw_dtype` says."""
    return jax.nn.initializers.lecun_normal()(key, shape, draw_dtype(dtype)).astype(dtype)


def input_kernel(key: Array, input_size: int, columns: int, dtype: Any) -> Array:
    """The input kernel ``w_x [I, columns]``, lecun-normal, once ``input_size`` is checked."""
    input_size = _checks.positive_int("input_size", input_size)
    return lecun_normal(key, (input_size, columns), dtype)


def orthogonal(key: Array, shape: tuple[int, int], dtype: Any) -> Array:
    """``jax.nn.initializers.orthogonal()(key, shape, dtype)``, safe under ``jit(vmap(...))``.

    Under ``vmap`` over keys the QR decompositions run one key after another
    (``lax.map``) instead of as one batched QR. On XLA:CPU (jaxlib 0.10.2) the batched
    LAPACK QR kernel splits its batch over the intra-op thread pool it is already running
    on and blocks waiting for it; two such QRs at once (every cell draws several
    recurrent blocks) can occupy every worker and deadlock the process, about one launch
    in four on 2 cores. One matrix per call never waits on the pool. The values are those
    of the unbatched initialiser, bit for bit, seed by seed.
    """
    initializer = jax.nn.initializers.orthogonal()

    @jax.custom_batching.custom_vmap
    def draw(key):
        return initializer(key, shape, dtype)

    @draw.def_vmap
    def draw_one_key_at_a_time(axis_size, in_batched, key):
        del axis_size  # the keys' leading axis says it
        if not in_batched[0]:
            return draw(key), False
        return jax.lax.map(draw, key), True

    return draw(key)


def orthogonal_blocks(key: Array, rows: int, columns: int, num_blocks: int, dtype: Any) -> Array:
    """``num_blocks`` independent orthogonal ``[rows, columns]`` matrices side by side
    (:func:`orthogonal`, so ``jit(vmap(cell.init))`` cannot deadlock XLA:CPU)."""
    keys = jax.random.split(key, num_blocks)
    shape, draw = (rows, columns), draw_dtype(dtype)
    return jnp.concatenate([orthogonal(k, shape, draw) for k in keys], 1).astype(dtype)


def kernels(
    key: Array, input_size: int, hidden_size: int, num_blocks: int, dtype: Any
) -> tuple[Array, Array]:
    """``w_x [I, N*H]`` (:func:`input_kernel`) and ``w_h [H, N*H]`` (orthogonal blocks),
    from ``key`` split in two."""
    key_x, key_h = jax.random.split(key)
    w_x = input_kernel(key_x, input_size, num_blocks * hidden_size, dtype)
    return w_x, orthogonal_blocks(key_h, hidden_size, hidden_size, num_blocks, dtype)


def chrono_bias(key: Array, hidden_size: int, t_max: int, dtype: Any) -> Array:
    """``log(U[1, t_max - 1])`` per unit (Tallec & Ollivier 2018, eq. 16)."""
    draw = draw_dtype(dtype)
    return jnp.log(jax.random.uniform(key, (hidden_size,), draw, 1.0, t_max - 1.0)).astype(dtype)


def check_init(init: str, t_max: Any) -> int | None:
    """Validates an ``init`` / ``t_max`` pair; returns ``t_max`` for chrono, else None."""
    if init not in ("default", "chrono"):
        raise ValueError(f'init must be "default" or "chrono", got {init!r}.')
    if init == "default":
        if t_max is not None:
            raise ValueError('t_max is only used by init="chrono"; got t_max with init="default".')
        return None
    t_max = _checks.positive_int("t_max", t_max) if t_max is not None else None
    if t_max is None or t_max < 3:
        raise ValueError(
            'init="chrono" needs t_max >= 3, the longest dependency to expect '
            f"(Tallec & Ollivier use 3T/2 for copy with delay T); got t_max={t_max}."
        )
    return t_max


def check_bool(name: str, value: Any) -> bool:
    """Refuses anything but a real bool (``1``, ``"yes"`` and ``None`` included)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}.")
    return value


# --------------------------------------------------------------------------------------
# Checks at the step boundary (trace time only).
# --------------------------------------------------------------------------------------


def check_kernels(params: Any, params_type: type, num_columns: int, recurrent_rows: int) -> None:
    """Checks a params NamedTuple with ``w_x [I, N]`` and ``w_h [R, N]`` kernels."""
    _checks.params_type("params", params, params_type)
    _checks.array_shape("params.w_h", params.w_h, (recurrent_rows, num_columns))
    if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != num_columns:
        _checks.array_shape("params.w_x", params.w_x, ("I", num_columns))


def check_step(
    state: Any, state_type: type, hidden_size: int, x: Any, params: Any, h_size: int | None = None
) -> Array:
    """Checks one step's state and input against the params; returns ``x`` as an array.

    ``h_size`` is the width of ``state.h`` when it differs from ``hidden_size`` (an LSTM with
    a projection, ``proj_size=P``); the other state fields are ``hidden_size`` wide.
    """
    if not isinstance(state, state_type):
        raise TypeError(
            f"state must be {state_type.__name__} (from this cell's initial_state), "
            f"got {type(state).__name__}."
        )
    _checks.state_size(state, hidden_size, h_size=h_size)
    x = _checks.float_array("x", x)
    _checks.feature_size("x", x, params.w_x.shape[0])
    _checks.input_and_params_dtypes(x, params)
    _checks.batch_shape_matches("x", x, jax.tree_util.tree_leaves(state)[0])
    return x


def drop_gates(step_with_gates: Callable[..., tuple[State, Array, dict]]) -> Callable:
    """``step(params, state, x) -> (state, y)`` from a step that also returns its gates."""

    def step(params: Params, state: State, x: Array) -> tuple[State, Array]:
        new_state, y, _ = step_with_gates(params, state, x)
        return new_state, y

    return step


def fused_scan(
    options: Any,
    project_inputs: Callable,
    pointwise: Callable,
    hand: HandBackward | None = None,
) -> Callable:
    """The fast path (:func:`lstmx._fused.make_fast_scan`) of a cell module whose step is
    ``pointwise(options, params, state, project_inputs(options, params, x), h W_h)``;
    ``hand`` is the cell's hand-written backward of ``pointwise``, if it has one."""
    return make_fast_scan(partial(project_inputs, options), partial(pointwise, options), hand)
