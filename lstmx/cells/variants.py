"""Named variants for flags and tables: ``variant("cifg", 128)``, ``variant_names()``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from lstmx.cells.base import Cell
from lstmx.cells.gru import gru
from lstmx.cells.indrnn import indrnn
from lstmx.cells.janet import janet
from lstmx.cells.lstm import lstm
from lstmx.cells.mgu import mgu
from lstmx.cells.min_rnn import min_gru, min_lstm
from lstmx.cells.rnn import rnn
from lstmx.cells.slstm import slstm

__all__ = ["variant", "variant_names", "variant_summary"]


class _Variant(NamedTuple):
    factory: Callable[..., Cell]
    options: dict
    summary: str


def _lstmp(hidden_size: int, *, proj_size: int | None = None, **options: Any) -> Cell:
    """The ``lstmp`` variant: :func:`lstm` with ``proj_size = max(1, hidden_size // 2)``
    unless ``proj_size`` is given (Sak et al. 2014 project 2048 cells to 256-512)."""
    if proj_size is None:
        proj_size = max(1, hidden_size // 2) if isinstance(hidden_size, int) else None
    return lstm(hidden_size, proj_size=proj_size, **options)


def _slstm(hidden_size: int, *, num_heads: int | None = None, **options: Any) -> Cell:
    """The ``slstm`` variant: :func:`lstmx.slstm` with ``num_heads = gcd(4, hidden_size)``
    unless given: NX-AI's 4 heads where they divide ``H``, else 2, else 1."""
    if num_heads is None:
        num_heads = math.gcd(4, hidden_size) if isinstance(hidden_size, int) else 4
    return slstm(hidden_size, num_heads=num_heads, **options)


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
    "janet": _Variant(
        janet, {}, "JANET, forget gate only, h = c (van der Westhuizen & Lasenby 2018)"
    ),
    "mgu": _Variant(mgu, {}, "minimal gated unit, one gate f (Zhou et al. 2016; Flax MGUCell)"),
    "indrnn": _Variant(indrnn, {}, "IndRNN, relu, elementwise recurrence u ⊙ h (Li et al. 2018)"),
    "min_gru": _Variant(min_gru, {}, "minGRU, gates read x only (Feng et al. 2024)"),
    "min_lstm": _Variant(min_lstm, {}, "minLSTM, gates read x only, f/(f+i) (Feng et al. 2024)"),
    "min_gru_neg": _Variant(
        min_gru,
        {"negative_eigenvalues": True},
        "minGRU with transition 1 - 2z in (-1, 1) (Grazzi et al. 2025)",
    ),
    "min_lstm_neg": _Variant(
        min_lstm,
        {"negative_eigenvalues": True},
        "minLSTM with transition 2f' - 1 in (-1, 1) (Grazzi et al. 2025)",
    ),
    "slstm": _Variant(
        _slstm, {}, "sLSTM (xLSTM), exp input gate, normaliser, gcd(4, H) heads (Beck et al.)"
    ),
    "slstm_exp": _Variant(
        _slstm, {"forget_gate": "exp"}, "sLSTM with the exponential forget gate f = exp(z_f)"
    ),
    "lstmp": _Variant(_lstmp, {}, "LSTM with projection h = (o*tanh c) W_hr, P = max(1, H // 2)"),
    "ln_lstm": _Variant(lstm, {"layer_norm": True}, "layer-norm LSTM (Ba et al. 2016)"),
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
      **overrides: keyword arguments of the underlying factory (:func:`lstmx.lstm`,
        :func:`lstmx.gru`, ...), applied over the variant's own options.
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
