r"""Exact weight conversion between lstmx and PyTorch / Flax linen layouts.

Converting only rearranges arrays and dicts (NumPy and JAX); neither ``torch`` nor ``flax``
is imported, so PyTorch weights saved as NumPy arrays load without PyTorch installed.

Layouts (``I`` input size, ``H`` hidden size; lstmx computes ``y = x @ w``):

* PyTorch ``nn.LSTM``: ``weight_ih [4H, I]``, ``weight_hh [4H, H]``, ``bias_ih [4H]``,
  ``bias_hh [4H]``, gate order i, f, g, o, state ``(h, c)``. lstmx:
  ``LSTMParams(w_x [I, 4H], w_h [H, 4H], b [4H])``, same gate order,
  ``LSTMState(h, c)``; ``w_x = weight_ihᵀ``, ``w_h = weight_hhᵀ``,
  ``b = bias_ih + bias_hh``.
* PyTorch ``nn.GRU``: ``weight_ih [3H, I]``, ``weight_hh [3H, H]``, ``bias_ih [3H]``,
  ``bias_hh [3H]``, gate order r, z, n. lstmx: ``GRUParams(w_x [I, 3H], w_h [H, 3H],
  b_x [3H], b_h [3H])``, same gate order; ``b_x = bias_ih``, ``b_h = bias_hh``.

PyTorch computes ``x Wᵀ``, so every kernel is a transpose. The LSTM's two biases only ever
appear summed, so lstmx keeps one; the GRU's ``b_hn`` sits inside the reset product
(``n = tanh(x W_in + b_in + r ⊙ (h W_hn + b_hn))``), so the GRU keeps two, and the
conversion is exact for ``lstmx.gru(H, reset_after=True)`` (the default).

Flax linen ``LSTMCell`` and ``OptimizedLSTMCell`` (same parameter names) hold one ``Dense``
per gate: input kernels ``ii, if, ig, io`` (``kernel [I, H]``, no bias) and hidden
``hi, hf, hg, ho`` (``kernel [H, H]`` and ``bias [H]``). Flax's carry is ``(c, h)``, the
reverse of :class:`lstmx.LSTMState` ``(h, c)``: see :func:`to_flax_carry` and
:func:`from_flax_carry`. Flax ``GRUCell`` holds ``ir, iz, in`` (kernel and bias),
``hr, hz`` (kernel only) and ``hn`` (kernel and bias); it is ``lstmx.gru(H,
reset_after=True)`` with ``b_x = [b_ir, b_iz, b_in]`` and ``b_h = [0, 0, b_hn]``.
Flax ``MGUCell`` holds ``if, in`` (kernel ``[I, H]`` and bias) and ``hf`` (kernel), ``hn``
(kernel, and a bias only with ``reset_gate=True``); it is ``lstmx.mgu(H, reset_gate=...)``
with ``w_x = [if | in]``, ``w_h = [hf | hn]``, ``b_x = [b_if, b_in]``, ``b_hn = hn``'s bias
(:func:`from_flax_mgu`, :func:`to_flax_mgu`); its carry is ``h``.

Example, a 2-layer PyTorch ``nn.LSTM`` (its ``state_dict`` as NumPy arrays) as an lstmx
stack::

    sd = {k: v.numpy() for k, v in torch_lstm.state_dict().items()}
    cell = lstmx.stack([lstmx.lstm(H), lstmx.lstm(H)])
    params = lstmx.StackParams(tuple(
        from_torch_lstm(sd[f"weight_ih_l{k}"], sd[f"weight_hh_l{k}"],
                        sd[f"bias_ih_l{k}"], sd[f"bias_hh_l{k}"])
        for k in range(2)))
    final_state, ys = lstmx.scan(cell, params, xs)   # nn.LSTM(batch_first=True)

PyTorch's ``proj_size`` (``weight_hr [P, H]``) is ``lstmx.lstm(H, proj_size=P)``'s
``w_hr = weight_hrᵀ`` (``from_torch_lstm(..., weight_hr=...)``). lstmx params do not record
which activations a cell uses: ``lstm(H, input_activation=False)`` (NIAF) or
``output_activation=False`` (NOAF) without peepholes have the standard layout, and
converting them is allowed, but PyTorch and Flax would run them as the standard LSTM.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lstmx import _checks
from lstmx.cells import GRUParams, GRUState, LSTMParams, LSTMState, MGUParams, MGUState

Array = jax.Array

__all__ = [
    "from_flax_carry",
    "from_flax_gru",
    "from_flax_lstm",
    "from_flax_mgu",
    "from_torch_gru",
    "from_torch_lstm",
    "to_flax_carry",
    "to_flax_gru",
    "to_flax_lstm",
    "to_flax_mgu",
    "to_torch_gru",
    "to_torch_lstm",
]

_LSTM_GATES = ("i", "f", "g", "o")
_GRU_GATES = ("r", "z", "n")


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _array(name: str, x: Any) -> Any:
    """A floating array (NumPy or JAX; a detached torch tensor is read through NumPy)."""
    if hasattr(x, "detach") and hasattr(x, "numpy"):  # a torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return _checks.float_array(name, x)


def _expect_shape(name: str, x: Any, expected: tuple[int, ...], layout: str) -> None:
    """Like :func:`_checks.array_shape`, naming the layout (``"[4H, H]"``) in the error."""
    try:
        _checks.array_shape(name, x, expected)
    except ValueError as error:
        raise ValueError(f"{error} Expected layout {layout}.") from None


def _torch_weights(
    kind: str,
    num_gates: int,
    weight_ih: Any,
    weight_hh: Any,
    bias_ih: Any,
    bias_hh: Any,
    recurrent_size: int | None = None,
) -> tuple[Any, Any, Any, Any]:
    """Checks PyTorch-layout arrays; returns them with zeros for absent biases.

    ``recurrent_size`` is the number of columns of ``weight_hh`` when it is not ``H``
    (``P`` for an LSTM with ``proj_size=P``).
    """
    G = num_gates
    weight_ih = _array("weight_ih", weight_ih)
    weight_hh = _array("weight_hh", weight_hh)
    if weight_ih.ndim != 2 or weight_ih.shape[0] % G or weight_ih.shape[0] == 0:
        raise ValueError(
            f"weight_ih must be PyTorch's nn.{kind} layout [{G}H, I] (gate blocks stacked on "
            f"the first axis), got shape {tuple(weight_ih.shape)}."
        )
    H = weight_ih.shape[0] // G
    if recurrent_size is None:
        _expect_shape("weight_hh", weight_hh, (G * H, H), f"[{G}H, H] with H={H} from weight_ih")
    else:
        P = recurrent_size
        layout = f"[{G}H, P] with H={H} from weight_ih and P={P} from weight_hr"
        _expect_shape("weight_hh", weight_hh, (G * H, P), layout)
    biases = []
    for name, bias in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if bias is None:  # PyTorch's bias=False
            biases.append(np.zeros((G * H,), weight_ih.dtype))
        else:
            bias = _array(name, bias)
            _expect_shape(name, bias, (G * H,), f"[{G}H] with H={H} from weight_ih")
            biases.append(bias)
    return weight_ih, weight_hh, biases[0], biases[1]


def _check_standard_lstm(params: Any, target: str, allow_projection: bool = False) -> int:
    """Checks that ``params`` are the standard 4-gate LSTM's (with ``w_hr`` [H, P] if
    ``allow_projection``); returns ``H``."""
    _checks.params_type("params", params, LSTMParams)
    why = f"{target} has only the standard LSTM cell (gates i, f, g, o; no peepholes)"
    if params.p is not None:
        raise ValueError(f"params have peephole weights (params.p); {why}.")
    if params.w_gates is not None:
        raise ValueError(f"params have full gate recurrence (params.w_gates); {why}.")
    for name in ("ln_h_gain", "ln_x_gain", "ln_c_gain", "ln_c_shift"):
        if getattr(params, name, None) is not None:
            raise ValueError(f"params have layer normalisation (params.{name}); {why}.")
    if getattr(params.w_h, "ndim", None) != 2:
        _checks.array_shape("params.w_h", params.w_h, ("H", "4H"))
    if params.w_hr is not None:
        if not allow_projection:
            raise ValueError(
                f"params have a projection (params.w_hr, LSTMP); {target} has no proj_size."
            )
        if getattr(params.w_hr, "ndim", None) != 2:
            _checks.array_shape("params.w_hr", params.w_hr, ("H", "P"))
        H, P = params.w_hr.shape
        _checks.array_shape("params.w_h", params.w_h, (P, 4 * H))
        width = 4 * H
    else:
        H, width = params.w_h.shape
    if width != 4 * H:
        raise ValueError(
            f"params.w_h has shape {tuple(params.w_h.shape)}: {width // H if H else 0} gate "
            f"blocks, not 4 (a variant without a gate, e.g. CIFG, NIG, NFG or NOG); {why}."
        )
    if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != 4 * H:
        _checks.array_shape("params.w_x", params.w_x, ("I", 4 * H))
    _checks.array_shape("params.b", params.b, (4 * H,))
    return H


def _check_kernels(params: Any, params_type: type, num_blocks: int) -> int:
    """Checks ``params_type``'s ``w_h [H, num_blocks*H]`` and ``w_x [I, num_blocks*H]``;
    returns ``H``, read from ``w_h``."""
    _checks.params_type("params", params, params_type)
    w_h = params.w_h
    if getattr(w_h, "ndim", None) != 2 or w_h.shape[1] != num_blocks * w_h.shape[0]:
        _checks.array_shape("params.w_h", w_h, ("H", f"{num_blocks}H"))
    H = w_h.shape[0]
    if getattr(params.w_x, "ndim", None) != 2 or params.w_x.shape[1] != num_blocks * H:
        _checks.array_shape("params.w_x", params.w_x, ("I", num_blocks * H))
    return H


def _check_gru(params: Any) -> int:
    """Checks :class:`GRUParams` shapes; returns ``H``."""
    H = _check_kernels(params, GRUParams, 3)
    _checks.array_shape("params.b_x", params.b_x, (3 * H,))
    _checks.array_shape("params.b_h", params.b_h, (3 * H,))
    return H


# --------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------


def from_torch_lstm(
    weight_ih: Any,
    weight_hh: Any,
    bias_ih: Any = None,
    bias_hh: Any = None,
    weight_hr: Any = None,
) -> LSTMParams:
    """PyTorch ``nn.LSTM`` weights (one layer, one direction) to :class:`lstmx.LSTMParams`.

    The result runs with ``lstmx.lstm(H)`` (no peepholes, the default ``forget_bias`` only
    matters at init) and gives PyTorch's outputs: ``w_x = weight_ihᵀ``, ``w_h = weight_hhᵀ``,
    ``b = bias_ih + bias_hh``. With ``weight_hr`` (``nn.LSTM(proj_size=P)``) it runs with
    ``lstmx.lstm(H, proj_size=P)``, ``w_hr = weight_hrᵀ``.

    Args:
      weight_ih: ``[4H, I]``, e.g. ``weight_ih_l0`` (``_reverse`` for the backward
        direction), as a NumPy or JAX array.
      weight_hh: ``[4H, H]`` (``[4H, P]`` with ``weight_hr``).
      bias_ih: ``[4H]``, or None for PyTorch's ``bias=False`` (zeros).
      bias_hh: ``[4H]``, or None.
      weight_hr: ``[P, H]`` (``weight_hr_l0``), or None for no projection.

    Returns:
      ``LSTMParams(w_x [I, 4H], w_h [H, 4H], b [4H])`` as JAX arrays
      (``w_h [P, 4H]`` and ``w_hr [H, P]`` with ``weight_hr``).

    Raises:
      ValueError: on shapes that are not one consistent PyTorch LSTM layer.
      TypeError: on non-arrays or non-floating dtypes.
    """
    proj_size = None
    if weight_hr is not None:
        weight_hr = _array("weight_hr", weight_hr)
        if weight_hr.ndim != 2:
            raise ValueError(
                f"weight_hr must be PyTorch's nn.LSTM(proj_size=P) layout [P, H], got shape "
                f"{tuple(weight_hr.shape)}."
            )
        proj_size = weight_hr.shape[0]
    weight_ih, weight_hh, bias_ih, bias_hh = _torch_weights(
        "LSTM", 4, weight_ih, weight_hh, bias_ih, bias_hh, recurrent_size=proj_size
    )
    w_hr = None
    if weight_hr is not None:
        H = weight_ih.shape[0] // 4
        _expect_shape("weight_hr", weight_hr, (proj_size, H), f"[P, H] with H={H} from weight_ih")
        w_hr = jnp.asarray(weight_hr).T
    return LSTMParams(
        w_x=jnp.asarray(weight_ih).T,
        w_h=jnp.asarray(weight_hh).T,
        b=jnp.asarray(bias_ih) + jnp.asarray(bias_hh),
        w_hr=w_hr,
    )


def to_torch_lstm(params: LSTMParams) -> dict[str, np.ndarray]:
    """:class:`lstmx.LSTMParams` of the standard cell to PyTorch ``nn.LSTM`` arrays.

    PyTorch's two biases only ever appear summed, so putting lstmx's one bias in
    ``bias_ih`` and zeros in ``bias_hh`` is exact. Load into a layer with, e.g.,
    ``lstm.load_state_dict({f"{k}_l0": torch.from_numpy(v) for k, v in out.items()})``.

    Args:
      params: ``LSTMParams(w_x [I, 4H], w_h [H, 4H], b [4H])`` without peepholes,
        full gate recurrence or layer normalisation; with a projection
        (``w_h [P, 4H]``, ``w_hr [H, P]``) for ``nn.LSTM(proj_size=P)``.

    Returns:
      ``{"weight_ih": [4H, I], "weight_hh": [4H, H], "bias_ih": [4H], "bias_hh": [4H]}``
      as contiguous NumPy arrays, plus ``"weight_hr": [P, H]`` (and ``weight_hh [4H, P]``)
      when ``params.w_hr`` is set. The clips of ``lstm(cell_clip=..., proj_clip=...)`` are
      options, not params: PyTorch has no such clipping.

    Raises:
      ValueError: for peephole, full-gate-recurrence, layer-norm or gate-dropping variants,
        which PyTorch's ``nn.LSTM`` (the standard cell only) cannot represent.
      TypeError: if ``params`` is not :class:`lstmx.LSTMParams`.
    """
    _check_standard_lstm(params, "PyTorch's nn.LSTM", allow_projection=True)
    b = np.asarray(params.b)
    out = {
        "weight_ih": np.ascontiguousarray(np.asarray(params.w_x).T),
        "weight_hh": np.ascontiguousarray(np.asarray(params.w_h).T),
        "bias_ih": b.copy(),
        "bias_hh": np.zeros_like(b),
    }
    if params.w_hr is not None:
        out["weight_hr"] = np.ascontiguousarray(np.asarray(params.w_hr).T)
    return out


def from_torch_gru(
    weight_ih: Any, weight_hh: Any, bias_ih: Any = None, bias_hh: Any = None
) -> GRUParams:
    """PyTorch ``nn.GRU`` weights (one layer, one direction) to :class:`lstmx.GRUParams`.

    Exact for ``lstmx.gru(H, reset_after=True)`` (the default): PyTorch also applies the
    reset gate after the recurrent matmul, ``n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))``.

    Args:
      weight_ih: ``[3H, I]``, gate blocks r, z, n.
      weight_hh: ``[3H, H]``.
      bias_ih: ``[3H]``, or None for PyTorch's ``bias=False`` (zeros).
      bias_hh: ``[3H]``, or None.

    Returns:
      ``GRUParams(w_x [I, 3H], w_h [H, 3H], b_x [3H], b_h [3H])`` as JAX arrays.

    Raises:
      ValueError: on shapes that are not one consistent PyTorch GRU layer.
      TypeError: on non-arrays or non-floating dtypes.
    """
    weight_ih, weight_hh, bias_ih, bias_hh = _torch_weights(
        "GRU", 3, weight_ih, weight_hh, bias_ih, bias_hh
    )
    return GRUParams(
        w_x=jnp.asarray(weight_ih).T,
        w_h=jnp.asarray(weight_hh).T,
        b_x=jnp.asarray(bias_ih),
        b_h=jnp.asarray(bias_hh),
    )


def to_torch_gru(params: GRUParams) -> dict[str, np.ndarray]:
    """:class:`lstmx.GRUParams` to PyTorch ``nn.GRU`` arrays (exact for ``reset_after=True``).

    Args:
      params: ``GRUParams(w_x [I, 3H], w_h [H, 3H], b_x [3H], b_h [3H])``.

    Returns:
      ``{"weight_ih": [3H, I], "weight_hh": [3H, H], "bias_ih": [3H], "bias_hh": [3H]}``
      as contiguous NumPy arrays.

    Raises:
      TypeError: if ``params`` is not :class:`lstmx.GRUParams`.
      ValueError: on inconsistent shapes.
    """
    _check_gru(params)
    return {
        "weight_ih": np.ascontiguousarray(np.asarray(params.w_x).T),
        "weight_hh": np.ascontiguousarray(np.asarray(params.w_h).T),
        "bias_ih": np.array(params.b_x),
        "bias_hh": np.array(params.b_h),
    }


# --------------------------------------------------------------------------------------
# Flax linen
# --------------------------------------------------------------------------------------


def _flax_params(variables: Any, cell_name: str, needed: tuple[str, ...]) -> Mapping:
    """The parameter mapping of a Flax cell, with or without the top-level "params" key."""
    if not isinstance(variables, Mapping):
        raise TypeError(
            f"variables must be the Flax {cell_name}'s variables, a dict (or FrozenDict) such "
            f"as cell.init(...) returns, got {type(variables).__name__}."
        )
    tree = variables
    where = "variables"
    if "params" in tree and isinstance(tree["params"], Mapping):
        tree = tree["params"]
        where = "variables['params']"
    missing = [name for name in needed if name not in tree]
    if missing:
        raise ValueError(
            f"{where} must hold the Flax {cell_name} Dense layers {list(needed)}; missing "
            f"{missing}, got keys {sorted(tree)}. Pass the cell's own variables (for a cell "
            "inside a model, the sub-dict under its module name)."
        )
    return tree


def _flax_dense(
    tree: Mapping, name: str, kernel_shape: tuple, bias_shape: tuple | None, layout: str
) -> tuple[Any, Any]:
    """Reads one Flax Dense's ``kernel`` (and ``bias``) and checks their shapes."""
    dense = tree[name]
    if not isinstance(dense, Mapping) or "kernel" not in dense:
        keys = sorted(dense) if isinstance(dense, Mapping) else type(dense).__name__
        raise ValueError(f"Flax Dense {name!r} must hold a 'kernel', got {keys}.")
    kernel = _checks.float_array(f"{name}['kernel']", dense["kernel"])
    _expect_shape(f"{name}['kernel']", kernel, kernel_shape, layout)
    if bias_shape is None:
        if "bias" in dense:  # dropping it would silently change the function
            raise ValueError(
                f"Flax Dense {name!r} has a 'bias', but in the Flax cell this layout comes from "
                "it has none (use_bias=False); these are not that cell's variables."
            )
        return kernel, None
    if "bias" not in dense:
        raise ValueError(f"Flax Dense {name!r} must hold a 'bias' [H], got keys {sorted(dense)}.")
    bias = _checks.float_array(f"{name}['bias']", dense["bias"])
    _expect_shape(f"{name}['bias']", bias, bias_shape, "[H]")
    return kernel, bias


def _input_and_hidden_size(tree: Mapping, first: str) -> tuple[int, int]:
    """``(I, H)`` from the first input Dense's kernel ``[I, H]``."""
    dense = tree[first]
    kernel = dense.get("kernel") if isinstance(dense, Mapping) else None
    if getattr(kernel, "ndim", None) != 2:
        raise ValueError(
            f"Flax Dense {first!r} must hold a 'kernel' of shape [I, H], got "
            f"{getattr(kernel, 'shape', type(kernel).__name__)}."
        )
    return tuple(kernel.shape)


def _flax_gate_denses(
    variables: Any, cell_name: str, gates: tuple[str, ...]
) -> tuple[Mapping, tuple[str, ...], tuple[str, ...], int, int]:
    """A Flax cell's params with an input Dense ``i{gate}`` and a recurrent Dense
    ``h{gate}`` per gate: ``(tree, input Dense names, recurrent Dense names, I, H)``."""
    names_i = tuple(f"i{gate}" for gate in gates)
    names_h = tuple(f"h{gate}" for gate in gates)
    tree = _flax_params(variables, cell_name, names_i + names_h)
    n_in, H = _input_and_hidden_size(tree, names_i[0])
    return tree, names_i, names_h, n_in, H


def from_flax_lstm(variables: Any) -> LSTMParams:
    """Flax linen ``LSTMCell`` / ``OptimizedLSTMCell`` variables to :class:`lstmx.LSTMParams`.

    ``w_x = [ii | if | ig | io]`` kernels, ``w_h = [hi | hf | hg | ho]`` kernels and
    ``b = [b_hi, b_hf, b_hg, b_ho]``. Flax adds no forget bias at run time, so the result
    runs with ``lstmx.lstm(H)`` and gives Flax's outputs; remember that Flax's carry is
    ``(c, h)`` (:func:`from_flax_carry`).

    Args:
      variables: ``cell.init(...)``'s dict (or FrozenDict), with or without the top-level
        ``"params"`` key: ``{"ii": {"kernel": [I, H]}, ..., "hi": {"kernel": [H, H],
        "bias": [H]}, ...}``.

    Returns:
      ``LSTMParams(w_x [I, 4H], w_h [H, 4H], b [4H])``.

    Raises:
      ValueError: if a Dense or array is missing or has an inconsistent shape.
      TypeError: if ``variables`` is not a mapping or an array is not floating.
    """
    tree, names_i, names_h, n_in, H = _flax_gate_denses(variables, "LSTMCell", _LSTM_GATES)
    kernels_i = [
        _flax_dense(tree, n, (n_in, H), None, f"[I, H] = [{n_in}, {H}]")[0] for n in names_i
    ]
    dense_h = [_flax_dense(tree, n, (H, H), (H,), f"[H, H] = [{H}, {H}]") for n in names_h]
    return LSTMParams(
        w_x=jnp.concatenate([jnp.asarray(k) for k in kernels_i], axis=1),
        w_h=jnp.concatenate([jnp.asarray(k) for k, _ in dense_h], axis=1),
        b=jnp.concatenate([jnp.asarray(b) for _, b in dense_h]),
    )


def to_flax_lstm(params: LSTMParams) -> dict[str, dict[str, dict[str, Array]]]:
    """:class:`lstmx.LSTMParams` of the standard cell to Flax ``LSTMCell`` variables.

    The result is ready for ``flax.linen.LSTMCell(H).apply(variables, (c, h), x)`` (or
    ``OptimizedLSTMCell``); lstmx's bias goes to the hidden Dense layers, as Flax has no
    input bias. ``from_flax_lstm(to_flax_lstm(params))`` gives ``params`` back exactly.

    Args:
      params: ``LSTMParams(w_x [I, 4H], w_h [H, 4H], b [4H])`` without peepholes or full
        gate recurrence.

    Returns:
      ``{"params": {"ii": {"kernel": [I, H]}, ..., "hi": {"kernel": [H, H], "bias": [H]},
      ...}}``.

    Raises:
      ValueError: for peephole, full-gate-recurrence or gate-dropping variants.
      TypeError: if ``params`` is not :class:`lstmx.LSTMParams`.
    """
    H = _check_standard_lstm(params, "Flax's LSTMCell")
    tree = {}
    for k, gate in enumerate(_LSTM_GATES):
        cols = slice(k * H, (k + 1) * H)
        tree[f"i{gate}"] = {"kernel": jnp.asarray(params.w_x[:, cols])}
        tree[f"h{gate}"] = {
            "kernel": jnp.asarray(params.w_h[:, cols]),
            "bias": jnp.asarray(params.b[cols]),
        }
    return {"params": tree}


def from_flax_gru(variables: Any) -> GRUParams:
    """Flax linen ``GRUCell`` variables to :class:`lstmx.GRUParams`.

    Flax's GRU, ``n = tanh(in(x) + r ⊙ hn(h))`` and ``h' = (1 - z) ⊙ n + z ⊙ h``, is
    ``lstmx.gru(H, reset_after=True)`` with ``b_x = [b_ir, b_iz, b_in]`` and
    ``b_h = [0, 0, b_hn]``. Flax's GRU carry is ``h`` itself (``GRUState(h)`` in lstmx).

    Args:
      variables: ``cell.init(...)``'s dict (or FrozenDict), with or without the top-level
        ``"params"`` key: ``ir, iz, in`` (kernel ``[I, H]`` and bias ``[H]``), ``hr, hz``
        (kernel ``[H, H]``), ``hn`` (kernel ``[H, H]`` and bias ``[H]``).

    Returns:
      ``GRUParams(w_x [I, 3H], w_h [H, 3H], b_x [3H], b_h [3H])``.

    Raises:
      ValueError: if a Dense or array is missing or has an inconsistent shape.
      TypeError: if ``variables`` is not a mapping or an array is not floating.
    """
    tree, names_i, names_h, n_in, H = _flax_gate_denses(variables, "GRUCell", _GRU_GATES)
    dense_i = [_flax_dense(tree, n, (n_in, H), (H,), f"[I, H] = [{n_in}, {H}]") for n in names_i]
    dense_h = [
        _flax_dense(tree, n, (H, H), (H,) if n == "hn" else None, f"[H, H] = [{H}, {H}]")
        for n in names_h
    ]
    b_hn = jnp.asarray(dense_h[2][1])
    return GRUParams(
        w_x=jnp.concatenate([jnp.asarray(k) for k, _ in dense_i], axis=1),
        w_h=jnp.concatenate([jnp.asarray(k) for k, _ in dense_h], axis=1),
        b_x=jnp.concatenate([jnp.asarray(b) for _, b in dense_i]),
        b_h=jnp.concatenate([jnp.zeros((2 * H,), b_hn.dtype), b_hn]),
    )


def to_flax_gru(params: GRUParams) -> dict[str, dict[str, dict[str, Array]]]:
    """:class:`lstmx.GRUParams` (``reset_after=True``) to Flax ``GRUCell`` variables.

    Flax's ``hr`` and ``hz`` have no bias; lstmx's ``b_hr`` and ``b_hz`` only ever add to
    ``b_xr`` and ``b_xz``, so they are folded into ``ir`` and ``iz``'s biases (exact).
    ``from_flax_gru(to_flax_gru(params))`` is therefore the same function as ``params``,
    with ``b_h``'s first ``2H`` entries moved into ``b_x``.

    Args:
      params: ``GRUParams(w_x [I, 3H], w_h [H, 3H], b_x [3H], b_h [3H])``.

    Returns:
      ``{"params": {"ir": {"kernel", "bias"}, "iz": ..., "in": ..., "hr": {"kernel"},
      "hz": {"kernel"}, "hn": {"kernel", "bias"}}}``.

    Raises:
      TypeError: if ``params`` is not :class:`lstmx.GRUParams`.
      ValueError: on inconsistent shapes.
    """
    H = _check_gru(params)
    tree = {}
    for k, gate in enumerate(_GRU_GATES):
        cols = slice(k * H, (k + 1) * H)
        b_i = params.b_x[cols] if gate == "n" else params.b_x[cols] + params.b_h[cols]
        tree[f"i{gate}"] = {"kernel": jnp.asarray(params.w_x[:, cols]), "bias": jnp.asarray(b_i)}
        tree[f"h{gate}"] = {"kernel": jnp.asarray(params.w_h[:, cols])}
    tree["hn"]["bias"] = jnp.asarray(params.b_h[2 * H :])
    return {"params": tree}


def _check_mgu(params: Any) -> int:
    """Checks :class:`MGUParams` shapes; returns ``H``."""
    H = _check_kernels(params, MGUParams, 2)
    _checks.array_shape("params.b_x", params.b_x, (2 * H,))
    if params.b_hn is not None:
        _checks.array_shape("params.b_hn", params.b_hn, (H,))
    return H


def from_flax_mgu(variables: Any) -> MGUParams:
    """Flax linen ``MGUCell`` variables to :class:`lstmx.MGUParams`.

    Flax's ``f = σ(if(x) + hf(h))``, ``n = tanh(in(x) + f ⊙ hn(h))`` (``reset_gate=True``;
    ``tanh(in(x) + hn(h))`` with ``hn`` bias-free otherwise), ``h' = (1 - f) ⊙ n + f ⊙ h``
    is ``lstmx.mgu(H, reset_gate=...)``; which one is read from whether ``hn`` has a bias,
    and the result has ``b_hn`` None for ``reset_gate=False``.

    Args:
      variables: ``cell.init(...)``'s dict (or FrozenDict), with or without the top-level
        ``"params"`` key: ``if, in`` (kernel ``[I, H]`` and bias ``[H]``), ``hf`` (kernel
        ``[H, H]``), ``hn`` (kernel ``[H, H]``, bias ``[H]`` with ``reset_gate=True``).

    Returns:
      ``MGUParams(w_x [I, 2H], w_h [H, 2H], b_x [2H], b_hn [H] | None)``.

    Raises:
      ValueError: if a Dense or array is missing or has an inconsistent shape.
      TypeError: if ``variables`` is not a mapping or an array is not floating.
    """
    tree, names_i, names_h, n_in, H = _flax_gate_denses(variables, "MGUCell", ("f", "n"))
    dense_i = [_flax_dense(tree, n, (n_in, H), (H,), f"[I, H] = [{n_in}, {H}]") for n in names_i]
    reset_gate = isinstance(tree["hn"], Mapping) and "bias" in tree["hn"]
    dense_h = [
        _flax_dense(
            tree, n, (H, H), (H,) if (n == "hn" and reset_gate) else None, f"[H, H] = [{H}, {H}]"
        )
        for n in names_h
    ]
    return MGUParams(
        w_x=jnp.concatenate([jnp.asarray(k) for k, _ in dense_i], axis=1),
        w_h=jnp.concatenate([jnp.asarray(k) for k, _ in dense_h], axis=1),
        b_x=jnp.concatenate([jnp.asarray(b) for _, b in dense_i]),
        b_hn=jnp.asarray(dense_h[1][1]) if reset_gate else None,
    )


def to_flax_mgu(
    params: MGUParams, reset_gate: bool | None = None
) -> dict[str, dict[str, dict[str, Array]]]:
    """:class:`lstmx.MGUParams` to Flax ``MGUCell`` variables (exact; inverse of
    :func:`from_flax_mgu`).

    Args:
      params: ``MGUParams(w_x [I, 2H], w_h [H, 2H], b_x [2H], b_hn [H] | None)``.
      reset_gate: the Flax cell's ``reset_gate``; None reads it from the params (``b_hn``
        present means True). Given, it must agree with them: the two cells are different
        functions, so no conversion between them is exact.

    Returns:
      ``{"params": {"if": {"kernel", "bias"}, "in": {"kernel", "bias"}, "hf": {"kernel"},
      "hn": {"kernel"[, "bias"]}}}``, for ``flax.linen.MGUCell(H, reset_gate=...)``.

    Raises:
      TypeError: if ``params`` is not :class:`lstmx.MGUParams` or ``reset_gate`` not a bool.
      ValueError: on inconsistent shapes, or a ``reset_gate`` the params do not have.
    """
    H = _check_mgu(params)
    has_bias = params.b_hn is not None
    if reset_gate is not None:
        if not isinstance(reset_gate, bool):
            raise TypeError(
                f"reset_gate must be True, False or None, got {type(reset_gate).__name__} "
                f"{reset_gate!r}."
            )
        if reset_gate != has_bias:
            raise ValueError(
                f"reset_gate={reset_gate} but the params are those of lstmx.mgu(H, "
                f"reset_gate={has_bias}) (params.b_hn is {'an array' if has_bias else 'None'}); "
                "convert the params of a cell built with the same reset_gate."
            )
    tree = {}
    for k, gate in enumerate(("f", "n")):
        cols = slice(k * H, (k + 1) * H)
        tree[f"i{gate}"] = {
            "kernel": jnp.asarray(params.w_x[:, cols]),
            "bias": jnp.asarray(params.b_x[cols]),
        }
        tree[f"h{gate}"] = {"kernel": jnp.asarray(params.w_h[:, cols])}
    if has_bias:
        tree["hn"]["bias"] = jnp.asarray(params.b_hn)
    return {"params": tree}


def to_flax_carry(state: LSTMState | GRUState | MGUState) -> tuple[Array, Array] | Array:
    """An lstmx state as a Flax carry: ``LSTMState(h, c) -> (c, h)``; ``GRUState(h)`` and
    ``MGUState(h)`` -> ``h``.

    Raises:
      TypeError: for other states (e.g. :class:`lstmx.FGRState`, which Flax has no cell for).
    """
    if isinstance(state, LSTMState):
        return (state.c, state.h)
    if isinstance(state, (GRUState, MGUState)):
        return state.h
    raise TypeError(
        f"state must be LSTMState, GRUState or MGUState (Flax's LSTMCell / GRUCell / MGUCell "
        "carry), "
        f"got {type(state).__name__}."
    )


def from_flax_carry(carry: tuple[Array, Array] | Array) -> LSTMState | GRUState:
    """A Flax carry as an lstmx state: ``(c, h) -> LSTMState(h, c)``; ``h -> GRUState(h)``.

    Args:
      carry: a Flax ``LSTMCell`` / ``OptimizedLSTMCell`` carry ``(c [*batch, H],
        h [*batch, H])``, or a ``GRUCell`` carry ``h [*batch, H]``.

    Raises:
      ValueError: for a 2-tuple whose arrays differ in shape.
      TypeError: for anything else.
    """
    if isinstance(carry, (tuple, list)) and len(carry) == 2:
        c, h = carry
        if getattr(c, "shape", None) != getattr(h, "shape", ()):
            raise ValueError(
                f"a Flax LSTM carry is (c, h) of equal shapes, got shapes "
                f"{getattr(c, 'shape', None)} and {getattr(h, 'shape', None)}."
            )
        return LSTMState(h=h, c=c)
    if hasattr(carry, "shape") and hasattr(carry, "dtype"):
        return GRUState(h=carry)
    raise TypeError(
        "carry must be a Flax LSTM carry (c, h) or a GRU carry (an array), got "
        f"{type(carry).__name__}."
    )
