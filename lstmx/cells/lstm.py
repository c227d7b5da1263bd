r"""The LSTM with every ablation of Greff et al. 2017 ("LSTM: A Search Space Odyssey").

The standard cell (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al.
2000), with pre-activations :math:`z_* = x W_{x*} + h_{t-1} W_{h*} + b_*`:

.. math::
    i &= \sigma(z_i + p_i \odot c_{t-1}) \qquad f = \sigma(z_f + p_f \odot c_{t-1}) \\
    g &= \tanh(z_g) \qquad c_t = f \odot c_{t-1} + i \odot g \\
    o &= \sigma(z_o + p_o \odot c_t) \qquad h_t = o \odot \tanh(c_t)

The peephole terms (Gers & Schmidhuber 2000) are present only with ``peephole=True``; the
output gate's peephole sees the *new* cell state. Every ablation is an option of
:class:`LSTMOptions`; the equations below are written once, as functions of it.

Three more options change the equations, and combine with each other and with the above:

* ``proj_size=P`` (LSTMP, Sak et al. 2014; PyTorch ``nn.LSTM(proj_size=P)``, TF1
  ``LSTMCell(num_proj=P)``): :math:`h_t = (o \odot \tanh(c_t)) W_{hr}` with
  ``w_hr [H, P]``; ``h`` (the state's and the output) is ``P`` wide, ``c`` stays ``H``
  wide, and the recurrent kernel is ``w_h [P, G*H]``.
* ``cell_clip`` / ``proj_clip`` (TF1 ``LSTMCell``): :math:`c_t` is clipped to
  ``[-cell_clip, cell_clip]`` right after its update (before the output gate's peephole
  and the output non-linearity read it); the projected :math:`h_t` to
  ``[-proj_clip, proj_clip]``.
* ``layer_norm=True`` (Ba et al. 2016, eq. 20-22):
  :math:`z = \mathrm{LN}(h_{t-1} W_h; \alpha_1) + \mathrm{LN}(x W_x; \alpha_2) + b` and
  :math:`h_t = o \odot \tanh(\mathrm{LN}(c_t; \alpha_3, \beta_3))`, see
  :class:`LSTMOptions`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from lstmx import _checks
from lstmx.cells import base, lstm_backward

Array = jax.Array

__all__ = ["FGRState", "LSTMOptions", "LSTMParams", "LSTMState", "lstm", "lstm_gate_blocks"]

# Ba et al. give no epsilon; this is PyTorch's ``nn.LayerNorm`` default.
LAYER_NORM_EPS = 1e-5


class LSTMState(NamedTuple):
    """LSTM state: hidden output ``h [*batch, H]`` (``[*batch, P]`` with ``proj_size=P``)
    and cell state ``c [*batch, H]``."""

    h: Array
    c: Array


class FGRState(NamedTuple):
    """State of an LSTM with full gate recurrence (Greff et al. 2017, FGR).

    Attributes:
      h: hidden output ``[*batch, H]`` (``[*batch, P]`` with ``proj_size=P``).
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
      w_h: recurrent kernel ``[H, G*H]`` (``[P, G*H]`` with ``proj_size=P``).
      b: bias ``[G*H]`` (one bias; PyTorch's two add up to it; with ``layer_norm`` it also
        holds Ba et al.'s shifts beta_1 and beta_2, which only ever add to it).
      p: diagonal peephole weights ``[k, H]``, one row per sigmoid gate, or None.
      w_gates: full-gate-recurrence kernel ``[k*H, k*H]`` or None. Block (s, t), rows
        ``s*H:(s+1)*H`` and columns ``t*H:(t+1)*H``, carries gate s's previous activation
        into gate t's pre-activation: for the vanilla FGR these are Greff's 9 extra matrices.
      w_hr: projection ``[H, P]`` (``proj_size=P``; PyTorch's ``weight_hr`` transposed), or
        None.
      ln_h_gain: layer-norm gain alpha_1 ``[G*H]`` of the recurrent term ``h_{t-1} W_h``
        (``layer_norm=True``), or None.
      ln_x_gain: layer-norm gain alpha_2 ``[G*H]`` of the input term ``x W_x``, or None.
      ln_c_gain: layer-norm gain alpha_3 ``[H]`` of the cell state in the output, or None.
      ln_c_shift: layer-norm shift beta_3 ``[H]`` of the cell state in the output, or None.
    """

    w_x: Array
    w_h: Array
    b: Array
    p: Array | None = None
    w_gates: Array | None = None
    w_hr: Array | None = None
    ln_h_gain: Array | None = None
    ln_x_gain: Array | None = None
    ln_c_gain: Array | None = None
    ln_c_shift: Array | None = None


def lstm_gate_blocks(
    coupled: bool, input_gate: bool, forget_gate: bool, output_gate: bool
) -> tuple[str, ...]:
    """The gate blocks an LSTM's params hold, in the order i, f, g, o.

    A gate has no block when it is absent (NIG, NFG, NOG) or, for the input gate, derived
    (CIFG, ``i = 1 - f``); g is always there.
    """
    present = {"i": input_gate and not coupled, "f": forget_gate, "g": True, "o": output_gate}
    return tuple(name for name in ("i", "f", "g", "o") if present[name])


@dataclasses.dataclass(frozen=True)
class LSTMOptions:
    r"""What an LSTM cell is: its size and every option of :func:`lstm`, validated.

    Attributes:
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
        but the forget bias, zero peepholes) or "chrono" (Tallec & Ollivier 2018:
        ``b_f ~ log U[1, t_max-1]`` per unit, ``b_i = -b_f``; replaces ``forget_bias``).
      t_max: the longest dependency expected; required by ``init="chrono"``.
      proj_size: ``P``, LSTMP's projection (Sak et al. 2014): ``h_t = (o ⊙ tanh(c_t)) W_hr``
        with ``w_hr [H, P]``; the output, the state's ``h`` and the recurrent kernel's rows
        are ``P``. None: no projection. PyTorch ``nn.LSTM(proj_size=P)`` computes the same
        (:func:`lstmx.convert.from_torch_lstm` with ``weight_hr``).
      cell_clip: clip ``c_t`` to ``[-cell_clip, cell_clip]`` right after its update, as TF1's
        ``LSTMCell(cell_clip=...)``: the clipped value is carried and read by the output
        gate's peephole and the output non-linearity. None: no clipping.
      proj_clip: clip the projected ``h_t`` to ``[-proj_clip, proj_clip]`` (TF1's
        ``proj_clip``); needs ``proj_size``.
      layer_norm: the layer-normalised LSTM of Ba et al. 2016 (eq. 20-22):
        ``z = LN(h_{t-1} W_h; α1) + LN(x W_x; α2) + b`` and
        ``h_t = o ⊙ tanh(LN(c_t; α3, β3))``, each LN over all ``G*H`` pre-activations of
        its term (``H`` for ``c_t``), biased variance, epsilon 1e-5 (PyTorch's, as Ba et al.
        give none). Gains start at 1, shifts at 0. The carried ``c_t`` is not normalised
        (the normalised copy only feeds the output; the output gate's peephole reads the
        raw ``c_t``). Ba's shifts β1, β2 only ever add to ``b``, so ``b`` holds their sum.
        This differs from TF1's ``LayerNormBasicLSTMCell`` and TF-Addons'
        ``LayerNormLSTMCell``, which normalise each gate's pre-activation separately
        (statistics over ``H`` units, one gain/shift per gate, after summing the two terms),
        and from PyTorch's ``benchmarks/fastrnns/custom_lstms.py``, which carries the
        normalised ``c``.
    """

    hidden_size: int
    peephole: bool = False
    coupled: bool = False
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    full_gate_recurrence: bool = False
    forget_bias: float = 1.0
    init: str = "default"
    t_max: int | None = None
    proj_size: int | None = None
    cell_clip: float | None = None
    proj_clip: float | None = None
    layer_norm: bool = False

    def __post_init__(self):
        _checks.positive_int("hidden_size", self.hidden_size)
        for field in dataclasses.fields(self):
            if field.type == "bool":
                base.check_bool(field.name, getattr(self, field.name))
        _checks.finite_number("forget_bias", self.forget_bias, "e.g. 1.0")
        base.check_init(self.init, self.t_max)
        if self.coupled and not self.input_gate:
            raise ValueError(
                "coupled=True defines the input gate as 1 - f; it needs input_gate=True."
            )
        if self.coupled and not self.forget_gate:
            raise ValueError("coupled=True defines i = 1 - f; it needs forget_gate=True.")
        if self.init == "chrono" and not self.forget_gate:
            raise ValueError('init="chrono" sets the forget-gate bias; it needs forget_gate=True.')
        if self.proj_size is not None:
            _checks.positive_int("proj_size", self.proj_size)
        for name in ("cell_clip", "proj_clip"):
            value = getattr(self, name)
            if value is None:
                continue
            _checks.finite_number(name, value, f"> 0 to clip to [-{name}, {name}], or None")
            if not value > 0:
                raise ValueError(f"{name} must be > 0 (clip to [-{name}, {name}]), got {value}.")
        if self.proj_clip is not None and self.proj_size is None:
            raise ValueError(
                "proj_clip clips the projected output; it needs proj_size (got proj_size=None)."
            )

    @property
    def h_size(self) -> int:
        """The width of ``h`` (state and output): ``proj_size`` if set, else ``hidden_size``."""
        return self.hidden_size if self.proj_size is None else self.proj_size

    @property
    def blocks(self) -> tuple[str, ...]:
        """The gate blocks of the kernels, in the order i, f, g, o (:func:`lstm_gate_blocks`)."""
        return lstm_gate_blocks(self.coupled, self.input_gate, self.forget_gate, self.output_gate)

    @property
    def sigmoid_gates(self) -> tuple[str, ...]:
        """Sigmoid gates with weights, in the order i, f, o (rows of ``p``, ``w_gates`` blocks)."""
        return tuple(name for name in self.blocks if name != "g")

    family = "lstm"

    def parameter_roles(self) -> dict[str, str]:
        """``{LSTMParams field: its role}``, for :func:`lstmx.describe`."""
        H, blocks, sigmoid_gates = self.hidden_size, self.blocks, self.sigmoid_gates
        k = len(sigmoid_gates)
        gates = f"gate blocks {base.blocks_text(blocks)}"
        previous = [name for name in sigmoid_gates if name != "o"]
        sees = "s" * (len(previous) == 1)
        seen = [f"{', '.join(previous)} see{sees} c_{{t-1}}"] * bool(previous)
        seen += ["o sees the new c_t"] * ("o" in sigmoid_gates)
        peephole = f"; {', '.join(seen)}" if seen else ""
        gate_rows = base.blocks_text(sigmoid_gates)
        return {
            "w_x": f"input kernel W_x: x_t → {gates}, {H} columns each{self._missing_gates()}",
            "w_h": f"recurrent kernel W_h: h_{{t-1}} → {gates}",
            "b": f"bias b of {gates}" + ("; holds the LN shifts β1 + β2" * self.layer_norm),
            "p": f"diagonal peephole weights, one row per sigmoid gate {gate_rows}{peephole}",
            "w_gates": (
                f"full gate recurrence (Greff FGR): previous activations of {gate_rows} → "
                f"their pre-activations, {k}×{k} blocks of {H}×{H}"
            ),
            "w_hr": f"projection W_hr (LSTMP): o ⊙ tanh(c_t) [{H}] → h_t [{self.proj_size}]",
            "ln_h_gain": f"layer-norm gain α1 of h_{{t-1}} W_h, over all {gates}",
            "ln_x_gain": f"layer-norm gain α2 of x_t W_x, over all {gates}",
            "ln_c_gain": "layer-norm gain α3 of c_t in h_t = o ⊙ tanh(LN(c_t))",
            "ln_c_shift": "layer-norm shift β3 of c_t in h_t = o ⊙ tanh(LN(c_t))",
        }

    def _missing_gates(self) -> str:
        """The ablations, as they read in the input kernel's role ("; f = 1, ...")."""
        notes = []
        if self.coupled:
            notes.append("i = 1 − f (coupled)")
        elif not self.input_gate:
            notes.append("i = 1")
        if not self.forget_gate:
            notes.append("f = 1")
        if not self.output_gate:
            notes.append("o = 1")
        if not self.input_activation:
            notes.append("g = z_g (no tanh)")
        if not self.output_activation:
            notes.append("h = o ⊙ c (no tanh)")
        return f"; {', '.join(notes)}" if notes else ""

    def matmul_flops(self, input_size: int) -> int:
        """``2 (I G H + P_h G H + [FGR] (k H)^2 + [LSTMP] H P)`` per step and example."""
        H, G, k = self.hidden_size, len(self.blocks), len(self.sigmoid_gates)
        entries = (input_size + self.h_size) * G * H
        entries += (k * H) ** 2 if self.full_gate_recurrence else 0
        entries += H * self.proj_size if self.proj_size is not None else 0
        return 2 * entries


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
    proj_size: int | None = None,
    cell_clip: float | None = None,
    proj_clip: float | None = None,
    layer_norm: bool = False,
) -> base.Cell:
    r"""Long short-term memory cell with every ablation of Greff et al. 2017 as an option.

    The equations are in this module's docstring; the options are those of
    :class:`LSTMOptions`, which the returned cell carries as ``cell.options``.

    Returns:
      A :class:`lstmx.Cell` with :class:`LSTMParams` and :class:`LSTMState`
      (:class:`FGRState` with full gate recurrence). Its ``output_size`` is ``proj_size``
      when set, else ``hidden_size``. Every option, the new ``proj_size``, ``cell_clip``,
      ``proj_clip`` and ``layer_norm`` included, runs on the fast path (:func:`lstmx.scan`),
      with a hand-written backward (:mod:`lstmx.cells.lstm_backward`) where it applies.
    """
    options = LSTMOptions(
        hidden_size,
        peephole=peephole,
        coupled=coupled,
        input_gate=input_gate,
        forget_gate=forget_gate,
        output_gate=output_gate,
        input_activation=input_activation,
        output_activation=output_activation,
        full_gate_recurrence=full_gate_recurrence,
        forget_bias=forget_bias,
        init=init,
        t_max=t_max,
        proj_size=proj_size,
        cell_clip=cell_clip,
        proj_clip=proj_clip,
        layer_norm=layer_norm,
    )
    hand = None
    if lstm_backward.supported(options):
        hand = lstm_backward.hand_backward(options, partial(forward, options))
    fast_scan = base.fused_scan(options, project_inputs, pointwise, hand)
    return base.make_cell(
        options, init_params, initial_state, gated_step, fast_scan, output_size=options.h_size
    )


def init_params(
    options: LSTMOptions, key: Array, input_size: int, dtype: Any = jnp.float32
) -> LSTMParams:
    """Initial params (see :class:`LSTMOptions` ``init``)."""
    H, blocks = options.hidden_size, options.blocks
    G, k = len(blocks), len(options.sigmoid_gates)
    key_x, key_h, key_b, key_g, key_r = jax.random.split(key, 5)
    w_x = base.input_kernel(key_x, input_size, G * H, dtype)
    w_h = base.orthogonal_blocks(key_h, options.h_size, H, G, dtype)
    bias = {name: jnp.zeros((H,), dtype) for name in blocks}
    if options.init == "chrono":
        bias["f"] = base.chrono_bias(key_b, H, options.t_max, dtype)
        if "i" in blocks:
            bias["i"] = -bias["f"]
    elif options.forget_gate:
        bias["f"] = jnp.full((H,), options.forget_bias, dtype)
    b = jnp.concatenate([bias[name] for name in blocks])
    p = jnp.zeros((k, H), dtype) if options.peephole else None
    w_gates = None
    if options.full_gate_recurrence:
        w_gates = base.lecun_normal(key_g, (k * H, k * H), dtype)
    w_hr = None
    if options.proj_size is not None:
        w_hr = base.lecun_normal(key_r, (H, options.proj_size), dtype)
    ln_params = {}
    if options.layer_norm:
        ln_params = {
            "ln_h_gain": jnp.ones((G * H,), dtype),
            "ln_x_gain": jnp.ones((G * H,), dtype),
            "ln_c_gain": jnp.ones((H,), dtype),
            "ln_c_shift": jnp.zeros((H,), dtype),
        }
    return LSTMParams(w_x, w_h, b, p, w_gates, w_hr, **ln_params)


def initial_state(
    options: LSTMOptions, batch_shape: Sequence[int] = (), dtype: Any = jnp.float32
) -> LSTMState | FGRState:
    """Zeros: ``LSTMState(h, c)``, or ``FGRState(h, c, gates)`` with full gate recurrence."""
    batch_shape = _checks.batch_shape(batch_shape)
    zeros = jnp.zeros((*batch_shape, options.hidden_size), dtype)
    h = jnp.zeros((*batch_shape, options.h_size), dtype)
    if options.full_gate_recurrence:
        k = len(options.sigmoid_gates)
        return FGRState(h, zeros, jnp.zeros((*batch_shape, k * options.hidden_size), dtype))
    return LSTMState(h, zeros)


def check_params(options: LSTMOptions, params: Any) -> None:
    """Refuses params that are not this cell's, naming the field and the shapes."""
    H, G, k = options.hidden_size, len(options.blocks), len(options.sigmoid_gates)
    base.check_kernels(params, LSTMParams, G * H, options.h_size)
    _checks.array_shape("params.b", params.b, (G * H,))
    if options.peephole:
        _checks.array_shape("params.p", params.p, (k, H))
    elif params.p is not None:
        raise ValueError("params.p holds peephole weights but this cell has peephole=False.")
    if options.full_gate_recurrence:
        _checks.array_shape("params.w_gates", params.w_gates, (k * H, k * H))
    elif params.w_gates is not None:
        raise ValueError("params.w_gates is set but this cell has full_gate_recurrence=False.")
    if options.proj_size is not None:
        _checks.array_shape("params.w_hr", params.w_hr, (H, options.proj_size))
    elif params.w_hr is not None:
        raise ValueError("params.w_hr holds a projection but this cell has proj_size=None.")
    layer_norm_shapes = {
        "ln_h_gain": (G * H,),
        "ln_x_gain": (G * H,),
        "ln_c_gain": (H,),
        "ln_c_shift": (H,),
    }
    for name, shape in layer_norm_shapes.items():
        if options.layer_norm:
            _checks.array_shape(f"params.{name}", getattr(params, name), shape)
        elif getattr(params, name) is not None:
            raise ValueError(f"params.{name} is set but this cell has layer_norm=False.")


def layer_norm(z: Array, gain: Array, shift: Array | None = None) -> Array:
    """``(z - mean) / sqrt(var + eps) * gain (+ shift)`` over the last axis (biased var)."""
    mean = jnp.mean(z, axis=-1, keepdims=True)
    centred = z - mean
    var = jnp.mean(centred * centred, axis=-1, keepdims=True)
    out = centred * lax.rsqrt(var + LAYER_NORM_EPS) * jnp.broadcast_to(gain, z.shape)
    return out if shift is None else out + jnp.broadcast_to(shift, z.shape)


def project_inputs(options: LSTMOptions, params: LSTMParams, x: Array) -> Array:
    """The part of the pre-activations that reads only the input: ``x W_x + b [..., G*H]``,
    or ``LN(x W_x; α2) + b`` with ``layer_norm``."""
    if not options.layer_norm:
        return base.affine(x, params.w_x, params.b)
    z = layer_norm(x @ params.w_x, params.ln_x_gain)
    return z + jnp.broadcast_to(params.b, z.shape)


def gated_step(
    options: LSTMOptions,
    params: LSTMParams,
    state: Any,
    x: Array,
    candidate_mask: Array | None = None,
) -> tuple[Any, Array, dict[str, Array]]:
    """One step that also returns the gate activations ``{name: [*batch, H]}``.

    The gates are the sigmoid gates with weights (``i``, ``f``, ``o``; CIFG's ``i = 1 - f``
    and the constant gates of NIG, NFG, NOG are left out) and the block input
    ``g = tanh(z_g)`` (not for NIAF, whose ``g`` is a plain pre-activation).

    ``candidate_mask [*batch, H]``, if given, multiplies ``g`` where it enters the cell
    state, ``c = f ⊙ c_{t-1} + i ⊙ (m ⊙ g)``: Semeniuta et al. 2016's recurrent dropout,
    drawn by :func:`lstmx.regularized`.
    """
    check_params(options, params)
    state_type = FGRState if options.full_gate_recurrence else LSTMState
    x = base.check_step(state, state_type, options.hidden_size, x, params, h_size=options.h_size)
    x_proj = project_inputs(options, params, x)
    return pointwise(options, params, state, x_proj, state.h @ params.w_h, candidate_mask)


def forward(
    options: LSTMOptions,
    params: LSTMParams,
    state: LSTMState | FGRState,
    x_proj: Array,
    hh: Array,
    candidate_mask: Array | None = None,
) -> tuple[LSTMState | FGRState, Array, lstm_backward.Saved]:
    """Everything after the recurrent GEMM ``hh = h_{t-1} W_h``: the equations above, the
    only place they are written.

    Returns the new state, the output and a :class:`~lstmx.cells.lstm_backward.Saved`
    (the post-activation gates, ``c_t`` and the output activation of ``c_t``), which the
    fast path's hand-written backward reads. Reads neither ``w_x`` nor ``w_h`` (the fast path's
    contract); with ``layer_norm`` it normalises ``hh`` here (``x_proj`` comes normalised
    from :func:`project_inputs`). ``candidate_mask`` as in :func:`gated_step`.
    """
    blocks, sigmoid_gates = options.blocks, options.sigmoid_gates
    row = lstm_backward.broadcast_row

    def split(a: Array) -> dict[str, Array]:
        return dict(zip(blocks, jnp.split(a, len(blocks), axis=-1), strict=True))

    if options.layer_norm:
        hh = layer_norm(hh, params.ln_h_gain)
    pre = split(x_proj + hh)
    if options.full_gate_recurrence:
        from_gates = jnp.split(state.gates @ params.w_gates, len(sigmoid_gates), axis=-1)
        for name, extra in zip(sigmoid_gates, from_gates, strict=True):
            pre[name] = pre[name] + extra
    if options.peephole:
        for index, name in enumerate(sigmoid_gates):
            if name != "o":  # the output gate's peephole sees the new cell state, below
                pre[name] = pre[name] + row(params.p[index], state.c) * state.c
    peephole_o = options.peephole and options.output_gate
    now = [name for name in sigmoid_gates if name in pre and not (name == "o" and peephole_o)]
    gates = {name: base.sigmoid(pre[name]) for name in now}
    gates["g"] = jnp.tanh(pre["g"]) if options.input_activation else pre["g"]
    f = gates.get("f")
    i = gates.get("i", 1.0 - f if options.coupled else None)
    g = gates["g"] if candidate_mask is None else candidate_mask * gates["g"]
    c = (state.c if f is None else f * state.c) + (g if i is None else i * g)
    if options.cell_clip is not None:
        c = jnp.clip(c, -options.cell_clip, options.cell_clip)
    c_out = layer_norm(c, params.ln_c_gain, params.ln_c_shift) if options.layer_norm else c
    c_out = jnp.tanh(c_out) if options.output_activation else c_out
    h = c_out
    if options.output_gate:
        if peephole_o:
            pre_o = pre["o"] + row(params.p[len(sigmoid_gates) - 1], c) * c
            gates["o"] = base.sigmoid(pre_o)
        h = gates["o"] * c_out
    if options.proj_size is not None:
        h = h @ params.w_hr
        if options.proj_clip is not None:
            h = jnp.clip(h, -options.proj_clip, options.proj_clip)
    keep_c = c if (peephole_o or options.cell_clip is not None) else None
    in_order = jnp.concatenate([gates[name] for name in blocks], axis=-1)
    saved = lstm_backward.Saved(in_order, keep_c, c_out)
    if options.full_gate_recurrence:
        activations = {"i": i, "f": f, "o": gates.get("o")}
        recurrent = jnp.concatenate([activations[name] for name in sigmoid_gates], axis=-1)
        return FGRState(h, c, recurrent), h, saved
    return LSTMState(h, c), h, saved


def pointwise(
    options: LSTMOptions,
    params: LSTMParams,
    state: LSTMState | FGRState,
    x_proj: Array,
    hh: Array,
    candidate_mask: Array | None = None,
) -> tuple[LSTMState | FGRState, Array, dict[str, Array]]:
    """:func:`forward` with its gates by name ``{name: [*batch, H]}`` in place of the saved
    values: the sigmoid gates with weights and ``g = tanh(z_g)`` (not NIAF's linear ``g``)."""
    new_state, h, saved = forward(options, params, state, x_proj, hh, candidate_mask)
    gates = dict(zip(options.blocks, jnp.split(saved.gates, len(options.blocks), axis=-1)))
    if not options.input_activation:
        del gates["g"]
    return new_state, h, gates
