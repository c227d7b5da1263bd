"""Verdicts on published claims, read off a comparison's rows by a rule fixed before the run.

A claim compares one row ``X`` with the group's reference ``R`` (Greff et al.'s V, say).
The primary endpoint is time to solve: the log-rank test against ``R``, Holm-corrected
over the group (``logrank_p_holm`` of :func:`experiments.compare.tables.summarise`); its
statistic is negative when ``X`` solves later than ``R``. With ``alpha`` = 0.05:

* "X hurts": **agreed** when X is slower with Holm p <= alpha, **not** when X is faster
  with Holm p <= alpha, **undecided** otherwise.
* "X does not hurt": **not** when X is slower with Holm p <= alpha, otherwise **agreed**
  (no harm was found; the power beside it says how large a harm could have been missed).
* "X and R do not differ": **not** when they differ either way with Holm p <= alpha,
  otherwise **agreed** in the same sense.

Whatever the claim, it is **undecided** when the reference solved none of its seeds (a
budget nobody solves decides nothing) or when the log-rank test is undefined for the row.
Final loss (Welch, Hedges' g) and solve counts (Fisher) are reported beside the verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "ALPHA",
    "CLAIMS",
    "CLAIM_KINDS",
    "GREFF_CLAIMS",
    "Claim",
    "Verdict",
    "format_verdicts",
    "verdict",
    "verdicts_by_group",
]

ALPHA = 0.05
CLAIM_KINDS = ("hurts", "does_not_hurt", "no_difference")


class Claim(NamedTuple):
    """A published claim about one row against the reference.

    Attributes:
      text: the claim as the paper makes it, e.g. "NFG hurts".
      row: the row's label (``variant`` of a summarise row), e.g. ``"nfg"``.
      kind: one of :data:`CLAIM_KINDS`.
    """

    text: str
    row: str
    kind: str


class Verdict(NamedTuple):
    """``label`` ("agreed", "not" or "undecided") and the numbers it rests on."""

    claim: Claim
    label: str
    reason: str


GREFF_CLAIMS = (
    Claim("NFG hurts", "nfg", "hurts"),
    Claim("NOAF hurts", "noaf", "hurts"),
    Claim("CIFG does not hurt", "cifg", "does_not_hurt"),
    Claim("NP does not hurt", "lstm", "does_not_hurt"),
    Claim("peepholes do not matter (NP against V)", "lstm", "no_difference"),
)
"""Greff et al. (2017)'s claims about the ablations of their vanilla LSTM V (``peephole``)."""

CLAIMS = {"greff": GREFF_CLAIMS}
"""The claim sets ``experiments.compare --claims`` knows."""


def _number(value: Any, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def _evidence(row: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    return (
        f"log-rank Holm p = {_number(row['logrank_p_holm'], '.2g')}; "
        f"solved {row['n_solved']}/{row['n_seeds']} against {reference['n_solved']}/"
        f"{reference['n_seeds']} (Fisher Holm p = {_number(row['fisher_p_holm'], '.2g')}); "
        f"final loss g = {_number(row['hedges_g'], '+.2f')}, "
        f"Welch Holm p = {_number(row['welch_p_holm'], '.2g')}"
    )


def verdict(claim: Claim, rows: Sequence[Mapping[str, Any]]) -> Verdict:
    """The verdict on ``claim`` from one group's rows (see the module docstring).

    Args:
      claim: the claim; its row and the group's reference row must be in ``rows``.
      rows: the rows of one (task, length) group, from
        :func:`experiments.compare.tables.summarise`.

    Raises:
      ValueError: an unknown claim kind, or the claim's row or the reference row is missing.
    """
    if claim.kind not in CLAIM_KINDS:
        raise ValueError(f"claim kind must be one of {', '.join(CLAIM_KINDS)}; got {claim.kind!r}.")
    by_label = {row["label"]: row for row in rows}
    if claim.row not in by_label:
        raise ValueError(f"no row {claim.row!r} for the claim {claim.text!r}; rows: "
                         f"{', '.join(sorted(by_label))}.")  # fmt: skip
    row = by_label[claim.row]
    reference = next((r for r in rows if r["variant"] == row["reference_row"]), None)
    if reference is None:
        raise ValueError(f"the group of {claim.row!r} has no reference row.")
    evidence = _evidence(row, reference)
    p, statistic = row["logrank_p_holm"], row["logrank_statistic"]
    if reference["n_solved"] == 0:
        return Verdict(claim, "undecided", f"the reference solved no seed; {evidence}")
    if not (math.isfinite(p) and math.isfinite(statistic)):
        return Verdict(claim, "undecided", f"no log-rank test ({row['survival_note']}); {evidence}")
    slower, faster = p <= ALPHA and statistic < 0, p <= ALPHA and statistic > 0
    if claim.kind == "hurts":
        label = "agreed" if slower else "not" if faster else "undecided"
    elif claim.kind == "does_not_hurt":
        label = "not" if slower else "agreed"
    else:
        label = "not" if slower or faster else "agreed"
    if label == "agreed" and claim.kind != "hurts":
        detectable = row.get("detectable_g", math.nan)
        evidence += (
            f"; no harm found (the final-loss t-test has 80 % power only for g >= "
            f"{_number(detectable, '.2f')})"
        )
    return Verdict(claim, label, evidence)


def format_verdicts(verdicts: Sequence[Verdict]) -> str:
    """A markdown table: claim, verdict, the numbers it rests on."""
    lines = ["| claim | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {v.claim.text} | **{v.label}** | {v.reason} |" for v in verdicts]
    return "\n".join(lines)


def verdicts_by_group(
    claims: Sequence[Claim], rows: Sequence[Mapping[str, Any]]
) -> dict[tuple[str, int], list[Verdict]]:
    """The verdicts in every (task, length) group that has each claim's row and a reference."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["length"]), []).append(row)
    out = {}
    for key, group in groups.items():
        labels = {row["label"] for row in group}
        if all(c.row in labels for c in claims) and any(r["reference_row"] for r in group):
            out[key] = [verdict(claim, group) for claim in claims]
    return out
