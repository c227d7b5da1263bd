"""Compare trained variants: summary statistics, a significance test and learning curves.

Reads the JSON records that :mod:`experiments.shared.records` writes (format
``"lstmx.record/1"``, one file per task, sequence length, variant and seed) and summarises them per
``(task, length, variant)``::

    from lstmx import compare

    records, problems = compare.load_records("runs/copy")     # problems: one line per bad file
    rows = compare.summarise(records, solve_fraction=0.1)
    print(compare.format_markdown(rows))
    compare.write_csv(rows, "runs/copy/summary.csv")
    compare.plot_learning_curves(records, "runs/copy/learning_curves_")

Definitions used throughout (the tables state them too):

* **Diverged** seed: ``status == "diverged"`` or a non-finite final loss. Diverged seeds are
  left out of the loss and accuracy statistics, of the test and of the curves, are counted
  in their own column, and count as unsolved.
* **Solved** seed: final held-out loss ``<= solve_fraction * baseline``, where ``baseline``
  is the task's memoryless loss stored in the record (copy: ``10 ln 8 / (T + 20)``,
  adding: ``1/6``). ``solve_fraction = 0.1`` by default.
* **Steps to solve**: the first evaluation step whose held-out loss is at or below the
  threshold; the median over solved seeds is reported.
* **Test**: Welch's unequal-variance t-test of a variant's final losses against those of
  the ``lstm`` variant with the same task and length, two-sided, Welch–Satterthwaite
  degrees of freedom, no correction for multiple comparisons. The Student-t tail comes
  from the regularised incomplete beta function, evaluated here with a continued fraction
  in float64 Python arithmetic: it agrees with SciPy to better than 1e-10 relative (df
  from 0.5 to 5000, p down to 1e-300), where ``jax.scipy.special.betainc`` without x64
  gives float32's ~1e-7; it needs neither SciPy nor the x64 flag nor a JIT compile.

Files are written atomically: to a temporary file in the target's directory, then
``os.replace``. Plots use matplotlib's object-oriented API on the Agg canvas (no pyplot),
so importing this module never changes the caller's matplotlib backend or global state.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from experiments.shared.records import RECORD_FORMAT, write_atomic

__all__ = [
    "DEFAULT_SOLVE_FRACTION",
    "RECORD_FORMAT",
    "REFERENCE_VARIANT",
    "WelchResult",
    "format_markdown",
    "load_records",
    "plot_learning_curves",
    "solve_rate_column",
    "student_t_two_sided_p",
    "summarise",
    "welch_t_test",
    "write_csv",
    "write_summary",
]


"""The ``format`` field this module reads."""

DEFAULT_SOLVE_FRACTION = 0.1
"""A seed is solved when its final loss is at most this fraction of the memoryless baseline."""

REFERENCE_VARIANT = "lstm"
"""Every variant is tested against this one within its (task, length) group."""

_MISSING = "—"
_TASK_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


# --------------------------------------------------------------------------------------
# Loading and validating records.
# --------------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_loss(v: Any) -> bool:
    """A loss may be any number, NaN/inf included (Python's JSON writes them), or null."""
    return v is None or _is_number(v)


def _check_record(rec: Any) -> str | None:
    """Returns what is wrong with a parsed record, or None when it is usable."""
    if not isinstance(rec, dict):
        return f"top level is {type(rec).__name__}, expected a JSON object"
    required = (
        "format",
        "task",
        "length",
        "variant",
        "seed",
        "baseline",
        "num_params",
        "history",
        "final",
        "status",
        "steps_per_second",
    )
    missing = [k for k in required if k not in rec]
    if missing:
        return "missing key(s) " + ", ".join(repr(k) for k in missing)
    if rec["format"] != RECORD_FORMAT:
        return f"format is {rec['format']!r}, expected {RECORD_FORMAT!r}"
    if not isinstance(rec["task"], str) or not _TASK_NAME.match(rec["task"]):
        return f"'task' must be a name of letters, digits, '_', '.', '-'; got {rec['task']!r}"
    if not _is_int(rec["length"]) or rec["length"] < 1:
        return f"'length' must be a positive integer; got {rec['length']!r}"
    if "label" in rec and (not isinstance(rec["label"], str) or not rec["label"]):
        return "label must be a non-empty string when present"
    if not isinstance(rec["variant"], str) or not rec["variant"]:
        return f"'variant' must be a non-empty string; got {rec['variant']!r}"
    if not _is_int(rec["seed"]):
        return f"'seed' must be an integer; got {rec['seed']!r}"
    b = rec["baseline"]
    if not _is_number(b) or not math.isfinite(b) or b <= 0:
        return f"'baseline' must be a finite positive number; got {b!r}"
    if not _is_int(rec["num_params"]) or rec["num_params"] < 0:
        return f"'num_params' must be a non-negative integer; got {rec['num_params']!r}"
    sps = rec["steps_per_second"]
    if sps is not None and not _is_number(sps):
        return f"'steps_per_second' must be a number or null; got {sps!r}"
    if rec["status"] not in ("finished", "diverged"):
        return f"'status' must be 'finished' or 'diverged'; got {rec['status']!r}"
    if "diverged_step" in rec and not (
        rec["diverged_step"] is None or _is_int(rec["diverged_step"])
    ):
        return f"'diverged_step' must be an integer or null; got {rec['diverged_step']!r}"
    if "config" in rec and not isinstance(rec["config"], dict):
        return f"'config' must be an object; got {type(rec['config']).__name__}"
    final = rec["final"]
    if not isinstance(final, dict):
        return f"'final' must be an object; got {type(final).__name__}"
    for key in ("step", "loss"):
        if key not in final:
            return f"'final' is missing {key!r}"
    if not _is_int(final["step"]):
        return f"'final.step' must be an integer; got {final['step']!r}"
    if not _is_loss(final["loss"]):
        return f"'final.loss' must be a number or null; got {final['loss']!r}"
    if not _is_loss(final.get("accuracy")):
        return f"'final.accuracy' must be a number or null; got {final['accuracy']!r}"
    history = rec["history"]
    if not isinstance(history, list):
        return f"'history' must be a list; got {type(history).__name__}"
    for i, point in enumerate(history):
        if not isinstance(point, dict) or "step" not in point or "loss" not in point:
            return f"'history[{i}]' must be an object with 'step' and 'loss'"
        if not _is_int(point["step"]) or not _is_loss(point["loss"]):
            return f"'history[{i}]' has a non-integer step or non-numeric loss: {point!r}"
    return None


def load_records(workdir: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Reads and validates every ``*.json`` under ``workdir/records/`` (recursively).

    A file that cannot be read, is not JSON, or lacks a required key or has one of the
    wrong type is skipped and reported; nothing is ever modified or deleted. Required:
    ``format`` (== :data:`RECORD_FORMAT`), ``task``, ``length``, ``variant``, ``seed``,
    ``baseline``, ``num_params``, ``history`` (list of ``{"step", "loss", ...}``),
    ``final`` (``{"step", "loss", "accuracy"?, ...}``), ``status`` and
    ``steps_per_second``; ``config`` and ``diverged_step`` are type-checked when present.
    A second record with the same task, length, variant and seed as an earlier one (in
    sorted path order) is reported and skipped.

    Args:
      workdir: the experiment directory (the one passed as ``--workdir`` to training).

    Returns:
      ``(records, problems)``: the valid records as dicts, each with an added ``"_path"``
      (the file it came from), in sorted path order; and one line per skipped file, each
      starting with the file's path. Both are empty when ``workdir/records`` does not
      exist.
    """
    root = Path(workdir) / "records"
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[tuple[str, int, str, int], Path] = {}
    for path in sorted(p for p in root.rglob("*.json") if p.is_file()):
        try:
            with open(path, encoding="utf-8") as f:
                rec = json.load(f)
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{path}: cannot read: {e}")
            continue
        except json.JSONDecodeError as e:
            problems.append(f"{path}: not valid JSON: {e}")
            continue
        except RecursionError:
            problems.append(f"{path}: not valid JSON: nested too deeply")
            continue
        problem = _check_record(rec)
        if problem is not None:
            problems.append(f"{path}: {problem}")
            continue
        key = (rec["task"], rec["length"], _label(rec), rec["seed"])
        if key in seen:
            problems.append(
                f"{path}: duplicate of {seen[key]} (same task, length, variant and seed)"
            )
            continue
        seen[key] = path
        rec["_path"] = str(path)
        records.append(rec)
    return records, problems


# --------------------------------------------------------------------------------------
# Welch's t-test with a self-contained Student-t tail.
# --------------------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz; Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 20_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b})")


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularised incomplete beta I_x(a, b), with ``y = 1 - x`` passed in exactly."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, y) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """Two-sided tail probability ``P(|T| >= |t|)`` of Student's t with ``df`` > 0.

    Uses ``p = I_{df / (df + t^2)}(df / 2, 1 / 2)`` (Abramowitz & Stegun 26.7.1 with
    26.5.27), evaluated by :func:`_betainc`'s continued fraction in float64.

    Args:
      t: the statistic (any real; ``±inf`` gives 0).
      df: degrees of freedom, need not be an integer.

    Returns:
      The p-value in [0, 1]; NaN when ``t`` or ``df`` is NaN or ``df <= 0``.
    """
    t, df = float(t), float(df)
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    t2 = t * t
    # x = df / (df + t^2) and 1 - x = t^2 / (df + t^2), each without cancellation.
    p = _betainc(df / 2.0, 0.5, df / (df + t2), t2 / (df + t2))
    return min(max(p, 0.0), 1.0)


class WelchResult(NamedTuple):
    """Result of :func:`welch_t_test`.

    Attributes:
      t: ``(mean(a) - mean(b)) / sqrt(var_a / n_a + var_b / n_b)`` (sample variances);
        negative when ``a`` has the lower mean (for losses: ``a`` is better).
      df: Welch–Satterthwaite degrees of freedom.
      p: two-sided p-value.
      note: empty, or why ``t``/``df``/``p`` are NaN.
    """

    t: float
    df: float
    p: float
    note: str


def _sample_var(x: np.ndarray) -> float:
    """ddof=1 variance, exactly 0 for constant samples (np.var's rounded mean can miss)."""
    return 0.0 if np.all(x == x[0]) else float(np.var(x, ddof=1))


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's unequal-variance two-sample t-test, two-sided.

    Matches ``scipy.stats.ttest_ind(a, b, equal_var=False)`` without needing SciPy.

    Args:
      a: [n_a] finite samples (e.g. a variant's final losses over seeds).
      b: [n_b] finite samples (e.g. the ``lstm`` variant's).

    Returns:
      A :class:`WelchResult`. Degenerate inputs return NaNs with a note instead of raising:
      fewer than two samples on either side, or zero variance on both sides.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    na, nb = a.size, b.size
    nan = math.nan
    if na < 2 or nb < 2:
        return WelchResult(nan, nan, nan, f"test needs n >= 2 on both sides (n = {na} vs {nb})")
    sa = _sample_var(a) / na
    sb = _sample_var(b) / nb
    se2 = sa + sb
    if se2 == 0.0:
        return WelchResult(nan, nan, nan, "test undefined: zero variance in both groups")
    t = (float(np.mean(a)) - float(np.mean(b))) / math.sqrt(se2)
    r = sa / se2  # df = se2^2 / (sa^2/(na-1) + sb^2/(nb-1)), written without under/overflow.
    df = 1.0 / (r * r / (na - 1) + (1.0 - r) ** 2 / (nb - 1))
    return WelchResult(t, df, student_t_two_sided_p(t, df), "")


# --------------------------------------------------------------------------------------
# Summaries.
# --------------------------------------------------------------------------------------


def _float(v: Any) -> float:
    return math.nan if v is None else float(v)


def _is_diverged(rec: Mapping[str, Any]) -> bool:
    return rec["status"] == "diverged" or not math.isfinite(_float(rec["final"]["loss"]))


def _mean_std_median(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean, sample std (ddof=1) and median; NaN where undefined (n=0; std for n=1)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    arr = np.asarray(values, dtype=np.float64)
    std = float(np.std(arr, ddof=1)) if n > 1 else math.nan
    return float(np.mean(arr)), std, float(np.median(arr))


def _steps_to_solve(rec: Mapping[str, Any], threshold: float) -> int:
    """First evaluation step whose held-out loss is at or below ``threshold``."""
    for point in sorted(rec["history"], key=lambda p: p["step"]):
        if _float(point["loss"]) <= threshold:
            return point["step"]
    return rec["final"]["step"]  # Solved at the final evaluation, which history lacks.


def _label(rec: Mapping[str, Any]) -> str:
    """The name a record is compared under: its ``label`` (e.g. "lstm+chrono") or variant."""
    return rec.get("label") or rec["variant"]


def _variant_order(variants: Iterable[str]) -> list[str]:
    """The reference variant first, then the others alphabetically."""
    return sorted(set(variants), key=lambda v: (v != REFERENCE_VARIANT, v))


def _group(records: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], dict[str, list]]:
    groups: dict[tuple[str, int], dict[str, list]] = {}
    for rec in records:
        groups.setdefault((rec["task"], rec["length"]), {}).setdefault(_label(rec), [])
        groups[(rec["task"], rec["length"])][_label(rec)].append(rec)
    return {k: groups[k] for k in sorted(groups)}


def _group_baseline(by_variant: Mapping[str, list]) -> tuple[float, str]:
    baselines = [float(r["baseline"]) for recs in by_variant.values() for r in recs]
    baseline = statistics.median(baselines)
    if max(baselines) - min(baselines) > 1e-6 * baseline:
        return baseline, (
            f"records disagree on the baseline ({min(baselines):.6g}..{max(baselines):.6g}); "
            "the median is used"
        )
    return baseline, ""


def summarise(
    records: Sequence[Mapping[str, Any]], solve_fraction: float = DEFAULT_SOLVE_FRACTION
) -> list[dict[str, Any]]:
    """One row of statistics per (task, length, variant), as defined in the module docstring.

    Args:
      records: valid records, as returned by :func:`load_records`.
      solve_fraction: a seed is solved when its final held-out loss is at most
        ``solve_fraction * baseline``; in (0, 1].

    Returns:
      Rows sorted by task, length, then variant (``lstm`` first). Each row is a dict with
      keys ``task, length, variant, n_seeds, n_diverged, n_finite, loss_mean, loss_std,
      loss_median, accuracy_mean, accuracy_std, baseline, solve_fraction,
      solve_threshold, n_solved, solve_rate, steps_to_solve_median, num_params,
      steps_per_second, welch_t, welch_df, welch_p, test_note, notes`` (``notes``: list of
      strings). Undefined statistics are NaN (e.g. std for one seed, steps to solve when
      nothing solved, the test for the ``lstm`` row itself or when ``lstm`` is absent; then
      ``test_note`` says why).

    Raises:
      ValueError: ``solve_fraction`` outside (0, 1].
    """
    if not (0.0 < solve_fraction <= 1.0):
        raise ValueError(f"solve_fraction must be in (0, 1]; got {solve_fraction!r}")
    rows: list[dict[str, Any]] = []
    for (task, length), by_variant in _group(records).items():
        baseline, baseline_note = _group_baseline(by_variant)
        threshold = solve_fraction * baseline
        reference = by_variant.get(REFERENCE_VARIANT)
        ref_losses = (
            [_float(r["final"]["loss"]) for r in reference if not _is_diverged(r)]
            if reference is not None
            else None
        )
        for variant in _variant_order(by_variant):
            recs = sorted(by_variant[variant], key=lambda r: r["seed"])
            finite = [r for r in recs if not _is_diverged(r)]
            losses = [_float(r["final"]["loss"]) for r in finite]
            accuracies = [_float(r["final"].get("accuracy")) for r in finite]
            accuracies = [a for a in accuracies if math.isfinite(a)]
            solved = [r for r in finite if _float(r["final"]["loss"]) <= threshold]
            loss_mean, loss_std, loss_median = _mean_std_median(losses)
            acc_mean, acc_std, _ = _mean_std_median(accuracies)
            speeds = [_float(r["steps_per_second"]) for r in recs]
            speeds = [v for v in speeds if math.isfinite(v) and v > 0]
            notes = [baseline_note] if baseline_note else []
            params = sorted({r["num_params"] for r in recs})
            if len(params) > 1:
                notes.append(f"parameter counts differ across seeds: {params}; median shown")
            if variant == REFERENCE_VARIANT:
                test = WelchResult(math.nan, math.nan, math.nan, "reference variant")
            elif ref_losses is None:
                test = WelchResult(
                    math.nan, math.nan, math.nan, f"no {REFERENCE_VARIANT!r} records"
                )
            else:
                test = welch_t_test(losses, ref_losses)
            rows.append(
                {
                    "task": task,
                    "length": length,
                    "variant": variant,
                    "n_seeds": len(recs),
                    "n_diverged": len(recs) - len(finite),
                    "n_finite": len(finite),
                    "loss_mean": loss_mean,
                    "loss_std": loss_std,
                    "loss_median": loss_median,
                    "accuracy_mean": acc_mean,
                    "accuracy_std": acc_std,
                    "baseline": baseline,
                    "solve_fraction": float(solve_fraction),
                    "solve_threshold": threshold,
                    "n_solved": len(solved),
                    "solve_rate": len(solved) / len(recs),
                    "steps_to_solve_median": (
                        float(np.median([_steps_to_solve(r, threshold) for r in solved]))
                        if solved
                        else math.nan
                    ),
                    "num_params": int(np.median([r["num_params"] for r in recs])),
                    "steps_per_second": float(np.median(speeds)) if speeds else math.nan,
                    "welch_t": test.t,
                    "welch_df": test.df,
                    "welch_p": test.p,
                    "test_note": test.note,
                    "notes": notes,
                }
            )
    return rows


# --------------------------------------------------------------------------------------
# Markdown and CSV.
# --------------------------------------------------------------------------------------


def _fmt(v: float, spec: str) -> str:
    return _MISSING if v is None or not math.isfinite(v) else format(v, spec)


def _common_solve_fraction(rows: Sequence[Mapping[str, Any]], solve_fraction: float | None):
    fractions = {row["solve_fraction"] for row in rows}
    if len(fractions) > 1:
        raise ValueError(f"rows mix solve fractions {sorted(fractions)}")
    if solve_fraction is None:
        return fractions.pop() if fractions else DEFAULT_SOLVE_FRACTION
    if fractions and not math.isclose(fractions.pop(), solve_fraction):
        raise ValueError(
            f"rows were summarised with solve_fraction={rows[0]['solve_fraction']!r}, "
            f"not {solve_fraction!r}"
        )
    return solve_fraction


def format_markdown(rows: Sequence[Mapping[str, Any]], solve_fraction: float | None = None) -> str:
    """Markdown: one section and table per (task, length), the definitions in each caption.

    Args:
      rows: from :func:`summarise`.
      solve_fraction: the fraction the rows were summarised with; None takes it from the
        rows. Given only to state it, so it must agree with the rows.

    Returns:
      The markdown text (ends with a newline).

    Raises:
      ValueError: ``solve_fraction`` disagrees with the rows.
    """
    fraction = _common_solve_fraction(rows, solve_fraction)
    header = (
        "| variant | seeds | diverged | final loss mean ± std | final loss median "
        "| accuracy mean ± std | solved | median steps to solve | params | steps/s "
        f"| t vs {REFERENCE_VARIANT} | p vs {REFERENCE_VARIANT} |"
    )
    out: list[str] = []
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["length"]), []).append(row)
    for (task, length), group in groups.items():
        baseline = group[0]["baseline"]
        out += [
            f"## {task}, T={length}",
            "",
            f"Memoryless baseline loss {baseline:.4g}. A seed is solved when its final "
            f"held-out loss is ≤ {fraction:g} × baseline = {fraction * baseline:.4g}; "
            "steps to solve = first evaluation step at or below that, median over solved "
            "seeds. Loss and accuracy statistics are over non-diverged seeds (std: sample, "
            "ddof=1); diverged seeds count as unsolved. Test: Welch's unequal-variance "
            f"t-test of final loss against `{REFERENCE_VARIANT}`, two-sided "
            "(Welch–Satterthwaite df; t < 0: lower loss than "
            f"`{REFERENCE_VARIANT}`; not corrected for multiple comparisons).",
            "",
            header,
            "|" + "---|" * 12,
        ]
        notes: list[str] = []
        for row in group:
            loss = _fmt(row["loss_mean"], ".4g")
            if math.isfinite(row["loss_mean"]):
                loss += " ± " + _fmt(row["loss_std"], ".2g")
            acc = _fmt(row["accuracy_mean"], ".3f")
            if math.isfinite(row["accuracy_mean"]):
                acc += " ± " + _fmt(row["accuracy_std"], ".3f")
            solved = f"{row['n_solved']}/{row['n_seeds']} ({100 * row['solve_rate']:.0f}%)"
            cells = [
                f"`{row['variant']}`",
                str(row["n_seeds"]),
                str(row["n_diverged"]),
                loss,
                _fmt(row["loss_median"], ".4g"),
                acc,
                solved,
                _fmt(row["steps_to_solve_median"], ".0f"),
                f"{row['num_params']:,}",
                _fmt(row["steps_per_second"], ".1f"),
                _fmt(row["welch_t"], ".2f"),
                _fmt(row["welch_p"], ".2g"),
            ]
            out.append("| " + " | ".join(cells) + " |")
            if row["test_note"] and row["test_note"] != "reference variant":
                notes.append(f"`{row['variant']}`: {row['test_note']}")
            notes += [f"`{row['variant']}`: {note}" for note in row["notes"]]
        if notes:
            out += ["", "Notes: " + "; ".join(notes) + "."]
        out.append("")
    return "\n".join(out)


def solve_rate_column(solve_fraction: float) -> str:
    """The CSV column name of the solve rate, which states the threshold."""
    return f"solve_rate_loss_le_{solve_fraction:g}x_baseline"


_CSV_FIELDS = (
    "task",
    "length",
    "variant",
    "n_seeds",
    "n_diverged",
    "n_finite",
    "loss_mean",
    "loss_std",
    "loss_median",
    "accuracy_mean",
    "accuracy_std",
    "baseline",
    "solve_fraction",
    "solve_threshold",
    "n_solved",
    "solve_rate",
    "steps_to_solve_median",
    "num_params",
    "steps_per_second",
    "welch_t",
    "welch_df",
    "welch_p",
    "test_note",
    "notes",
)


def _csv_cell(v: Any) -> Any:
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    if isinstance(v, list):
        return "; ".join(v)
    return v


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Writes the rows as CSV, atomically; undefined values are empty cells.

    The solve-rate column is named after its threshold (see :func:`solve_rate_column`),
    the Welch columns ``welch_*_vs_lstm``.

    Args:
      rows: from :func:`summarise` (one solve fraction throughout).
      path: the CSV file to write.

    Raises:
      ValueError: the rows mix solve fractions.
    """
    fraction = _common_solve_fraction(rows, None)
    rename = {
        "solve_rate": solve_rate_column(fraction),
        "welch_t": f"welch_t_vs_{REFERENCE_VARIANT}",
        "welch_df": f"welch_df_vs_{REFERENCE_VARIANT}",
        "welch_p": f"welch_p_vs_{REFERENCE_VARIANT}",
    }
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([rename.get(f, f) for f in _CSV_FIELDS])
    for row in rows:
        writer.writerow([_csv_cell(row[f]) for f in _CSV_FIELDS])
    write_atomic(path, buf.getvalue().encode("utf-8"))


# --------------------------------------------------------------------------------------
# Learning curves.
# --------------------------------------------------------------------------------------


def _curve(recs: Sequence[Mapping[str, Any]], quartiles: bool):
    """Steps [S], median [S], band low [S], band high [S] over seeds, per step."""
    by_step: dict[int, list[float]] = {}
    for rec in recs:
        for point in rec["history"]:
            loss = _float(point["loss"])
            if math.isfinite(loss) and loss > 0:  # Log axis: only positive losses.
                by_step.setdefault(point["step"], []).append(loss)
    steps = np.asarray(sorted(by_step), dtype=np.float64)
    values = [np.asarray(by_step[s]) for s in sorted(by_step)]
    median = np.asarray([np.median(v) for v in values])
    q = (25, 75) if quartiles else (0, 100)
    low = np.asarray([np.percentile(v, q[0]) for v in values])
    high = np.asarray([np.percentile(v, q[1]) for v in values])
    return steps, median, low, high


def plot_learning_curves(
    records: Sequence[Mapping[str, Any]],
    path_prefix: str | os.PathLike[str],
    solve_fraction: float | None = None,
) -> list[str]:
    """One PNG per (task, length) of held-out loss against training step, log scale.

    Per variant: the median over its non-diverged seeds as a line and a shaded band, the
    interquartile range (25–75 %) when the variant has at least 4 such seeds, else the
    min–max range (the legend says which, and how many diverged seeds are left out). The
    task's memoryless baseline is a dashed line; the solve threshold a dotted one when
    ``solve_fraction`` is given.

    Args:
      records: valid records, as returned by :func:`load_records`.
      path_prefix: files are written (atomically) to ``f"{path_prefix}{task}_T{length}.png"``,
        e.g. ``"runs/copy/learning_curves_"``.
      solve_fraction: if given, also draw the solve threshold ``solve_fraction * baseline``.

    Returns:
      The paths written, in (task, length) order.
    """
    written: list[str] = []
    for (task, length), by_variant in _group(records).items():
        baseline, _ = _group_baseline(by_variant)
        fig = Figure(figsize=(7.5, 4.8), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for i, variant in enumerate(_variant_order(by_variant)):
            recs = by_variant[variant]
            finite = [r for r in recs if not _is_diverged(r)]
            n_div = len(recs) - len(finite)
            color = f"C{i % 10}"
            dropped = f", {n_div} diverged not shown" if n_div else ""
            if not finite:
                ax.plot([], [], color=color, label=f"{variant} (all {len(recs)} seeds diverged)")
                continue
            quartiles = len(finite) >= 4
            steps, median, low, high = _curve(finite, quartiles)
            band = "IQR" if quartiles else "min–max"
            label = f"{variant} (n={len(finite)}, band {band}{dropped})"
            if steps.size == 0:
                ax.plot([], [], color=color, label=label + ", no positive losses")
                continue
            ax.plot(steps, median, color=color, linewidth=1.8, label=label)
            ax.fill_between(steps, low, high, color=color, alpha=0.2, linewidth=0)
        ax.axhline(
            baseline,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"memoryless baseline ({baseline:.4g})",
        )
        if solve_fraction is not None:
            ax.axhline(
                solve_fraction * baseline,
                color="0.45",
                linestyle=":",
                linewidth=1.2,
                label=f"solve threshold ({solve_fraction:g} × baseline)",
            )
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out loss (log scale)")
        ax.set_title(
            f"{task}, T={length}: median over seeds; band = interquartile range "
            "(n ≥ 4) or min–max (n < 4)",
            fontsize=10,
        )
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120)
        path = f"{os.fspath(path_prefix)}{task}_T{length}.png"
        write_atomic(path, buf.getvalue())
        written.append(path)
    return written


def write_summary(
    records: Sequence[Mapping[str, Any]],
    problems: Sequence[str],
    output_dir: str | os.PathLike[str],
    solve_fraction: float = DEFAULT_SOLVE_FRACTION,
) -> tuple[str, list[Path]]:
    """Writes ``summary.md``, ``summary.csv`` and the learning-curve PNGs to ``output_dir``.

    Args:
      records: valid records (from :func:`load_records`).
      problems: the records that were skipped, listed at the end of ``summary.md``.
      output_dir: where the files go (created if needed).
      solve_fraction: a seed is solved when its final loss <= this times the baseline.

    Returns:
      The markdown tables and the paths written.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    rows = summarise(records, solve_fraction=solve_fraction)
    plots = plot_learning_curves(
        records, output_dir / "learning_curves_", solve_fraction=solve_fraction
    )
    tables = format_markdown(rows, solve_fraction)
    skipped = f"; {len(problems)} skipped (listed at the end)." if problems else "."
    document = [
        "# Comparison of variants",
        "",
        f"{len(records)} records{skipped}",
        "",
        tables,
        "## Learning curves",
        "",
        *[f"![{Path(p).stem}]({Path(p).name})" for p in plots],
        "",
    ]
    if problems:
        document += ["## Skipped records", "", *[f"* {p}" for p in problems], ""]
    summary_md, summary_csv = output_dir / "summary.md", output_dir / "summary.csv"
    write_atomic(summary_md, "\n".join(document).encode("utf-8"))
    write_csv(rows, summary_csv)
    return tables, [summary_md, summary_csv, *map(Path, plots)]
