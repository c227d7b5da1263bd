"""Verdicts on the published state-tracking claims, by a rule fixed before the study's
evaluation cells ran.

The endpoint is the score, a seed's accuracy averaged over the test lengths (Delétang et
al. 2023), and whether the seed *generalised* (score >= 0.9,
:data:`experiments.compare.state_tracking.GENERALISED`). A group (one task) is
*informative* when at least one of its rows has a generalised seed: a task nobody
generalises on at this budget decides nothing, and every claim on it is **undecided**.
With ``alpha`` = 0.05, three kinds of claim:

* "X generalises on T" (Delétang et al.: the tanh RNN and the LSTM on every regular
  task; they publish the best seed's score). The test: Wilcoxon's signed-rank test of
  the scores against chance, one-sided, Holm-corrected over the claims of this kind;
  the effect, the mean score above chance. **agreed** when a seed of X generalised and
  Holm p <= alpha; **not** when no seed of X generalised (in an informative group);
  **undecided** otherwise.
* "X does not generalise on T" (Merrill et al.: a positive diagonal transition cannot
  keep parity): **agreed** when no seed of X generalised (its share's Wilson interval
  beside it), **not** when one did.
* "X solves T where Y does not" (Beck et al.: the sLSTM against linear recurrences;
  Grazzi et al.: negative eigenvalues against the positive ones). The test: Welch's test
  of X's scores against Y's, two-sided, Holm-corrected over the claims of this kind, with
  Hedges' g (> 0: X scores higher) and Fisher's test of the generalised counts beside it.
  **agreed** when X scores higher with Holm p <= alpha, a seed of X generalised and none
  of Y did; **not** when Y scores higher with Holm p <= alpha, or a seed of Y generalised
  while X does not score higher with Holm p <= alpha; **undecided** otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as scipy_stats

from experiments.compare import stats
from experiments.compare.claims import ALPHA, Verdict, format_verdicts
from experiments.compare.state_tracking import GENERALISED, state_tracking_scores

__all__ = [
    "STATE_CLAIM_KINDS",
    "STATE_TRACKING_CLAIMS",
    "StateClaim",
    "format_state_verdicts",
    "state_verdicts",
]

STATE_CLAIM_KINDS = ("generalises", "does_not_generalise", "solves_where_other_does_not")

TASKS = ("parity", "modular_arithmetic", "cycle_navigation", "even_pairs")


class StateClaim(NamedTuple):
    """A published claim about row ``row`` (and ``other``) on ``task``.

    Attributes:
      text: the claim, e.g. "the LSTM generalises on parity (Delétang et al.)".
      task: the task it is about.
      kind: one of :data:`STATE_CLAIM_KINDS`.
      row: the label of X.
      other: the label of Y for "solves_where_other_does_not", else None.
    """

    text: str
    task: str
    kind: str
    row: str
    other: str | None = None


def _claims() -> tuple[StateClaim, ...]:
    out = []
    for task in TASKS:
        for row, name in (("rnn", "the tanh RNN"), ("lstm", "the LSTM")):
            out.append(
                StateClaim(f"{name} generalises (Delétang et al.)", task, "generalises", row)
            )
    for task in TASKS:
        for slstm in ("slstm", "slstm_exp"):
            for linear in ("min_gru", "min_lstm"):
                out.append(
                    StateClaim(
                        f"{slstm} solves it where {linear} does not (Beck et al.)",
                        task,
                        "solves_where_other_does_not",
                        slstm,
                        linear,
                    )
                )
    for linear in ("min_gru", "min_lstm"):
        out.append(
            StateClaim(
                f"{linear} (transition in (0, 1)) does not (Merrill et al.; Grazzi et al.)",
                "parity",
                "does_not_generalise",
                linear,
            )
        )
        out.append(
            StateClaim(
                f"{linear}_neg (transition in (-1, 1)) solves it where {linear} does not "
                "(Grazzi et al.)",
                "parity",
                "solves_where_other_does_not",
                f"{linear}_neg",
                linear,
            )
        )
    return tuple(out)


STATE_TRACKING_CLAIMS = _claims()
"""Issue 23's three claims, task by task: Delétang et al.'s (RNN, LSTM), Beck et al.'s
(both sLSTM forms against minGRU and minLSTM), Merrill et al.'s and Grazzi et al.'s (on
parity)."""


def _generalised(scores: Sequence[float]) -> int:
    return sum(score >= GENERALISED for score in scores)


def _wilcoxon_above_chance(scores: Sequence[float], chance: float) -> float:
    """One-sided p of Wilcoxon's signed-rank test that the scores exceed ``chance``; NaN
    when every score equals it."""
    differences = np.asarray(scores, np.float64) - chance
    if not np.any(differences):
        return math.nan
    return float(scipy_stats.wilcoxon(differences, alternative="greater").pvalue)


def _count(scores: Sequence[float]) -> str:
    n, k = len(scores), _generalised(scores)
    interval = stats.wilson_ci(k, n)
    return f"{k}/{n} generalised ({interval.low:.0%}–{interval.high:.0%})"


def state_verdicts(
    claims: Sequence[StateClaim], records: Sequence[Mapping[str, Any]]
) -> list[Verdict]:
    """The verdict on each claim whose rows have records (see the module docstring).

    Raises:
      ValueError: an unknown claim kind, or a label with several settings in one task.
    """
    scores = state_tracking_scores(records)  # {task: {label: (chance, [score])}}
    present = [c for c in claims if c.row in scores.get(c.task, {})
               and (c.other is None or c.other in scores[c.task])]  # fmt: skip
    for claim in present:
        if claim.kind not in STATE_CLAIM_KINDS:
            raise ValueError(
                f"claim kind must be one of {', '.join(STATE_CLAIM_KINDS)}; got {claim.kind!r}."
            )
    p_values: dict[int, float] = {}
    for kind in ("generalises", "solves_where_other_does_not"):
        family = [i for i, c in enumerate(present) if c.kind == kind]
        raw = []
        for i in family:
            claim = present[i]
            chance, xs = scores[claim.task][claim.row]
            if kind == "generalises":
                raw.append(_wilcoxon_above_chance(xs, chance))
            else:
                raw.append(stats.welch_test(xs, scores[claim.task][claim.other][1]).p)
        for i, p in zip(family, stats.holm_adjust(raw) if raw else []):
            p_values[i] = float(p)
    return [_verdict(c, scores[c.task], p_values.get(i, math.nan)) for i, c in enumerate(present)]


def _verdict(claim: StateClaim, group: Mapping[str, tuple], p_holm: float) -> Verdict:
    chance, xs = group[claim.row]
    mean = float(np.mean(xs))
    informative = any(_generalised(s) for _, s in group.values())
    evidence = f"{claim.row}: mean score {mean:.3f}, {_count(xs)}"
    if claim.kind == "generalises":
        evidence += f"; {mean - chance:+.3f} above chance, Wilcoxon Holm p = {p_holm:.2g}"
        if not informative:
            return Verdict(claim, "undecided", f"no row generalised on this task; {evidence}")
        if _generalised(xs) == 0:
            return Verdict(claim, "not", evidence)
        label = "agreed" if p_holm <= ALPHA else "undecided"
        return Verdict(claim, label, evidence)
    if claim.kind == "does_not_generalise":
        if not informative:
            return Verdict(claim, "undecided", f"no row generalised on this task; {evidence}")
        return Verdict(claim, "not" if _generalised(xs) else "agreed", evidence)
    ys = group[claim.other][1]
    g = stats.hedges_g(xs, ys)[0]
    fisher = stats.fisher_test(_generalised(xs), len(xs), _generalised(ys), len(ys)).p
    evidence += (
        f"; {claim.other}: mean score {float(np.mean(ys)):.3f}, {_count(ys)}; Welch Holm "
        f"p = {p_holm:.2g}, Hedges' g = {g:+.2f}, Fisher p = {fisher:.2g}"
    )
    if not informative:
        return Verdict(claim, "undecided", f"no row generalised on this task; {evidence}")
    higher = p_holm <= ALPHA and g > 0
    lower = p_holm <= ALPHA and g < 0
    if higher and _generalised(xs) and not _generalised(ys):
        return Verdict(claim, "agreed", evidence)
    if lower or (_generalised(ys) and not higher):
        return Verdict(claim, "not", evidence)
    return Verdict(claim, "undecided", evidence)


def format_state_verdicts(verdicts: Sequence[Verdict]) -> str:
    """A markdown table per task: claim, verdict, the numbers it rests on."""
    parts = []
    for task in dict.fromkeys(v.claim.task for v in verdicts):
        parts += [
            f"### {task}",
            "",
            format_verdicts([v for v in verdicts if v.claim.task == task]),
            "",
        ]
    return "\n".join(parts)
