"""The recurrent regularisers of the experiments: their rates, checks, labels and flags.

The five rates of :func:`lstmx.regularized` (zoneout, Krueger et al. 2016; variational
dropout, Gal & Ghahramani 2016; dropout on the candidate, Semeniuta et al. 2016), as every
experiment Config and script takes them:

* ``zoneout_h``, ``zoneout_c``: probability of keeping each unit of ``h`` (``c``) from
  the previous step, in [0, 1]; ``zoneout_c`` only for cells whose state has ``c``.
* ``input_dropout``, ``recurrent_dropout``: probability of dropping each input feature
  (each unit of ``h_{t-1}`` as the step reads it), one mask per sequence, in [0, 1).
* ``candidate_dropout``: probability of dropping each unit of an LSTM's block input ``g``
  where it enters the cell state, a fresh mask per step, in [0, 1); LSTM variants only.

All rates 0 (the default) leave the model, its numbers and its records as they were
without regularisers: no layer is wrapped, no key is drawn, and :func:`to_dict` leaves
the zero rates out of a Config's record. A regularised model trains with masks drawn from
``fold_in(step_key, 1)`` (:data:`KEY_STREAM`), where ``step_key`` is the key the shared
trainer gives the loss of that step, so randomness stays a pure function of
``(seed, step)``; it is evaluated without a key, i.e. by its deterministic expectation,
as both papers evaluate.

Labels (:func:`label_suffix`) tell a regularised run from a plain one in file names and
comparison tables: ``+zoneout{z}`` when ``zoneout_h == zoneout_c``, otherwise
``+zoneout_h{z}`` and/or ``+zoneout_c{z}``; then ``+indrop{p}``, ``+recdrop{p}`` and
``+gdrop{p}``, each
only when its rate is > 0, rates written with ``{:g}``. For example
``lstm+zoneout_h0.1+recdrop0.1``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from absl import flags

import lstmx
from lstmx.cells import Cell

__all__ = [
    "KEY_STREAM",
    "RATES",
    "check_rates",
    "define_flags",
    "is_regularized",
    "label_suffix",
    "rates_from_flags",
    "regularize",
    "to_dict",
    "training_key",
]

RATES = ("zoneout_h", "zoneout_c", "input_dropout", "recurrent_dropout", "candidate_dropout")
"""The rate fields, in the order of :func:`lstmx.regularized`'s arguments."""

KEY_STREAM = 1
"""The regularisers' masks of a step come from ``fold_in(step_key, KEY_STREAM)``."""

_HELP = {
    "zoneout_h": "Zoneout on the hidden state h while training (Krueger et al. 2016): the "
    "probability of keeping each unit of h from the previous step, in [0, 1]. Evaluation "
    "uses the expectation.",
    "zoneout_c": "Zoneout on the cell state c while training, in [0, 1]; only for cells "
    "whose state has c (the LSTM family).",
    "input_dropout": "Variational input dropout while training (Gal & Ghahramani 2016): "
    "the probability of dropping each input feature, one mask per sequence, in [0, 1).",
    "recurrent_dropout": "Variational recurrent dropout while training (Gal & Ghahramani "
    "2016): the probability of dropping each unit of h_{t-1} as the step reads it, one "
    "mask per sequence, in [0, 1).",
    "candidate_dropout": "Recurrent dropout on an LSTM's block input g where it enters the "
    "cell state (Semeniuta, Severyn & Barth 2016): a fresh mask per step, in [0, 1); LSTM "
    "variants only.",
}


def _interval(name: str) -> tuple[float, bool, str]:
    """``(upper bound, bound included, interval text)`` of a rate."""
    return (1.0, True, "[0, 1]") if name.startswith("zoneout") else (1.0, False, "[0, 1)")


def _in_range(name: str, value: float) -> bool:
    high, closed, _ = _interval(name)
    if not math.isfinite(value) or value < 0.0:
        return False
    return value <= high if closed else value < high


def check_rates(config: Any) -> None:
    """Checks the rate fields of ``config`` (any object with them); raises naming one.

    Raises:
      TypeError: a rate that is not a number (bools are refused).
      ValueError: a rate outside [0, 1] (zoneout) or [0, 1) (dropout).
    """
    for name in RATES:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
        if not _in_range(name, value):
            raise ValueError(f"{name} must lie in {_interval(name)[2]}, got {value}.")


def is_regularized(config: Any) -> bool:
    """Whether any rate of ``config`` is > 0 (then its layers are wrapped)."""
    return any(getattr(config, name) > 0 for name in RATES)


def regularize(cell: Cell, config: Any, variant_name: str) -> Cell:
    """``cell`` wrapped with :func:`lstmx.regularized` at ``config``'s rates, or ``cell``.

    Raises:
      ValueError: a rate the cell cannot take (``zoneout_c`` for a cell without ``c``),
        naming the variant and the rate.
    """
    if not is_regularized(config):
        return cell
    rates = {name: float(getattr(config, name)) for name in RATES}
    try:
        return lstmx.regularized(cell, **rates)
    except ValueError as error:
        given = ", ".join(f"{name}={value:g}" for name, value in rates.items() if value)
        raise ValueError(f"variant {variant_name!r} cannot take {given}: {error}") from None


def training_key(step_key: jax.Array) -> jax.Array:
    """The key of a training step's regulariser masks: ``fold_in(step_key, KEY_STREAM)``."""
    return jax.random.fold_in(step_key, KEY_STREAM)


def label_suffix(config: Any) -> str:
    """The label's regulariser part, e.g. ``"+zoneout_h0.1+recdrop0.1"``; "" if none."""
    h, c = config.zoneout_h, config.zoneout_c
    parts = []
    if h > 0 and h == c:
        parts.append(f"zoneout{h:g}")
    else:
        parts += [f"zoneout_{name}{rate:g}" for name, rate in (("h", h), ("c", c)) if rate > 0]
    if config.input_dropout > 0:
        parts.append(f"indrop{config.input_dropout:g}")
    if config.recurrent_dropout > 0:
        parts.append(f"recdrop{config.recurrent_dropout:g}")
    if config.candidate_dropout > 0:
        parts.append(f"gdrop{config.candidate_dropout:g}")
    return "".join(f"+{part}" for part in parts)


def to_dict(settings: dict) -> dict:
    """``settings`` without the rates that are 0, so plain runs' records stay as before.

    Records and checkpoints made before the rates existed then still match a plain run's
    settings on resume; a regularised run records every rate > 0.
    """
    return {name: value for name, value in settings.items() if name not in RATES or value}


def define_flags() -> None:
    """Defines a flag per rate: ``--zoneout_h``, ..., ``--candidate_dropout``.

    Each with its help text and a validator, so a bad value exits with one line. A script
    lists them under ``--helpshort`` with ``flags.adopt_module_key_flags(regularization)``.
    """
    for name in RATES:
        flags.DEFINE_float(name, 0.0, _HELP[name])
        flags.register_validator(
            name,
            lambda value, name=name: _in_range(name, value),
            message=f"--{name} must lie in {_interval(name)[2]}.",
        )


def rates_from_flags(flag_values: Any = flags.FLAGS) -> dict[str, float]:
    """``{rate name: value}`` of the rate flags, for a Config."""
    return {name: getattr(flag_values, name) for name in RATES}
