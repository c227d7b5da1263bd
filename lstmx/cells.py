r"""Recurrent cells as pure functions.

A cell is an :class:`Cell`: a NamedTuple of pure functions built by a factory, in the
spirit of optax's ``GradientTransformation``::

    cell = lstmx.lstm(128)
    params = cell.init(key, input_size)        # a documented NamedTuple of arrays
    state = cell.initial_state((batch,))       # a NamedTuple with named fields
    state, y = cell.step(params, state, x)     # x [*batch, I] -> y [*batch, H]

Every cell splits its step in two: ``project_inputs(params, x)`` is the affine map of
the input (it does not depend on the state), and ``step_projected(params, state, x_proj)``
is the recurrent rest; ``step`` is exactly ``step_projected(params, state,
project_inputs(params, x))``. Cells whose recurrence is one GEMM ``h @ w_h`` followed by
elementwise work also offer ``fast_scan``, a sequence loop with a hand-made VJP that
computes every weight gradient as one GEMM after the backward loop (:mod:`lstmx._fused`).

Parameter layouts are public and match PyTorch's up to a transpose (``y = x @ w``), so
weights convert exactly (see :mod:`lstmx.convert`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from lstmx import _checks
from lstmx._fused import make_fast_scan

Array = jax.Array
Params = Any
State = Any

__all__ = [
    "Cell",
    "FGRState",
    "GRUParams",
    "GRUState",
    "LSTMParams",
    "LSTMState",
    "RNNParams",
    "RNNState",
    "gru",
    "lstm",
    "lstm_gate_blocks",
    "rnn",
    "sigmoid",
    "variant",
    "variant_names",
    "variant_summary",
]


class Cell(NamedTuple):
    """A recurrent cell: pure functions and its output size.

    Attributes:
      init: ``init(key, input_size, dtype=float32) -> params``.
      initial_state: ``initial_state(batch_shape=(), dtype=float32) -> state`` (zeros).
      step: ``step(params, state, x) -> (state, y)``; ``x [*batch, I]``, ``y [*batch, O]``.
      project_inputs: ``project_inputs(params, x) -> x_proj``; the part of the step that
        depends only on the input, ``x [..., I] -> [..., P]`` for any leading axes.
      step_projected: ``step_projected(params, state, x_proj) -> (state, y)``.
      output_size: ``O``, the size of ``y`` (the hidden size for a single cell).
      fast_scan: the cell's fast sequence path, or None:
        ``fast_scan(params, state, xs [T, *batch, I], valid [T, *batch] | None, reverse,
        unroll) -> (final_state, ys [T, *batch, O])`` with the semantics of
        :func:`lstmx.scan`; steps where ``valid`` is False keep the state and output zero.
    """

    init: Callable[..., Params]
    initial_state: Callable[..., State]
    step: Callable[[Params, State, Array], tuple[State, Array]]
    project_inputs: Callable[[Params, Array], Array]
    step_projected: Callable[[Params, State, Array], tuple[State, Array]]
    output_size: int
    fast_scan: Callable[..., tuple[State, Array]] | None = None


class LSTMState(NamedTuple):
    """LSTM state: hidden output ``h [*batch, H]`` and cell state ``c [*batch, H]``."""

    h: Array
    c: Array


class FGRState(NamedTuple):
    """State of an LSTM with full gate recurrence (Greff et al. 2017, FGR).

    Attributes:
      h: hidden output ``[*batch, H]``.
      c: cell state ``[*batch, H]``.
      gates: this step's sigmoid gate activations ``[*batch, k*H]``, concatenated in the
        order i, f, o over the gates that have weights; they feed the next step's gates.
    """

    h: Array
    c: Array
    gates: Array


class LSTMParams(NamedTuple):
    """Parameters of every LSTM variant.

    ``G`` is the number of gate blocks, in the order i, f, g, o with every absent gate's block
    dropped (CIFG and NIG: f, g, o; NFG: i, g, o; NOG: i, f, g). ``k`` is the number of
    sigmoid gates that have weights, in the order i, f, o.

    Attributes:
      w_x: input kernel ``[I, G*H]``.
      w_h: recurrent kernel ``[H, G*H]``.
      b: bias ``[G*H]`` (one bias; PyTorch's two add up to it).
      p: diagonal peephole weights ``[k, H]``, one row per sigmoid gate, or None.
      w_gates: full-gate-recurrence kernel ``[k*H, k*H]`` or None. Block (s, t), rows
        ``s*H:(s+1)*H`` and columns ``t*H:(t+1)*H``, carries gate s's previous activation
        into gate t's pre-activation: for the vanilla FGR these are Greff's 9 extra matrices.
    """

    w_x: Array
    w_h: Array
    b: Array
    p: Array | None = None
    w_gates: Array | None = None


class GRUState(NamedTuple):
    """GRU state: hidden output ``h [*batch, H]``."""

    h: Array


class GRUParams(NamedTuple):
    """GRU parameters, gate blocks in the order r, z, n (PyTorch's, up to a transpose).

    Attributes:
      w_x: input kernel ``[I, 3H]``.
      w_h: recurrent kernel ``[H, 3H]``.
      b_x: input bias ``[3H]``.
      b_h: recurrent bias ``[3H]``; kept apart because ``b_hn`` sits inside the reset product.
    """

    w_x: Array
    w_h: Array
    b_x: Array
    b_h: Array


class RNNState(NamedTuple):
    """Elman RNN state: hidden output ``h [*batch, H]``."""

    h: Array


class RNNParams(NamedTuple):
    """Elman RNN parameters: ``w_x [I, H]``, ``w_h [H, H]``, ``b [H]``."""

    w_x: Array
    w_h: Array
    b: Array


def sigmoid(x: Array) -> Array:
    r"""Logistic sigmoid as :math:`\sigma(x) = \tfrac12 \tanh(\tfrac x2) + \tfrac12`.

    Mathematically identical to ``jax.nn.sigmoid``; XLA:CPU evaluates ``tanh`` several times
    faster than ``logistic`` (see the README's performance notes).
    """
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _broadcast_bias(bias: Array, like: Array) -> Array:
    # Explicit broadcast keeps the cells usable under jax_numpy_rank_promotion="raise".
    return jnp.broadcast_to(bias, like.shape)


def _draw_dtype(dtype: Any) -> Any:
    """The dtype random initial values are drawn in before casting to ``dtype``.

    Half-precision params (bfloat16, float16) are drawn in float32 and cast: XLA:CPU has no
    half-precision QR for the orthogonal init, and this way ``init(key, I, jnp.bfloat16)``
    equals ``init(key, I)`` cast to bfloat16.
    """
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"init's dtype must be a floating dtype (float32, bfloat16, ...), got {dtype}."
        )
    return jnp.float32 if dtype.itemsize < 4 else dtype


def _lecun_normal(key: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    return jax.nn.initializers.lecun_normal()(key, shape, _draw_dtype(dtype)).astype(dtype)


def _orthogonal_blocks(key: Array, hidden_size: int, num_blocks: int, dtype: Any) -> Array:
    """``num_blocks`` independent orthogonal ``[H, H]`` matrices side by side: ``[H, n*H]``."""
    orthogonal = jax.nn.initializers.orthogonal()
    keys = jax.random.split(key, num_blocks)
    shape, draw = (hidden_size, hidden_size), _draw_dtype(dtype)
    return jnp.concatenate([orthogonal(k, shape, draw) for k in keys], 1).astype(dtype)


def _chrono_bias(key: Array, hidden_size: int, t_max: int, dtype: Any) -> Array:
    """``log(U[1, t_max - 1])`` per unit (Tallec & Ollivier 2018, eq. 16)."""
    draw = _draw_dtype(dtype)
    return jnp.log(jax.random.uniform(key, (hidden_size,), draw, 1.0, t_max - 1.0)).astype(dtype)


def _check_init(init: str, t_max: Any) -> int | None:
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


def lstm_gate_blocks(
    coupled: bool, input_gate: bool, forget_gate: bool, output_gate: bool
) -> tuple[str, ...]:
    """The gate blocks an LSTM's params hold, in the order i, f, g, o.

    A gate has no block when it is absent (NIG, NFG, NOG) or, for the input gate, derived
    (CIFG, ``i = 1 - f``); g is always there.
    """
    present = {
        "i": input_gate and not coupled,
        "f": forget_gate,
        "g": True,
        "o": output_gate,
    }
    return tuple(name for name in ("i", "f", "g", "o") if present[name])


def lstm(
    hidden_size: int,
    *,
    peephole: bool = False,
    coupled: bool = False,
    input_gate: bool = True,
    forget_gate: bool = True,
    output_gate: bool = True,
    input_activation: bool = True,
    output_activation: bool = True,
    full_gate_recurrence: bool = False,
    forget_bias: float = 1.0,
    init: str = "default",
    t_max: int | None = None,
) -> Cell:
    r"""Long short-term memory cell with every ablation of Greff et al. 2017 as an option.

    The standard cell (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al.
    2000), with pre-activations :math:`z_* = x W_{x*} + h_{t-1} W_{h*} + b_*`:

    .. math::
        i &= \sigma(z_i + p_i \odot c_{t-1}) \qquad f = \sigma(z_f + p_f \odot c_{t-1}) \\
        g &= \tanh(z_g) \qquad c_t = f \odot c_{t-1} + i \odot g \\
        o &= \sigma(z_o + p_o \odot c_t) \qquad h_t = o \odot \tanh(c_t)

    where the peephole terms (Gers & Schmidhuber 2000) are present only with
    ``peephole=True``; the output gate's peephole sees the *new* cell state.

    Args:
      hidden_size: ``H``, the number of units.
      peephole: diagonal peephole weights ``p [k, H]``.
      coupled: CIFG, ``i = 1 - f`` (the input gate has no weights). Greff et al. write
        ``f = 1 - i``; coupling through the forget gate keeps the forget-bias convention.
      input_gate: False gives NIG, ``i = 1``.
      forget_gate: False gives NFG, ``f = 1``.
      output_gate: False gives NOG, ``o = 1``.
      input_activation: False gives NIAF, ``g = z_g`` (no tanh).
      output_activation: False gives NOAF, ``h = o \odot c``.
      full_gate_recurrence: FGR, the previous step's gate activations feed every gate's
        pre-activation through ``w_gates [k*H, k*H]`` (9 ``[H, H]`` matrices for 3 gates).
      forget_bias: initial value of the forget-gate bias (Jozefowicz et al. 2015). Nothing
        is added in the forward pass, so weights convert exactly to and from PyTorch.
      init: "default" (lecun-normal input kernel, orthogonal recurrent blocks, zero biases
        but the forget bias) or "chrono" (Tallec & Ollivier 2018: ``b_f ~ log U[1, t_max-1]``
        per unit, ``b_i = -b_f``; replaces ``forget_bias``).
      t_max: the longest dependency expected; required by ``init="chrono"``.

    Returns:
      A :class:`Cell` with :class:`LSTMParams` and :class:`LSTMState` (:class:`FGRState`
      with full gate recurrence).
    """
    hidden_size = _checks.positive_int("hidden_size", hidden_size)
    t_max = _check_init(init, t_max)
    if coupled and not input_gate:
        raise ValueError("coupled=True defines the input gate as 1 - f; it needs input_gate=True.")
    if coupled and not forget_gate:
        raise ValueError("coupled=True defines i = 1 - f; it needs forget_gate=True.")
    if init == "chrono" and not forget_gate:
        raise ValueError('init="chrono" sets the forget-gate bias; it needs forget_gate=True.')
    H = hidden_size
    blocks = lstm_gate_blocks(coupled, input_gate, forget_gate, output_gate)
    has_i = "i" in blocks
    sigmoid_gates = tuple(name for name in blocks if name != "g")
    G, k = len(blocks), len(sigmoid_gates)
    state_type = FGRState if full_gate_recurrence else LSTMState

    def init_fn(key: Array, input_size: int, dtype: Any = jnp.float32) -> LSTMParams:
        input_size = _checks.positive_int("input_size", input_size)
        key_x, key_h, key_b, key_g = jax.random.split(key, 4)
        w_x = _lecun_normal(key_x, (input_size, G * H), dtype)
        w_h = _orthogonal_blocks(key_h, H, G, dtype)
        bias = {name: jnp.zeros((H,), dtype) for name in blocks}
        if t_max is not None:
            bias["f"] = _chrono_bias(key_b, H, t_max, dtype)
            if has_i:
                bias["i"] = -bias["f"]
        elif forget_gate:
            bias["f"] = jnp.full((H,), forget_bias, dtype)
        b = jnp.concatenate([bias[name] for name in blocks])
        p = jnp.zeros((k, H), dtype) if peephole else None
        w_gates = None
        if full_gate_recurrence:
            w_gates = _lecun_normal(key_g, (k * H, k * H), dtype)
        return LSTMParams(w_x, w_h, b, p, w_gates)

    def initial_state(batch_shape: Sequence[int] = (), dtype: Any = jnp.float32) -> State:
        batch_shape = _checks.batch_shape(batch_shape)
        zeros = jnp.zeros((*batch_shape, H), dtype)
        if full_gate_recurrence:
            return FGRState(zeros, zeros, jnp.zeros((*batch_shape, k * H), dtype))
        return LSTMState(zeros, zeros)

    def check_params(params: Any) -> None:
        _checks.params_type("params", params, LSTMParams)
        _checks.array_shape("params.w_h", params.w_h, (H, G * H))
        _checks.array_shape("params.b", params.b, (G * H,))
        if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != G * H:
            _checks.array_shape("params.w_x", params.w_x, ("I", G * H))
        if peephole:
            _checks.array_shape("params.p", params.p, (k, H))
        elif params.p is not None:
            raise ValueError("params.p holds peephole weights but this cell has peephole=False.")
        if full_gate_recurrence:
            _checks.array_shape("params.w_gates", params.w_gates, (k * H, k * H))
        elif params.w_gates is not None:
            raise ValueError("params.w_gates is set but this cell has full_gate_recurrence=False.")

    def project_inputs(params: LSTMParams, x: Array) -> Array:
        check_params(params)
        x = _checks.float_array("x", x)
        _checks.feature_size("x", x, params.w_x.shape[0])
        _checks.input_and_params_dtypes(x, params)
        z = x @ params.w_x
        return z + _broadcast_bias(params.b, z)

    def pointwise(params: LSTMParams, state: State, x_proj: Array, hh: Array):
        """Everything after the recurrent GEMM ``hh = h_prev @ w_h``."""
        z = x_proj + hh
        pre = dict(zip(blocks, jnp.split(z, G, axis=-1), strict=True))
        if full_gate_recurrence:
            from_gates = jnp.split(state.gates @ params.w_gates, k, axis=-1)
            for name, extra in zip(sigmoid_gates, from_gates, strict=True):
                pre[name] = pre[name] + extra
        if peephole:
            for row, name in enumerate(sigmoid_gates):
                if name != "o":
                    pre[name] = pre[name] + _broadcast_bias(params.p[row], state.c) * state.c
        f = sigmoid(pre["f"]) if forget_gate else None
        if has_i:
            i = sigmoid(pre["i"])
        elif coupled:
            i = 1.0 - f
        else:
            i = None
        g = jnp.tanh(pre["g"]) if input_activation else pre["g"]
        c = (state.c if f is None else f * state.c) + (g if i is None else i * g)
        out = jnp.tanh(c) if output_activation else c
        o = None
        if output_gate:
            if peephole:
                pre["o"] = pre["o"] + _broadcast_bias(params.p[k - 1], c) * c
            o = sigmoid(pre["o"])
            out = o * out
        if full_gate_recurrence:
            activation = {"i": i, "f": f, "o": o}
            gates = jnp.concatenate([activation[name] for name in sigmoid_gates], axis=-1)
            return FGRState(out, c, gates), out
        return LSTMState(out, c), out

    def step_projected(params: LSTMParams, state: State, x_proj: Array) -> tuple[State, Array]:
        return pointwise(params, state, x_proj, state.h @ params.w_h)

    return Cell(
        init=init_fn,
        initial_state=initial_state,
        step=_make_step(project_inputs, step_projected, state_type, H),
        project_inputs=project_inputs,
        step_projected=step_projected,
        output_size=H,
        fast_scan=make_fast_scan(project_inputs, pointwise),
    )


def gru(
    hidden_size: int, *, reset_after: bool = True, init: str = "default", t_max: int | None = None
) -> Cell:
    r"""Gated recurrent unit (Cho et al. 2014), gate order r, z, n.

    .. math::
        r &= \sigma(x W_{xr} + b_{xr} + h_{t-1} W_{hr} + b_{hr}) \\
        z &= \sigma(x W_{xz} + b_{xz} + h_{t-1} W_{hz} + b_{hz}) \\
        n &= \tanh(x W_{xn} + b_{xn} + r \odot (h_{t-1} W_{hn} + b_{hn}))
             \quad \text{(reset\_after=True)} \\
        n &= \tanh(x W_{xn} + b_{xn} + (r \odot h_{t-1}) W_{hn} + b_{hn})
             \quad \text{(reset\_after=False)} \\
        h_t &= (1 - z) \odot n + z \odot h_{t-1}

    Args:
      hidden_size: ``H``.
      reset_after: True applies the reset gate after the recurrent matmul, as PyTorch,
        cuDNN, Flax and Keras do; False is Cho et al. 2014's original (and Haiku's).
        Both use the same :class:`GRUParams`.
      init: "default" (lecun-normal input kernel, orthogonal recurrent blocks, zero biases)
        or "chrono": the update-gate bias ``b_xz ~ log U[1, t_max-1]``, so that keeping the
        old state (z near 1) is the initial behaviour over time scales up to ``t_max``.
      t_max: required by ``init="chrono"``.
    """
    hidden_size = _checks.positive_int("hidden_size", hidden_size)
    t_max = _check_init(init, t_max)
    H = hidden_size

    def init_fn(key: Array, input_size: int, dtype: Any = jnp.float32) -> GRUParams:
        input_size = _checks.positive_int("input_size", input_size)
        key_x, key_h, key_b = jax.random.split(key, 3)
        w_x = _lecun_normal(key_x, (input_size, 3 * H), dtype)
        w_h = _orthogonal_blocks(key_h, H, 3, dtype)
        b_x = jnp.zeros((3 * H,), dtype)
        if t_max is not None:
            b_x = b_x.at[H : 2 * H].set(_chrono_bias(key_b, H, t_max, dtype))
        return GRUParams(w_x, w_h, b_x, jnp.zeros((3 * H,), dtype))

    def initial_state(batch_shape: Sequence[int] = (), dtype: Any = jnp.float32) -> GRUState:
        return GRUState(jnp.zeros((*_checks.batch_shape(batch_shape), H), dtype))

    def project_inputs(params: GRUParams, x: Array) -> Array:
        _checks.params_type("params", params, GRUParams)
        _checks.array_shape("params.w_h", params.w_h, (H, 3 * H))
        _checks.array_shape("params.b_x", params.b_x, (3 * H,))
        _checks.array_shape("params.b_h", params.b_h, (3 * H,))
        if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != 3 * H:
            _checks.array_shape("params.w_x", params.w_x, ("I", 3 * H))
        x = _checks.float_array("x", x)
        _checks.feature_size("x", x, params.w_x.shape[0])
        _checks.input_and_params_dtypes(x, params)
        z = x @ params.w_x
        return z + _broadcast_bias(params.b_x, z)

    def pointwise(params: GRUParams, state: GRUState, x_proj: Array, hh: Array):
        """reset_after=True: everything after the recurrent GEMM ``hh = h_prev @ w_h``."""
        h_r, h_z, h_n = jnp.split(hh + _broadcast_bias(params.b_h, hh), 3, axis=-1)
        x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h_new = (1.0 - z) * n + z * state.h
        return GRUState(h_new), h_new

    def step_projected(params: GRUParams, state: GRUState, x_proj: Array):
        if reset_after:
            return pointwise(params, state, x_proj, state.h @ params.w_h)
        h = state.h
        x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
        hh = h @ params.w_h[:, : 2 * H]
        h_r, h_z = jnp.split(hh + _broadcast_bias(params.b_h[: 2 * H], hh), 2, axis=-1)
        r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
        h_n = (r * h) @ params.w_h[:, 2 * H :]
        n = jnp.tanh(x_n + h_n + _broadcast_bias(params.b_h[2 * H :], h_n))
        h_new = (1.0 - z) * n + z * h
        return GRUState(h_new), h_new

    return Cell(
        init=init_fn,
        initial_state=initial_state,
        step=_make_step(project_inputs, step_projected, GRUState, H),
        project_inputs=project_inputs,
        step_projected=step_projected,
        output_size=H,
        # Cho's reset multiplies h before its second GEMM, so the recurrence is not one
        # GEMM followed by elementwise work; it runs on autodiff of lax.scan.
        fast_scan=make_fast_scan(project_inputs, pointwise) if reset_after else None,
    )


def rnn(hidden_size: int, activation: Callable[[Array], Array] = jnp.tanh) -> Cell:
    r"""Elman RNN: :math:`h_t = \mathrm{act}(x W_x + h_{t-1} W_h + b)` (Elman 1990).

    Initialised like the LSTM: lecun-normal ``w_x``, orthogonal ``w_h``, zero ``b``.
    """
    hidden_size = _checks.positive_int("hidden_size", hidden_size)
    if not callable(activation):
        raise TypeError(f"activation must be callable, got {type(activation).__name__}.")
    H = hidden_size

    def init_fn(key: Array, input_size: int, dtype: Any = jnp.float32) -> RNNParams:
        input_size = _checks.positive_int("input_size", input_size)
        key_x, key_h = jax.random.split(key)
        w_x = _lecun_normal(key_x, (input_size, H), dtype)
        return RNNParams(w_x, _orthogonal_blocks(key_h, H, 1, dtype), jnp.zeros((H,), dtype))

    def initial_state(batch_shape: Sequence[int] = (), dtype: Any = jnp.float32) -> RNNState:
        return RNNState(jnp.zeros((*_checks.batch_shape(batch_shape), H), dtype))

    def project_inputs(params: RNNParams, x: Array) -> Array:
        _checks.params_type("params", params, RNNParams)
        _checks.array_shape("params.w_h", params.w_h, (H, H))
        _checks.array_shape("params.b", params.b, (H,))
        if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != H:
            _checks.array_shape("params.w_x", params.w_x, ("I", H))
        x = _checks.float_array("x", x)
        _checks.feature_size("x", x, params.w_x.shape[0])
        _checks.input_and_params_dtypes(x, params)
        z = x @ params.w_x
        return z + _broadcast_bias(params.b, z)

    def pointwise(params: RNNParams, state: RNNState, x_proj: Array, hh: Array):
        h = activation(x_proj + hh)
        return RNNState(h), h

    def step_projected(params: RNNParams, state: RNNState, x_proj: Array):
        return pointwise(params, state, x_proj, state.h @ params.w_h)

    return Cell(
        init=init_fn,
        initial_state=initial_state,
        step=_make_step(project_inputs, step_projected, RNNState, H),
        project_inputs=project_inputs,
        step_projected=step_projected,
        output_size=H,
        fast_scan=make_fast_scan(project_inputs, pointwise),
    )


def _make_step(
    project_inputs: Callable, step_projected: Callable, state_type: type, hidden_size: int
) -> Callable:
    """``step = step_projected ∘ project_inputs``, with the state checked against ``x``."""

    def step(params: Params, state: State, x: Array) -> tuple[State, Array]:
        if not isinstance(state, state_type):
            raise TypeError(
                f"state must be {state_type.__name__} (from this cell's initial_state), "
                f"got {type(state).__name__}."
            )
        _checks.state_size(state, hidden_size)
        x_proj = project_inputs(params, x)
        _checks.batch_shape_matches("x", x_proj, state.h)
        return step_projected(params, state, x_proj)

    return step


class _Variant(NamedTuple):
    factory: Callable[..., Cell]
    options: dict
    summary: str


# Greff et al.'s ablations change one thing each in their vanilla LSTM "V", which has
# peepholes; so does our cifg, to stay one change away from V (pass peephole=False to drop).
_VARIANTS: dict[str, _Variant] = {
    "rnn": _Variant(rnn, {}, "Elman RNN, tanh"),
    "lstm": _Variant(lstm, {}, "LSTM with forget gate, no peepholes"),
    "peephole": _Variant(lstm, {"peephole": True}, "LSTM with peepholes (Greff's vanilla V)"),
    "cifg": _Variant(lstm, {"peephole": True, "coupled": True}, "V with i = 1 - f"),
    "gru": _Variant(gru, {}, "GRU, reset after the recurrent matmul (PyTorch/Flax)"),
    "gru_cho": _Variant(gru, {"reset_after": False}, "GRU, reset before (Cho et al. 2014)"),
    "nig": _Variant(lstm, {"peephole": True, "input_gate": False}, "V with i = 1"),
    "nfg": _Variant(lstm, {"peephole": True, "forget_gate": False}, "V with f = 1"),
    "nog": _Variant(lstm, {"peephole": True, "output_gate": False}, "V with o = 1"),
    "niaf": _Variant(lstm, {"peephole": True, "input_activation": False}, "V, g = z_g"),
    "noaf": _Variant(lstm, {"peephole": True, "output_activation": False}, "V, h = o*c"),
    "np": _Variant(lstm, {}, "V without peepholes (= lstm)"),
    "fgr": _Variant(lstm, {"peephole": True, "full_gate_recurrence": True}, "V + 9 gate matrices"),
}


def variant_names() -> tuple[str, ...]:
    """The names :func:`variant` accepts, in a stable order."""
    return tuple(_VARIANTS)


def variant_summary(name: str) -> str:
    """One line saying how the named variant differs from the standard LSTM."""
    return _lookup(name).summary


def _lookup(name: str) -> _Variant:
    if not isinstance(name, str) or name not in _VARIANTS:
        raise ValueError(f"Unknown variant {name!r}; valid names: {', '.join(_VARIANTS)}.")
    return _VARIANTS[name]


def variant(name: str, hidden_size: int, **overrides: Any) -> Cell:
    """Builds a named variant, e.g. ``variant("cifg", 128, init="chrono", t_max=150)``.

    Args:
      name: one of :func:`variant_names`.
      hidden_size: ``H``.
      **overrides: keyword arguments of the underlying factory (:func:`lstm`, :func:`gru`
        or :func:`rnn`), applied over the variant's own options.
    """
    entry = _lookup(name)
    try:
        return entry.factory(hidden_size, **{**entry.options, **overrides})
    except TypeError as error:
        if "unexpected keyword" not in str(error):
            raise
        raise TypeError(
            f"variant {name!r} ({entry.factory.__name__}) does not take "
            f"{sorted(overrides)}: {error}"
        ) from None
