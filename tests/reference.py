"""Plain NumPy float64 reference for the lstmx cells, written from the equations.

This module is deliberately independent of ``lstmx``: it is written straight from the
maths of the README's "The cells" (the papers' equations) and Greff et al. 2017, "LSTM: A
Search Space Odyssey", for clarity rather than speed. The other families follow their
papers: LSTMP (Sak et al. 2014), the layer-norm LSTM (Ba et al. 2016, eq. 20-22), JANET
(van der Westhuizen & Lasenby 2018), the MGU (Zhou et al. 2016, in Flax's ``MGUCell``
form), IndRNN (Li et al. 2018), minGRU / minLSTM (Feng et al. 2024) and the sLSTM of
xLSTM (Beck et al. 2024, the stabilised form). Every gate is sliced out by name,
the sigmoid is ``1 / (1 + exp(-x))``, and time is a Python loop.

Weights are plain dicts of NumPy arrays whose keys are the lstmx parameter field names:

* LSTM: ``w_x [I, G*H]``, ``w_h [H, G*H]``, ``b [G*H]``, ``p [k, H]`` or None,
  ``w_gates [k*H, k*H]`` or None. The G column blocks are the *present* blocks among
  ``i, f, g, o`` (in that order); the k rows of ``p`` and the k blocks of ``w_gates`` are
  the present sigmoid gates among ``i, f, o`` (in that order).
  With a projection (LSTMP, ``proj_size=P``) ``w_h`` is ``[P, G*H]`` and ``w_hr [H, P]``;
  with layer norm, ``ln_h_gain [G*H]``, ``ln_x_gain [G*H]``, ``ln_c_gain [H]``,
  ``ln_c_shift [H]``.
* GRU: ``w_x [I, 3H]``, ``w_h [H, 3H]``, ``b_x [3H]``, ``b_h [3H]``, blocks ``r, z, n``.
* Elman RNN: ``w_x [I, H]``, ``w_h [H, H]``, ``b [H]``.
* JANET: ``w_x [I, 2H]``, ``w_h [H, 2H]``, ``b [2H]``, blocks ``f, c``.
* MGU: ``w_x [I, 2H]``, ``w_h [H, 2H]``, ``b_x [2H]``, blocks ``f, n``, and ``b_hn [H]``
  (None without the reset gate).
* IndRNN: ``w_x [I, H]``, ``u [H]``, ``b [H]``.
* minGRU: ``w_x [I, 2H]``, ``b [2H]``, blocks ``z, h``; minLSTM: ``w_x [I, 3H]``, ``b [3H]``,
  blocks ``f, i, h``.
* sLSTM: ``w_x [I, 4H]``, ``w_h [K, d, 4d]`` (the ``K`` diagonal blocks of the recurrent
  matrix, ``d = H / K``), ``b [4H]``; blocks ``i, f, z, o``, each in head order.

States are dicts with the lstmx state field names: ``h`` and ``c`` for the LSTM (plus
``gates [*batch, k*H]`` with full gate recurrence; ``h`` is ``P`` wide with a projection),
``h, c, n, m`` for the sLSTM, ``h`` for every other cell.

Inputs ``xs`` are ``[*batch, T, I]`` (time on the second-last axis, any number of leading
batch axes, including none); outputs are ``[*batch, T, H]`` (``[*batch, T, P]`` with a
projection).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

# --------------------------------------------------------------------------------------
# Specs: which cell, with which options.
# --------------------------------------------------------------------------------------

#: ``LSTMSpec(proj_size=HALF)``: the ``lstmp`` variant's projection size, ``max(1, H // 2)``.
HALF = "half"


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """Options of ``lstmx.lstm`` that change the forward equations (same keyword names).

    ``proj_size`` is None (no projection), a size ``P``, or :data:`HALF` for
    ``max(1, H // 2)`` (the ``lstmp`` variant), resolved by :meth:`h_size`.
    """

    peephole: bool = False
    coupled: bool = False
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    full_gate_recurrence: bool = False
    proj_size: int | str | None = None
    layer_norm: bool = False

    def kwargs(self, hidden_size: int | None = None) -> dict[str, bool | int | None]:
        """Keyword arguments for ``lstmx.lstm`` (``hidden_size`` resolves ``proj_size=HALF``)."""
        kwargs = dataclasses.asdict(self)
        if self.proj_size == HALF:
            if hidden_size is None:
                raise ValueError("proj_size=HALF needs the hidden size to resolve it")
            kwargs["proj_size"] = self.h_size(hidden_size)
        return kwargs

    def h_size(self, hidden_size: int) -> int:
        """The width of ``h`` (state and output): ``P`` with a projection, else ``H``."""
        if self.proj_size is None:
            return hidden_size
        return max(1, hidden_size // 2) if self.proj_size == HALF else self.proj_size

    @property
    def has_i(self) -> bool:
        """Whether the input gate has its own weights (a column block)."""
        return self.input_gate and not self.coupled

    @property
    def has_f(self) -> bool:
        return self.forget_gate

    @property
    def has_o(self) -> bool:
        return self.output_gate

    @property
    def blocks(self) -> tuple[str, ...]:
        """Names of the column blocks of ``w_x``, ``w_h`` and ``b``, in order."""
        present = {"i": self.has_i, "f": self.has_f, "g": True, "o": self.has_o}
        return tuple(name for name in ("i", "f", "g", "o") if present[name])

    @property
    def sigmoid_gates(self) -> tuple[str, ...]:
        """Present sigmoid gates (rows of ``p``, blocks of ``w_gates`` and of ``gates``)."""
        return tuple(name for name in self.blocks if name != "g")


@dataclasses.dataclass(frozen=True)
class GRUSpec:
    """Options of ``lstmx.gru``."""

    reset_after: bool = True

    def kwargs(self) -> dict[str, bool]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class RNNSpec:
    """Options of ``lstmx.rnn``: the activation, by name ("tanh" or "relu")."""

    activation: str = "tanh"


@dataclasses.dataclass(frozen=True)
class JANETSpec:
    """Options of ``lstmx.janet``: ``beta``, the shift of the write gate ``1 - σ(s - β)``."""

    beta: float = 1.0


@dataclasses.dataclass(frozen=True)
class MGUSpec:
    """Options of ``lstmx.mgu``: whether the gate multiplies the candidate's recurrent term."""

    reset_gate: bool = True


@dataclasses.dataclass(frozen=True)
class IndRNNSpec:
    """Options of ``lstmx.indrnn``: the activation by name, and the bound on ``|u|``."""

    activation: str = "relu"
    recurrent_max: float | None = None


@dataclasses.dataclass(frozen=True)
class MinGRUSpec:
    """``lstmx.min_gru`` (its ``parallel`` option only changes how a sequence is run);
    ``negative``: Grazzi et al.'s transition 2a - 1 in place of a."""

    negative: bool = False


@dataclasses.dataclass(frozen=True)
class MinLSTMSpec:
    """``lstmx.min_lstm``, as :class:`MinGRUSpec`."""

    negative: bool = False


@dataclasses.dataclass(frozen=True)
class SLSTMSpec:
    """Options of ``lstmx.slstm``: the forget gate ("sigmoid" or "exp") and the number of
    heads ``K`` (None: ``gcd(4, H)``, the ``slstm`` variant's rule), see :meth:`heads`."""

    forget_gate: str = "sigmoid"
    num_heads: int | None = None

    def heads(self, hidden_size: int) -> int:
        return math.gcd(4, hidden_size) if self.num_heads is None else self.num_heads


Spec = (
    LSTMSpec
    | GRUSpec
    | RNNSpec
    | JANETSpec
    | MGUSpec
    | IndRNNSpec
    | MinGRUSpec
    | MinLSTMSpec
    | SLSTMSpec
)

# Named variants, from the brief and Greff et al. 2017: every ablation applies to their
# vanilla V, which is the peephole LSTM. CIFG also keeps V's peepholes. LSTMP and the
# layer-norm LSTM are the plain LSTM (no peepholes) with one change each.
VARIANT_SPECS: dict[str, Spec] = {
    "rnn": RNNSpec(),
    "lstm": LSTMSpec(),
    "peephole": LSTMSpec(peephole=True),
    "cifg": LSTMSpec(peephole=True, coupled=True),
    "gru": GRUSpec(reset_after=True),
    "gru_cho": GRUSpec(reset_after=False),
    "nig": LSTMSpec(peephole=True, input_gate=False),
    "nfg": LSTMSpec(peephole=True, forget_gate=False),
    "nog": LSTMSpec(peephole=True, output_gate=False),
    "niaf": LSTMSpec(peephole=True, input_activation=False),
    "noaf": LSTMSpec(peephole=True, output_activation=False),
    "np": LSTMSpec(),
    "fgr": LSTMSpec(peephole=True, full_gate_recurrence=True),
    "janet": JANETSpec(beta=1.0),
    "mgu": MGUSpec(reset_gate=True),
    "indrnn": IndRNNSpec(activation="relu", recurrent_max=None),
    "min_gru": MinGRUSpec(),
    "min_lstm": MinLSTMSpec(),
    "min_gru_neg": MinGRUSpec(negative=True),
    "min_lstm_neg": MinLSTMSpec(negative=True),
    "slstm": SLSTMSpec(forget_gate="sigmoid"),
    "slstm_exp": SLSTMSpec(forget_gate="exp"),
    "lstmp": LSTMSpec(proj_size=HALF),
    "ln_lstm": LSTMSpec(layer_norm=True),
}


# --------------------------------------------------------------------------------------
# Shapes and random weights.
# --------------------------------------------------------------------------------------


def param_shapes(spec: Spec, input_size: int, hidden_size: int) -> dict[str, tuple | None]:
    """Expected parameter shapes (None for an absent optional field), in the order of the
    fields of the cell's params NamedTuple."""
    D, H = input_size, hidden_size
    if isinstance(spec, LSTMSpec):
        G = len(spec.blocks)
        k = len(spec.sigmoid_gates)
        P = spec.h_size(H)
        ln = spec.layer_norm
        return {
            "w_x": (D, G * H),
            "w_h": (P, G * H),
            "b": (G * H,),
            "p": (k, H) if spec.peephole else None,
            "w_gates": (k * H, k * H) if spec.full_gate_recurrence else None,
            "w_hr": (H, P) if spec.proj_size is not None else None,
            "ln_h_gain": (G * H,) if ln else None,
            "ln_x_gain": (G * H,) if ln else None,
            "ln_c_gain": (H,) if ln else None,
            "ln_c_shift": (H,) if ln else None,
        }
    if isinstance(spec, GRUSpec):
        return {"w_x": (D, 3 * H), "w_h": (H, 3 * H), "b_x": (3 * H,), "b_h": (3 * H,)}
    if isinstance(spec, RNNSpec):
        return {"w_x": (D, H), "w_h": (H, H), "b": (H,)}
    if isinstance(spec, JANETSpec):
        return {"w_x": (D, 2 * H), "w_h": (H, 2 * H), "b": (2 * H,)}
    if isinstance(spec, MGUSpec):
        return {
            "w_x": (D, 2 * H),
            "w_h": (H, 2 * H),
            "b_x": (2 * H,),
            "b_hn": (H,) if spec.reset_gate else None,
        }
    if isinstance(spec, IndRNNSpec):
        return {"w_x": (D, H), "u": (H,), "b": (H,)}
    if isinstance(spec, MinGRUSpec):
        return {"w_x": (D, 2 * H), "b": (2 * H,)}
    if isinstance(spec, MinLSTMSpec):
        return {"w_x": (D, 3 * H), "b": (3 * H,)}
    if isinstance(spec, SLSTMSpec):
        K = spec.heads(H)
        d = H // K
        return {"w_x": (D, 4 * H), "w_h": (K, d, 4 * d), "b": (4 * H,)}
    raise TypeError(f"unknown spec {spec!r}")


def state_shapes(spec: Spec, batch_shape: tuple, hidden_size: int) -> dict[str, tuple]:
    """Expected state shapes for a batch shape, in the order of the state's fields."""
    H = hidden_size
    if isinstance(spec, LSTMSpec):
        shapes = {"h": (*batch_shape, spec.h_size(H)), "c": (*batch_shape, H)}
        if spec.full_gate_recurrence:
            shapes["gates"] = (*batch_shape, len(spec.sigmoid_gates) * H)
        return shapes
    if isinstance(spec, SLSTMSpec):
        return {name: (*batch_shape, H) for name in ("h", "c", "n", "m")}
    return {"h": (*batch_shape, H)}


def random_weights(
    spec: Spec, input_size: int, hidden_size: int, rng: np.random.Generator, scale: float = 0.5
) -> dict[str, np.ndarray | None]:
    """Random non-zero weights in every present field (biases and peepholes included).

    Values are rounded to float32 so that a float32 implementation sees exactly the same
    numbers as the float64 reference.
    """
    weights = {}
    for name, shape in param_shapes(spec, input_size, hidden_size).items():
        if shape is None:
            weights[name] = None
        else:
            value = scale * rng.standard_normal(shape)
            weights[name] = value.astype(np.float32).astype(np.float64)
    return weights


def random_state(
    spec: Spec, batch_shape: tuple, hidden_size: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """A random non-zero state; FGR gate activations are drawn in (0, 1) like real gates,
    the sLSTM's normaliser ``n`` in [0.5, 2] (positive, as after any step) and its
    stabiliser ``m`` from N(0, 1)."""
    state = {}
    for name, shape in state_shapes(spec, batch_shape, hidden_size).items():
        if name == "gates":
            value = rng.uniform(0.05, 0.95, shape)
        elif name == "n":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "m":
            value = rng.standard_normal(shape)
        else:
            value = 0.5 * rng.standard_normal(shape)
        state[name] = value.astype(np.float32).astype(np.float64)
    return state


def zero_state(spec: Spec, batch_shape: tuple, hidden_size: int) -> dict[str, np.ndarray]:
    return {k: np.zeros(s) for k, s in state_shapes(spec, batch_shape, hidden_size).items()}


def hidden_size_of(spec: Spec, weights: Mapping[str, np.ndarray | None]) -> int:
    """``H`` from the weights: the bias's length over its number of blocks (``u``'s length
    for the IndRNN)."""
    if isinstance(spec, IndRNNSpec):
        return weights["u"].shape[0]
    if isinstance(spec, GRUSpec):
        return weights["b_x"].shape[0] // 3
    if isinstance(spec, MGUSpec):
        return weights["b_x"].shape[0] // 2
    blocks = {
        LSTMSpec: lambda: len(spec.blocks),
        RNNSpec: lambda: 1,
        JANETSpec: lambda: 2,
        MinGRUSpec: lambda: 2,
        MinLSTMSpec: lambda: 3,
        SLSTMSpec: lambda: 4,
    }[type(spec)]()
    return weights["b"].shape[0] // blocks


# --------------------------------------------------------------------------------------
# The cells, one step at a time.
# --------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log σ(x) = -log(1 + exp(-x))``, without overflow."""
    return -np.logaddexp(0.0, -x)


# Ba et al. 2016 give no epsilon; lstmx documents PyTorch's nn.LayerNorm default.
LAYER_NORM_EPS = 1e-5


def layer_norm(z: np.ndarray, gain: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    """Ba et al.'s layer norm over the last axis: ``(z - μ) / sqrt(σ² + ε) * gain + shift``,
    with the biased variance ``σ² = mean((z - μ)²)``."""
    mu = z.mean(axis=-1, keepdims=True)
    sigma2 = ((z - mu) ** 2).mean(axis=-1, keepdims=True)
    out = (z - mu) / np.sqrt(sigma2 + LAYER_NORM_EPS) * gain
    return out if shift is None else out + shift


def _block(a: np.ndarray, index: int, size: int) -> np.ndarray:
    """The index-th block of `size` entries on the last axis."""
    return a[..., index * size : (index + 1) * size]


def lstm_step(
    spec: LSTMSpec, w: Mapping[str, np.ndarray | None], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One step of the general LSTM.

    i = σ(z_i [+ p_i ⊙ c_prev] [+ FGR_i])   (or 1 without an input gate, 1 - f if coupled)
    f = σ(z_f [+ p_f ⊙ c_prev] [+ FGR_f])   (or 1 without a forget gate)
    g = tanh(z_g)                            (or z_g, NIAF)
    c = f ⊙ c_prev + i ⊙ g
    o = σ(z_o [+ p_o ⊙ c] [+ FGR_o])        (or 1 without an output gate; peephole on NEW c)
    h = o ⊙ tanh(c)                          (or o ⊙ c, NOAF)

    FGR_t = Σ_s a_prev_s W_{s→t}: the previous step's activations of every present
    sigmoid gate s, each through its own [H, H] matrix into every present sigmoid gate t.

    Layer norm (Ba et al. 2016, eq. 20-22): z = LN(h_prev W_h; α1) + LN(x W_x; α2) + b, each
    LN over all G*H pre-activations of its term, and h = o ⊙ tanh(LN(c; α3, β3)); the
    carried c (and the output gate's peephole) is the raw one.
    Projection (LSTMP, Sak et al. 2014): h = (o ⊙ tanh(c)) W_hr, P wide; it is what is
    carried and fed back through W_hr [H, P] and W_h [P, G*H].
    """
    h_prev, c_prev = state["h"], state["c"]
    H = c_prev.shape[-1]
    x = np.asarray(x, np.float64)

    # Pre-activations, one named [*, H] block per present gate.
    from_x = x @ w["w_x"]
    from_h = h_prev @ w["w_h"]
    if spec.layer_norm:
        from_x = layer_norm(from_x, w["ln_x_gain"])
        from_h = layer_norm(from_h, w["ln_h_gain"])
    z = from_x + from_h + w["b"]
    pre = {name: _block(z, index, H) for index, name in enumerate(spec.blocks)}

    gates = spec.sigmoid_gates
    peep = {}
    if spec.peephole:
        for row, name in enumerate(gates):
            peep[name] = w["p"][row]

    if spec.full_gate_recurrence:
        a_prev = {s: _block(state["gates"], si, H) for si, s in enumerate(gates)}
        for ti, t in enumerate(gates):
            for si, s in enumerate(gates):
                W_st = w["w_gates"][si * H : (si + 1) * H, ti * H : (ti + 1) * H]
                pre[t] = pre[t] + a_prev[s] @ W_st

    ones = np.ones_like(c_prev)

    if spec.has_f:
        f_in = pre["f"] + (peep["f"] * c_prev if spec.peephole else 0.0)
        f = sigmoid(f_in)
    else:
        f = ones

    if spec.has_i:
        i_in = pre["i"] + (peep["i"] * c_prev if spec.peephole else 0.0)
        i = sigmoid(i_in)
    elif spec.coupled:
        i = 1.0 - f
    else:
        i = ones

    g = np.tanh(pre["g"]) if spec.input_activation else pre["g"]
    c = f * c_prev + i * g

    if spec.has_o:
        o_in = pre["o"] + (peep["o"] * c if spec.peephole else 0.0)
        o = sigmoid(o_in)
    else:
        o = ones

    c_seen = layer_norm(c, w["ln_c_gain"], w["ln_c_shift"]) if spec.layer_norm else c
    h = o * np.tanh(c_seen) if spec.output_activation else o * c_seen
    if spec.proj_size is not None:
        h = h @ w["w_hr"]

    new_state = {"h": h, "c": c}
    if spec.full_gate_recurrence:
        activations = {"i": i, "f": f, "o": o}
        new_state["gates"] = np.concatenate([activations[name] for name in gates], axis=-1)
    return new_state


def gru_step(
    spec: GRUSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One GRU step (blocks r, z, n).

    r = σ(x W_xr + b_xr + h W_hr + b_hr)
    z = σ(x W_xz + b_xz + h W_hz + b_hz)
    n = tanh(x W_xn + b_xn + r ⊙ (h W_hn + b_hn))      reset_after=True
    n = tanh(x W_xn + b_xn + (r ⊙ h) W_hn + b_hn)      reset_after=False (Cho et al. 2014)
    h_new = (1 - z) ⊙ n + z ⊙ h
    """
    h = state["h"]
    H = h.shape[-1]
    x = np.asarray(x, np.float64)

    def cols(name: str, index: int) -> np.ndarray:
        return w[name][..., index * H : (index + 1) * H]

    W_xr, W_xz, W_xn = cols("w_x", 0), cols("w_x", 1), cols("w_x", 2)
    W_hr, W_hz, W_hn = cols("w_h", 0), cols("w_h", 1), cols("w_h", 2)
    b_xr, b_xz, b_xn = cols("b_x", 0), cols("b_x", 1), cols("b_x", 2)
    b_hr, b_hz, b_hn = cols("b_h", 0), cols("b_h", 1), cols("b_h", 2)

    r = sigmoid(x @ W_xr + b_xr + h @ W_hr + b_hr)
    z = sigmoid(x @ W_xz + b_xz + h @ W_hz + b_hz)
    if spec.reset_after:
        n = np.tanh(x @ W_xn + b_xn + r * (h @ W_hn + b_hn))
    else:
        n = np.tanh(x @ W_xn + b_xn + (r * h) @ W_hn + b_hn)
    return {"h": (1.0 - z) * n + z * h}


_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0)}


def rnn_step(
    spec: RNNSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One Elman RNN step: h = act(x W_x + h W_h + b)."""
    x = np.asarray(x, np.float64)
    act = _ACTIVATIONS[spec.activation]
    return {"h": act(x @ w["w_x"] + state["h"] @ w["w_h"] + w["b"])}


def janet_step(
    spec: JANETSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One JANET step (van der Westhuizen & Lasenby 2018, blocks f, c):

    s = x W_xf + h W_hf + b_f
    c̃ = tanh(x W_xc + h W_hc + b_c)
    c = σ(s) ⊙ h + (1 - σ(s - β)) ⊙ c̃,   h_new = c
    """
    h = state["h"]
    H = h.shape[-1]
    x = np.asarray(x, np.float64)
    s = x @ _block(w["w_x"], 0, H) + h @ _block(w["w_h"], 0, H) + _block(w["b"], 0, H)
    c_tilde = np.tanh(
        x @ _block(w["w_x"], 1, H) + h @ _block(w["w_h"], 1, H) + _block(w["b"], 1, H)
    )
    return {"h": sigmoid(s) * h + (1.0 - sigmoid(s - spec.beta)) * c_tilde}


def mgu_step(
    spec: MGUSpec, w: Mapping[str, np.ndarray | None], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One MGU step (Zhou et al. 2016 in Flax's ``MGUCell`` form, blocks f, n):

    f = σ(x W_xf + b_xf + h W_hf)
    n = tanh(x W_xn + b_xn + f ⊙ (h W_hn + b_hn))     reset_gate=True
    n = tanh(x W_xn + b_xn + h W_hn)                   reset_gate=False
    h_new = (1 - f) ⊙ n + f ⊙ h
    """
    h = state["h"]
    H = h.shape[-1]
    x = np.asarray(x, np.float64)
    f = sigmoid(x @ _block(w["w_x"], 0, H) + _block(w["b_x"], 0, H) + h @ _block(w["w_h"], 0, H))
    recurrent = h @ _block(w["w_h"], 1, H)
    if spec.reset_gate:
        recurrent = f * (recurrent + w["b_hn"])
    n = np.tanh(x @ _block(w["w_x"], 1, H) + _block(w["b_x"], 1, H) + recurrent)
    return {"h": (1.0 - f) * n + f * h}


def indrnn_step(
    spec: IndRNNSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One IndRNN step (Li et al. 2018): h = act(x W_x + u ⊙ h + b), each unit reading only
    its own previous output; with ``recurrent_max``, u clipped to [-max, max] first."""
    x = np.asarray(x, np.float64)
    u = w["u"]
    if spec.recurrent_max is not None:
        u = np.clip(u, -spec.recurrent_max, spec.recurrent_max)
    act = _ACTIVATIONS[spec.activation]
    return {"h": act(x @ w["w_x"] + u * state["h"] + w["b"])}


def min_g(v: np.ndarray) -> np.ndarray:
    """Feng et al.'s positive activation: v + 1/2 for v >= 0, σ(v) below."""
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def min_gru_step(
    spec: MinGRUSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One minGRU step (Feng et al. 2024, blocks z, h): the gate reads x only.

    z = σ(x W_xz + b_z),   h̃ = g(x W_xh + b_h),   h_new = (1 - z) ⊙ h + z ⊙ h̃

    ``negative`` (Grazzi et al. 2025, Mamba's a -> 2a - 1): h_new = (1 - 2z) ⊙ h + z ⊙ h̃.
    """
    h = state["h"]
    H = h.shape[-1]
    k = np.asarray(x, np.float64) @ w["w_x"] + w["b"]
    z, h_tilde = sigmoid(_block(k, 0, H)), min_g(_block(k, 1, H))
    transition = 2.0 * (1.0 - z) - 1.0 if spec.negative else 1.0 - z
    return {"h": transition * h + z * h_tilde}


def min_lstm_step(
    spec: MinLSTMSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One minLSTM step (Feng et al. 2024, blocks f, i, h): the gates read x only.

    f = σ(x W_xf + b_f),   i = σ(x W_xi + b_i),   h̃ = g(x W_xh + b_h)
    h_new = f / (f + i) ⊙ h + i / (f + i) ⊙ h̃

    ``negative`` (Grazzi et al. 2025): h_new = (2 f / (f + i) - 1) ⊙ h + i / (f + i) ⊙ h̃.
    """
    h = state["h"]
    H = h.shape[-1]
    k = np.asarray(x, np.float64) @ w["w_x"] + w["b"]
    f, i, h_tilde = sigmoid(_block(k, 0, H)), sigmoid(_block(k, 1, H)), min_g(_block(k, 2, H))
    transition = f / (f + i)
    if spec.negative:
        transition = 2.0 * transition - 1.0
    return {"h": transition * h + i / (f + i) * h_tilde}


def slstm_step(
    spec: SLSTMSpec, w: Mapping[str, np.ndarray], state: Mapping[str, np.ndarray], x
) -> dict[str, np.ndarray]:
    """One sLSTM step (Beck et al. 2024, xLSTM), in the paper's stabilised form.

    Pre-activations ĩ, f̃, z̃, õ = x W_x + h R + b, with R block-diagonal: head k's
    units ``k*d:(k+1)*d`` of h feed, through ``w_h[k] [d, 4d]``, only head k's units of
    each gate (the columns of w_h[k] are the blocks i, f, z, o of d each). Then

    log f = log σ(f̃) (forget_gate="sigmoid") or f̃ ("exp");   log i = ĩ
    m = max(log f + m_prev, log i)
    i' = exp(log i - m),   f' = exp(log f + m_prev - m)
    c = f' ⊙ c_prev + i' ⊙ tanh(z̃),   n = f' ⊙ n_prev + i',   h = σ(õ) ⊙ c / n

    The paper leaves the start open; where n_prev = 0 (the zero state: no past), m = ĩ
    and nothing is carried (f' c_prev = f' n_prev = 0), per element.
    """
    h_prev, c_prev, n_prev, m_prev = state["h"], state["c"], state["n"], state["m"]
    H = h_prev.shape[-1]
    K = spec.heads(H)
    d = H // K
    x = np.asarray(x, np.float64)
    z = x @ w["w_x"] + w["b"]
    recurrent = np.zeros_like(z)
    for k in range(K):
        head = h_prev[..., k * d : (k + 1) * d] @ w["w_h"][k]  # [*, 4d]: i, f, z, o
        for gate in range(4):
            columns = slice(gate * H + k * d, gate * H + (k + 1) * d)
            recurrent[..., columns] = _block(head, gate, d)
    z = z + recurrent
    i_tilde, f_tilde, z_tilde, o_tilde = (_block(z, gate, H) for gate in range(4))

    log_f = log_sigmoid(f_tilde) if spec.forget_gate == "sigmoid" else f_tilde
    no_past = n_prev == 0
    m = np.where(no_past, i_tilde, np.maximum(log_f + m_prev, i_tilde))
    i = np.exp(i_tilde - m)
    f = np.exp(np.where(no_past, -np.inf, log_f + m_prev - m))
    c = f * c_prev + i * np.tanh(z_tilde)
    n = f * n_prev + i
    return {"h": sigmoid(o_tilde) * c / n, "c": c, "n": n, "m": m}


_STEPS = {
    LSTMSpec: lstm_step,
    GRUSpec: gru_step,
    RNNSpec: rnn_step,
    JANETSpec: janet_step,
    MGUSpec: mgu_step,
    IndRNNSpec: indrnn_step,
    MinGRUSpec: min_gru_step,
    MinLSTMSpec: min_lstm_step,
    SLSTMSpec: slstm_step,
}


def reference_step(spec: Spec, weights, state, x) -> dict[str, np.ndarray]:
    """One step of any cell; the output y is the new h."""
    step = _STEPS.get(type(spec))
    if step is None:
        raise TypeError(f"unknown spec {spec!r}")
    return step(spec, weights, state, x)


def reference_run(
    spec: Spec,
    weights: Mapping[str, np.ndarray | None],
    xs: np.ndarray,
    state: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Runs a cell over a sequence in float64.

    Args:
      spec: which cell (one of the spec classes above).
      weights: dict of parameter arrays (see module docstring).
      xs: inputs [*batch, T, I].
      state: initial state dict; zeros when None.

    Returns:
      (ys [*batch, T, H] (P with a projection), final state dict).
    """
    xs = np.asarray(xs, np.float64)
    weights = {k: None if v is None else np.asarray(v, np.float64) for k, v in weights.items()}
    batch_shape = xs.shape[:-2]
    if state is None:
        state = zero_state(spec, batch_shape, hidden_size_of(spec, weights))
    state = {k: np.asarray(v, np.float64) for k, v in state.items()}
    ys = []
    for t in range(xs.shape[-2]):
        state = reference_step(spec, weights, state, xs[..., t, :])
        ys.append(state["h"])
    return np.stack(ys, axis=-2), state
