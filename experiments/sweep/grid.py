"""A study's grid, expanded into cells: one compiled multi-seed ``experiments.run`` each.

A study is a plain dict (its *spec*, from flags or a study file), for example::

    {"name": "greff_adding_T100", "reference": "peephole",
     "grid": {"task": ["adding"], "length": [100], "variant": ["peephole", "lstm"],
              "learning_rate": [3e-4, 1e-3, 3e-3], "steps": [5000], ...},
     "seeds": 10, "first_seed": 0,
     "tune": "learning_rate", "tuning_seeds": 3, "first_tuning_seed": 1000}

Every :class:`experiments.run.model.Config` field but ``seeds`` (each rate of ``rates``
on its own) can be a grid axis; an
axis left out takes ``experiments.run``'s default (per task for ``length``,
``batch_size`` and ``steps``). The grid's product gives one *cell* per combination:
every setting but the seed, trained as one program over the study's seeds.

**Tuning** (``tune`` names one axis, e.g. ``learning_rate``): for every combination of
the other axes, a *tuning cell* per value of the tuned axis is trained on the tuning
seeds (``first_tuning_seed`` and up, apart from the evaluation seeds); the value is then
picked by :data:`SELECTION_RULE`, fixed before any run, and one *evaluation cell* trains
the picked value on the evaluation seeds. Only evaluation cells enter the comparison.

**Splitting seeds** (``seeds_per_cell``, untuned studies): each combination's seeds are
trained as several cells of at most that many consecutive seeds (ids ending in
``_s0-1``, ``_s2-3``, ...), so that a long cell fits a session or a job's time limit; the
comparison pools their records, which differ only in the seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from experiments.run.model import TASK_DEFAULTS, Config
from experiments.shared import regularization
from experiments.shared.regularization import RATES

__all__ = [
    "AXES",
    "FLAG_NAMES",
    "SELECTION_RULE",
    "Cell",
    "GridError",
    "Pick",
    "cell_flags",
    "eval_cell",
    "expand",
    "normalise_spec",
    "pick",
    "spec_from_study_file",
    "tuning_groups",
]

AXES = tuple(
    name
    for field in dataclasses.fields(Config)
    if field.name != "seeds"
    for name in (RATES if field.name == "rates" else (field.name,))
)
"""The settings a grid can vary: every Config field but the seeds, the five regulariser
rates each on its own (as experiments.run's flags name them)."""

FLAG_NAMES = {axis: axis for axis in AXES} | {
    "length": "lengths",
    "variant": "variants",
    "learning_rate": "learning_rates",
}
"""The sweep flag (and study-file field) of each axis: the run flag's name, plural for the
three that are lists in every study."""
_STUDY_FIELDS = ("name", "reference", "seeds", "first_seed", "tune", "tuning_seeds",
                 "first_tuning_seed", "seeds_per_cell")  # fmt: skip

_SHORT = {"learning_rate": "lr", "hidden_size": "h", "batch_size": "b", "num_layers": "layers"}

SELECTION_RULE = (
    "lowest median final held-out loss over the tuning seeds (a diverged seed counts as "
    "+inf); ties by lowest median steps to solve (loss <= 0.1 x baseline; an unsolved seed "
    "counts as +inf); then the first value in the grid's order"
)
"""How a tuned value is picked; fixed before the run and written into every evaluation cell."""


class GridError(ValueError):
    """The study's spec or grid cannot be run; the message says what and why."""


class Cell(NamedTuple):
    """One unit of work: a config (all its seeds), its id and its role.

    Attributes:
      id: the directory name under ``STUDY/cells/``: task, length and label, then the
        values of the axes that vary in the grid, e.g. ``adding_T100_lstm_lr0.001``;
        tuning cells start with ``tune-``.
      role: "tune" or "eval".
      config: the :class:`~experiments.run.model.Config` with its seeds.
      group: the tuning group (the id of the evaluation cell's combination with the tuned
        axis left out), or "" when the study tunes nothing.
    """

    id: str
    role: str
    config: Config
    group: str


def _as_list(name: str, value: Any) -> list:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise GridError(f"grid axis {name!r} is empty; give at least one value.")
    return values


def _normalise_grid(grid: Mapping[str, Any]) -> dict[str, list]:
    unknown = sorted(set(grid) - set(AXES))
    if unknown:
        raise GridError(
            f"unknown grid setting(s) {', '.join(unknown)}; a grid can vary: {', '.join(AXES)}."
        )
    out = {name: _as_list(name, grid[name]) for name in AXES if name in grid}
    out.setdefault("task", ["adding"])
    out.setdefault("variant", ["lstm"])
    return out


def normalise_spec(spec: Mapping[str, Any]) -> dict:
    """Checks a spec and returns it with every axis a list and every default filled in.

    ``grid`` is one grid (a dict of axes) or a list of them, whose cells are joined (e.g.
    an IndRNN at its own settings beside an LSTM at others); it is stored as a list.

    Raises:
      GridError: an unknown axis, an empty axis or grid, a tuned axis that is not in the
        grid or has one value, seed counts below 1, or ``seeds_per_cell`` in a tuned study.
    """
    grids = spec.get("grid")
    grids = [grids or {}] if not isinstance(grids, (list, tuple)) else list(grids)
    if not grids:
        raise GridError("the study's grid list is empty.")
    grids = [_normalise_grid(g) for g in grids]
    out = {
        "name": str(spec.get("name") or ""),
        # The reference defaults to the grid's first variant, as experiments.run's summary.
        "reference": str(spec.get("reference") or grids[0]["variant"][0]),
        "grid": grids,
        "seeds": int(spec.get("seeds", 5)),
        "first_seed": int(spec.get("first_seed", 0)),
        "tune": spec.get("tune") or None,
        "tuning_seeds": int(spec.get("tuning_seeds", 3)),
        "first_tuning_seed": int(spec.get("first_tuning_seed", 1000)),
        "seeds_per_cell": _seeds_per_cell(spec.get("seeds_per_cell")),
    }
    if out["seeds"] < 1 or out["tuning_seeds"] < 1:
        raise GridError("seeds and tuning_seeds must be at least 1.")
    if out["seeds_per_cell"] is not None and out["tune"]:
        raise GridError(
            "seeds_per_cell splits the cells of an untuned study; a tuned study trains each "
            "tuning and evaluation cell whole (leave seeds_per_cell out)."
        )
    if out["first_seed"] < 0 or out["first_tuning_seed"] < 0:
        raise GridError("first_seed and first_tuning_seed must be >= 0.")
    tune = out["tune"]
    if tune is not None:
        if tune not in AXES:
            raise GridError(f"--tune must name a grid setting ({', '.join(AXES)}); got {tune!r}.")
        if any(len(g.get(tune, [])) < 2 for g in out["grid"]):
            raise GridError(f"--tune={tune} needs at least two values of {tune} in the grid.")
        evaluation = set(range(out["first_seed"], out["first_seed"] + out["seeds"]))
        tuning = range(out["first_tuning_seed"], out["first_tuning_seed"] + out["tuning_seeds"])
        if evaluation.intersection(tuning):
            raise GridError("the tuning seeds must be apart from the evaluation seeds.")
    return out


def _seeds_per_cell(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GridError(f"seeds_per_cell must be a whole number >= 1 (or left out); got {value!r}.")
    return value


def _seed_chunks(seeds: tuple[int, ...], size: int | None) -> list[tuple[int, ...]]:
    if size is None or size >= len(seeds):
        return [seeds]
    return [seeds[i : i + size] for i in range(0, len(seeds), size)]


def _seeds_suffix(seeds: tuple[int, ...]) -> str:
    return f"_s{seeds[0]}" if len(seeds) == 1 else f"_s{seeds[0]}-{seeds[-1]}"


def spec_from_study_file(fields: Mapping[str, Any]) -> dict:
    """A normalised spec from a study file's fields (``get_config().to_dict()``).

    The grid's axes are fields named as the sweep's flags (:data:`FLAG_NAMES`), each a
    value or a list; or ``grids``, a list of such dicts whose cells are joined.

    Raises:
      GridError: an unknown field, or what :func:`normalise_spec` refuses.
    """
    fields = dict(fields)
    axis_of = {flag: axis for axis, flag in FLAG_NAMES.items()}

    def axes(mapping: Mapping[str, Any], where: str) -> dict:
        unknown = sorted(set(mapping) - set(axis_of))
        if unknown:
            raise GridError(f"the study file has unknown {where}field(s): {', '.join(unknown)}.")
        return {axis_of[name]: value for name, value in mapping.items()}

    grids = fields.pop("grids", None)
    settings = {name: fields.pop(name) for name in _STUDY_FIELDS if name in fields}
    common = axes(fields, "")
    if grids is None:
        return normalise_spec({**settings, "grid": common})
    joined = [{**common, **axes(g, "grids ")} for g in grids]
    return normalise_spec({**settings, "grid": joined})


def setting(config: Config, name: str) -> Any:
    """The value of grid axis ``name`` (:data:`AXES`) in ``config``: a field, or a rate."""
    return getattr(config.rates, name) if name in RATES else getattr(config, name)


def replace(config: Config, **changes: Any) -> Config:
    """``dataclasses.replace`` of ``config`` with grid axes, rates among them, changed."""
    rates = {name: changes.pop(name) for name in list(changes) if name in RATES}
    if rates:
        changes["rates"] = dataclasses.replace(config.rates, **rates)
    return dataclasses.replace(config, **changes)


def _value_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# Settings an id shows through its label (variant, init, regularisers) or its head.
_IN_LABEL = ("task", "length", "variant", "init", *RATES)


def _cell_id(config: Config, varying: Sequence[str], prefix: str = "") -> str:
    parts = [f"{config.task}_T{config.length}_{config.label}"]
    for name in varying:
        if name not in _IN_LABEL:
            parts.append(f"{_SHORT.get(name, name)}{_value_text(setting(config, name))}")
    return prefix + "_".join(parts)


def _config(settings: dict, seeds: tuple[int, ...]) -> Config:
    defaults = TASK_DEFAULTS[settings["task"]] if settings.get("task") in TASK_DEFAULTS else {}
    try:
        return Config(**regularization.nest_rates({**defaults, **settings, "seeds": seeds}))
    except (ValueError, TypeError) as error:
        shown = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        raise GridError(f"experiments.run would refuse the cell {shown}: {error}") from None


def _combinations(spec: dict) -> list[dict]:
    combinations = []
    for axes in spec["grid"]:
        names = list(axes)
        combinations += [dict(zip(names, values)) for values in itertools.product(*axes.values())]
    return combinations


def _varying(configs: Sequence[Config]) -> list[str]:
    """The settings whose values differ between the configs, in AXES order."""
    return [name for name in AXES if len({setting(c, name) for c in configs}) > 1]


def expand(spec: dict) -> list[Cell]:
    """Every cell of a normalised spec that can be known before training.

    Without tuning: one evaluation cell per combination (or, with ``seeds_per_cell``, one
    per that many of its seeds). With tuning: the tuning cells
    (one per combination, tuned value included); the evaluation cells follow from them
    (:func:`eval_cell`).

    Raises:
      GridError: a combination that ``experiments.run`` would refuse (named), or two
        combinations that would share a cell (the same config).
    """
    tune = spec["tune"]
    first, count = (
        (spec["first_seed"], spec["seeds"])
        if tune is None
        else (spec["first_tuning_seed"], spec["tuning_seeds"])
    )
    seeds = tuple(range(first, first + count))
    configs = [_config(combination, seeds) for combination in _combinations(spec)]
    varying = _varying(configs)
    if tune is None:
        chunks = _seed_chunks(seeds, spec.get("seeds_per_cell"))
        cells = [
            Cell(
                _cell_id(config, varying) + (_seeds_suffix(part) if len(chunks) > 1 else ""),
                "eval",
                dataclasses.replace(config, seeds=part),
                "",
            )
            for config in configs
            for part in chunks
        ]
    else:
        others = [name for name in varying if name != tune]
        cells = [
            Cell(_cell_id(config, varying, "tune-"), "tune", config, _cell_id(config, others))
            for config in configs
        ]
    ids = [cell.id for cell in cells]
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise GridError(f"the grid names the same cell twice: {', '.join(repeated)}.")
    return cells


def tuning_groups(cells: Sequence[Cell]) -> dict[str, list[Cell]]:
    """The tuning cells by group, in the grid's order."""
    groups: dict[str, list[Cell]] = {}
    for cell in cells:
        if cell.role == "tune":
            groups.setdefault(cell.group, []).append(cell)
    return groups


class Pick(NamedTuple):
    """A tuned value and why: ``scores[i]`` is ``(median final loss, median steps to solve)``
    of ``values[i]``."""

    value: Any
    values: list
    scores: list[tuple[float, float]]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.inf


def _score(records: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """``(median final loss, median steps to solve)`` of one tuning cell's records."""
    losses, steps = [], []
    for record in records:
        loss = record["final"]["loss"]
        loss = math.inf if loss is None or not math.isfinite(loss) else float(loss)
        if record["status"] == "diverged":
            loss = math.inf
        losses.append(loss)
        threshold = 0.1 * float(record["baseline"])
        solved = [
            p["step"]
            for p in record["history"]
            if p["loss"] is not None and math.isfinite(p["loss"]) and p["loss"] <= threshold
        ]
        steps.append(min(solved) if solved and loss < math.inf else math.inf)
    return _median(losses), _median(steps)


def pick(tune: str, cells: Sequence[Cell], records: Mapping[str, Sequence[Mapping]]) -> Pick:
    """Picks the tuned value of one group by :data:`SELECTION_RULE`.

    Args:
      tune: the tuned setting.
      cells: the group's tuning cells, in the grid's order.
      records: ``{cell id: its records}``, every seed of every cell.
    """
    values = [setting(cell.config, tune) for cell in cells]
    scores = [_score(records[cell.id]) for cell in cells]
    best = min(range(len(cells)), key=lambda i: (scores[i][0], scores[i][1], i))
    return Pick(values[best], values, scores)


def eval_cell(spec: dict, group: Sequence[Cell], picked: Any) -> Cell:
    """The evaluation cell of a tuning group, at the picked value on the evaluation seeds.

    Its id is the group's with the picked value, e.g. ``adding_T100_lstm_lr0.003``.
    """
    seeds = tuple(range(spec["first_seed"], spec["first_seed"] + spec["seeds"]))
    config = replace(group[0].config, **{spec["tune"]: picked}, seeds=seeds)
    tuned = f"_{_SHORT.get(spec['tune'], spec['tune'])}{_value_text(picked)}"
    return Cell(group[0].group + tuned, "eval", config, group[0].group)


def cell_flags(config: Config) -> list[str]:
    """The ``experiments.run`` flags that train exactly ``config`` (one variant).

    Raises:
      GridError: the seeds are not consecutive (``--first_seed`` and ``--seeds`` say a
        range).
    """
    seeds = config.seeds
    if list(seeds) != list(range(seeds[0], seeds[0] + len(seeds))):
        raise GridError(f"a cell's seeds must be consecutive; got {list(seeds)}.")
    settings = config.to_dict()
    flags = [f"--variants={settings.pop('variant')}"]
    settings.pop("seeds")
    for name, value in settings.items():
        flags.append(f"--{name}={value!r}" if isinstance(value, float) else f"--{name}={value}")
    return flags + [f"--first_seed={seeds[0]}", f"--seeds={len(seeds)}"]
