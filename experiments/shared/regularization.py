"""The recurrent regularisers of the experiments: their rates, checks, labels and flags.

The five rates of :func:`lstmx.regularized` (zoneout, Krueger et al. 2016; variational
dropout, Gal & Ghahramani 2016; dropout on the candidate, Semeniuta et al. 2016), one
:class:`Rates` record that every experiment Config holds as its ``rates`` field and every
script fills from the same five flags:

* ``zoneout_h``, ``zoneout_c``: probability of keeping each unit of ``h`` (``c``) from
  the previous step, in [0, 1]; ``zoneout_c`` only for cells whose state has ``c``.
* ``input_dropout``, ``recurrent_dropout``: probability of dropping each input feature
  (each unit of ``h_{t-1}`` as the step reads it), one mask per sequence, in [0, 1).
* ``candidate_dropout``: probability of dropping each unit of an LSTM's block input ``g``
  where it enters the cell state, a fresh mask per step, in [0, 1); LSTM variants only.

All rates 0 (the default) leave the model, its numbers and its records as they were
without regularisers: no layer is wrapped, no key is drawn, and :func:`to_dict` writes a
Config's record with the rates as top-level keys and the zero ones left out, as records
were before the rates were one record. A regularised model trains with masks drawn from
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

import dataclasses
import math
from typing import Any

import jax
from absl import flags

import lstmx
from lstmx.cells import Cell

__all__ = [
    "KEY_STREAM",
    "NONE",
    "RATES",
    "Rates",
    "check_rates",
    "define_flags",
    "is_regularized",
    "label_suffix",
    "nest_rates",
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


@dataclasses.dataclass(frozen=True)
class Rates:
    """The five regulariser rates, checked when made (:func:`check_rates`); all 0: none.

    Attributes:
      zoneout_h: zoneout probability on ``h`` while training, [0, 1] (Krueger et al. 2016).
      zoneout_c: zoneout probability on ``c``, [0, 1]; cells whose state has ``c`` only.
      input_dropout: variational dropout on each layer's input, [0, 1) (Gal & Ghahramani
        2016).
      recurrent_dropout: variational dropout on ``h_{t-1}`` as the step reads it, [0, 1).
      candidate_dropout: dropout on an LSTM's block input ``g`` per step, [0, 1) (Semeniuta
        et al. 2016); LSTM variants only.
    """

    zoneout_h: float = 0.0
    zoneout_c: float = 0.0
    input_dropout: float = 0.0
    recurrent_dropout: float = 0.0
    candidate_dropout: float = 0.0

    def __post_init__(self):
        check_rates(self)

    @classmethod
    def of(cls, value: Any) -> Rates:
        """``value`` as :class:`Rates`: itself, or a mapping of rate names (e.g. from JSON).

        Raises:
          TypeError: anything else, or a mapping with a key that is no rate.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(RATES))
            if unknown:
                raise TypeError(
                    f"rates has no {', '.join(unknown)}; the rates are {', '.join(RATES)}."
                )
            return cls(**value)
        raise TypeError(
            f"rates must be a Rates or a dict of {', '.join(RATES)}, "
            f"got {type(value).__name__} {value!r}."
        )


NONE = Rates()
"""All rates 0: no regulariser."""


def nest_rates(settings: dict) -> dict:
    """``settings`` (flat, as flags, a grid cell or a record give them) with its rate keys
    moved into one ``rates`` :class:`Rates` entry, for a Config."""
    rest = {name: value for name, value in settings.items() if name not in RATES}
    given = {name: settings[name] for name in RATES if name in settings}
    if "rates" in rest:
        given = {**dataclasses.asdict(Rates.of(rest.pop("rates"))), **given}
    return {**rest, "rates": Rates(**given)}


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
    """``settings`` (``dataclasses.asdict`` of a Config, its ``rates`` a nested dict) with
    the rates as top-level keys and those that are 0 left out, so plain runs' records stay
    as before.

    Records and checkpoints made before the rates existed then still match a plain run's
    settings on resume; a regularised run records every rate > 0.
    """
    flat = {name: value for name, value in settings.items() if name != "rates"}
    rates = settings.get("rates") or {}
    return {**flat, **{name: rates[name] for name in RATES if rates.get(name)}}


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


def rates_from_flags(flag_values: Any = flags.FLAGS) -> Rates:
    """The :class:`Rates` of the rate flags, for a Config's ``rates``."""
    return Rates(**{name: getattr(flag_values, name) for name in RATES})
