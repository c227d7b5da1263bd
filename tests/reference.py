"""Plain NumPy float64 reference for the lstmx cells, written from the equations.

This module is deliberately independent of ``lstmx``: it is written straight from the
maths of the README's "The cells" (the papers' equations) and Greff et al. 2017, "LSTM: A
Search Space Odyssey", for clarity rather than speed. Every gate is sliced out by name,
the sigmoid is ``1 / (1 + exp(-x))``, and time is a Python loop.

Weights are plain dicts of NumPy arrays whose keys are the lstmx parameter field names:

* LSTM: ``w_x [I, G*H]``, ``w_h [H, G*H]``, ``b [G*H]``, ``p [k, H]`` or None,
  ``w_gates [k*H, k*H]`` or None. The G column blocks are the *present* blocks among
  ``i, f, g, o`` (in that order); the k rows of ``p`` and the k blocks of ``w_gates`` are
  the present sigmoid gates among ``i, f, o`` (in that order).
* GRU: ``w_x [I, 3H]``, ``w_h [H, 3H]``, ``b_x [3H]``, ``b_h [3H]``, blocks ``r, z, n``.
* Elman RNN: ``w_x [I, H]``, ``w_h [H, H]``, ``b [H]``.

States are dicts with the lstmx state field names: ``h`` and ``c`` for the LSTM (plus
``gates [*batch, k*H]`` with full gate recurrence), ``h`` for the GRU and the RNN.

Inputs ``xs`` are ``[*batch, T, I]`` (time on the second-last axis, any number of leading
batch axes, including none); outputs are ``[*batch, T, H]``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

# --------------------------------------------------------------------------------------
# Specs: which cell, with which options.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LSTMSpec:
    """Options of ``lstmx.lstm`` that change the forward equations (same keyword names)."""

    peephole: bool = False
    coupled: bool = False
    input_gate: bool = True
    forget_gate: bool = True
    output_gate: bool = True
    input_activation: bool = True
    output_activation: bool = True
    full_gate_recurrence: bool = False

    def kwargs(self) -> dict[str, bool]:
        """Keyword arguments for ``lstmx.lstm``."""
        return dataclasses.asdict(self)

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


Spec = LSTMSpec | GRUSpec | RNNSpec

# Named variants, from the brief and Greff et al. 2017: every ablation applies to their
# vanilla V, which is the peephole LSTM. CIFG also keeps V's peepholes.
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
}


# --------------------------------------------------------------------------------------
# Shapes and random weights.
# --------------------------------------------------------------------------------------


def param_shapes(spec: Spec, input_size: int, hidden_size: int) -> dict[str, tuple | None]:
    """Expected parameter shapes (None for an absent optional field)."""
    D, H = input_size, hidden_size
    if isinstance(spec, LSTMSpec):
        G = len(spec.blocks)
        k = len(spec.sigmoid_gates)
        return {
            "w_x": (D, G * H),
            "w_h": (H, G * H),
            "b": (G * H,),
            "p": (k, H) if spec.peephole else None,
            "w_gates": (k * H, k * H) if spec.full_gate_recurrence else None,
            # LSTMP and layer-norm fields (tests/test_lstm_options.py covers them).
            "w_hr": None,
            "ln_h_gain": None,
            "ln_x_gain": None,
            "ln_c_gain": None,
            "ln_c_shift": None,
        }
    if isinstance(spec, GRUSpec):
        return {"w_x": (D, 3 * H), "w_h": (H, 3 * H), "b_x": (3 * H,), "b_h": (3 * H,)}
    if isinstance(spec, RNNSpec):
        return {"w_x": (D, H), "w_h": (H, H), "b": (H,)}
    raise TypeError(f"unknown spec {spec!r}")


def state_shapes(spec: Spec, batch_shape: tuple, hidden_size: int) -> dict[str, tuple]:
    """Expected state shapes for a batch shape."""
    H = hidden_size
    if isinstance(spec, LSTMSpec):
        shapes = {"h": (*batch_shape, H), "c": (*batch_shape, H)}
        if spec.full_gate_recurrence:
            shapes["gates"] = (*batch_shape, len(spec.sigmoid_gates) * H)
        return shapes
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
    """A random non-zero state; FGR gate activations are drawn in (0, 1) like real gates."""
    state = {}
    for name, shape in state_shapes(spec, batch_shape, hidden_size).items():
        if name == "gates":
            value = rng.uniform(0.05, 0.95, shape)
        else:
            value = 0.5 * rng.standard_normal(shape)
        state[name] = value.astype(np.float32).astype(np.float64)
    return state


def zero_state(spec: Spec, batch_shape: tuple, hidden_size: int) -> dict[str, np.ndarray]:
    return {k: np.zeros(s) for k, s in state_shapes(spec, batch_shape, hidden_size).items()}


# --------------------------------------------------------------------------------------
# The cells, one step at a time.
# --------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


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
    """
    h_prev, c_prev = state["h"], state["c"]
    H = h_prev.shape[-1]
    x = np.asarray(x, np.float64)

    # Pre-activations, one named [*, H] block per present gate.
    pre = {}
    for index, name in enumerate(spec.blocks):
        W_x = w["w_x"][:, index * H : (index + 1) * H]
        W_h = w["w_h"][:, index * H : (index + 1) * H]
        b = w["b"][index * H : (index + 1) * H]
        pre[name] = x @ W_x + h_prev @ W_h + b

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

    h = o * np.tanh(c) if spec.output_activation else o * c

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


def reference_step(spec: Spec, weights, state, x) -> dict[str, np.ndarray]:
    """One step of any cell; the output y is the new h."""
    if isinstance(spec, LSTMSpec):
        return lstm_step(spec, weights, state, x)
    if isinstance(spec, GRUSpec):
        return gru_step(spec, weights, state, x)
    if isinstance(spec, RNNSpec):
        return rnn_step(spec, weights, state, x)
    raise TypeError(f"unknown spec {spec!r}")


def reference_run(
    spec: Spec,
    weights: Mapping[str, np.ndarray | None],
    xs: np.ndarray,
    state: Mapping[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Runs a cell over a sequence in float64.

    Args:
      spec: which cell (LSTMSpec, GRUSpec or RNNSpec).
      weights: dict of parameter arrays (see module docstring).
      xs: inputs [*batch, T, I].
      state: initial state dict; zeros when None.

    Returns:
      (ys [*batch, T, H], final state dict).
    """
    xs = np.asarray(xs, np.float64)
    weights = {k: None if v is None else np.asarray(v, np.float64) for k, v in weights.items()}
    batch_shape = xs.shape[:-2]
    H = weights["w_h"].shape[0]
    if state is None:
        state = zero_state(spec, batch_shape, H)
    state = {k: np.asarray(v, np.float64) for k, v in state.items()}
    ys = []
    for t in range(xs.shape[-2]):
        state = reference_step(spec, weights, state, xs[..., t, :])
        ys.append(state["h"])
    return np.stack(ys, axis=-2), state
