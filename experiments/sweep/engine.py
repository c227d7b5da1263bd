"""The sweep: runs a study's cells on a backend until each is done or has failed.

:func:`run_study` keeps up to the backend's capacity of cells running, in the grid's
order: the tuning cells first when the study tunes, each group's evaluation cell as soon
as the group's tuning cells are done (its value picked by
:data:`experiments.sweep.grid.SELECTION_RULE`), ahead of the tuning cells still pending.
A cell already done is never trained again; a cell another process is training (its lock
is held) is left to it; a cell whose attempt fails (an error, out of memory, a stall) is
recorded as failed with its last line and retried ``retries`` times, while the other
cells go on. A stop signal is forwarded to every running cell, which checkpoints; the
same command then resumes.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from experiments.sweep import grid, study
from experiments.sweep.grid import Cell

__all__ = ["Outcome", "current_cells", "run_study", "status_rows"]


class Outcome(NamedTuple):
    """What a sweep left: cell ids by state, and whether a signal stopped it."""

    done: list[str]
    failed: list[str]
    elsewhere: list[str]
    waiting: list[str]
    stopped: bool


def _group_picks(
    workdir: str | os.PathLike, spec: dict, cells: Sequence[Cell]
) -> tuple[list[Cell], dict[str, dict], list[str]]:
    """The evaluation cells whose tuning groups are done, the picks, and the groups still
    tuning."""
    evaluation, picks, waiting = [], {}, []
    for group, members in grid.tuning_groups(cells).items():
        found = {cell.id: study.cell_records(workdir, cell) for cell in members}
        if any(len(found[cell.id]) < len(cell.config.seeds) for cell in members):
            waiting.append(group)
            continue
        choice = grid.pick(spec["tune"], members, {k: list(v.values()) for k, v in found.items()})
        picks[group] = {
            "setting": spec["tune"],
            "candidates": choice.values,
            "scores": [list(score) for score in choice.scores],
            "picked": choice.value,
            "rule": grid.SELECTION_RULE,
            "tuning_cells": [cell.id for cell in members],
            "tuning_seeds": list(members[0].config.seeds),
        }
        evaluation.append(grid.eval_cell(spec, members, choice.value))
    return evaluation, picks, waiting


def current_cells(
    workdir: str | os.PathLike, spec: dict
) -> tuple[list[Cell], dict[str, dict], list[str]]:
    """Every cell known now (tuning cells, then the evaluation cells of finished groups),
    the picks made, and the groups still tuning."""
    cells = grid.expand(spec)
    if spec["tune"] is None:
        return cells, {}, []
    evaluation, picks, waiting = _group_picks(workdir, spec, cells)
    return cells + evaluation, picks, waiting


def _describe(workdir: str | os.PathLike, cell: Cell) -> str:
    found = study.cell_records(workdir, cell)
    losses = sorted(r["final"]["loss"] for r in found.values() if r["final"]["loss"] is not None)
    median = losses[len(losses) // 2] if losses else float("nan")
    return f"median final loss {median:.4g} over {len(found)} seeds"


def run_study(
    workdir: str | os.PathLike,
    spec: dict,
    backend: Any,
    *,
    stop_requested: Callable[[], bool],
    retries: int = 1,
    log: Callable[[str], None] = print,
) -> Outcome:
    """Runs every cell of ``spec`` in ``workdir`` on ``backend`` (see the module docstring).

    Args:
      workdir: the study directory (``study.json`` already written by
        :func:`experiments.sweep.study.open_study`).
      spec: the normalised spec.
      backend: a backend of :mod:`experiments.sweep.backends`.
      stop_requested: polled twice a second; True forwards a stop to every running cell
        and submits nothing more.
      retries: attempts after a failure, per cell and per sweep.
      log: receives one line per cell started and ended.
    """
    attempts: dict[str, int] = {}
    running: dict[concurrent.futures.Future, Cell] = {}
    gave_up: set[str] = set()
    elsewhere: set[str] = set()
    stopping = False
    capacity = getattr(backend, "capacity", None) or 10**6
    # The workdir is read again only when a cell has ended: nothing else frees a worker or
    # finishes a tuning group, and a study's records are many files.
    look, ready, picks = True, [], {}
    while True:
        if stop_requested() and not stopping:
            stopping = True
            log(f"stopping: {len(running)} running cell(s) checkpoint and stop.")
            backend.stop()
        if look:
            look = False
            cells, picks, _ = current_cells(workdir, spec)
            if picks:
                study.write_picks(workdir, picks)
            states = {cell.id: study.cell_state(workdir, cell) for cell in cells}
            in_flight = {cell.id for cell in running.values()}
            elsewhere = {c.id for c in cells if states[c.id] == "running" and c.id not in in_flight}
            ready = [
                cell
                for cell in cells
                if states[cell.id] in ("pending", "failed")
                and cell.id not in in_flight
                and cell.id not in gave_up
            ]
            # A tuned group's evaluation cell goes before the tuning cells still pending, so
            # that each group's results are complete as early as possible.
            ready.sort(key=lambda cell: cell.role != "eval")
        while ready and not stopping and len(running) < capacity:
            cell = ready.pop(0)
            attempts[cell.id] = attempts.get(cell.id, 0) + 1
            study.write_cell(workdir, cell, picks.get(cell.group) if cell.role == "eval" else None)
            again = f" (attempt {attempts[cell.id]})" if attempts[cell.id] > 1 else ""
            log(f"start {cell.id}{again}")
            future = backend.submit(grid.cell_flags(cell.config), study.cell_dir(workdir, cell))
            running[future] = cell
        if not running:
            break
        finished, _ = concurrent.futures.wait(
            running, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
        )
        look = look or bool(finished)
        for future in finished:
            cell = running.pop(future)
            try:
                result = future.result()
            except Exception as error:  # the backend lost the task (a dead node, a cancel)
                code, message = -1, f"{type(error).__name__}: {error}"
            else:
                code, message = result.exit_status, result.message
            state = study.cell_state(workdir, cell)
            if code == 0 and state == "done":
                study.clear_failure(workdir, cell)
                log(f"done  {cell.id} ({_describe(workdir, cell)})")
                continue
            if state in ("done", "running"):  # another process took it between our looks
                log(f"left  {cell.id} to the process that holds it")
                continue
            if stopping and code == 75:
                log(f"stopped {cell.id}: {message}")
                continue
            study.write_failure(workdir, cell, code, message)
            if attempts[cell.id] > retries:
                gave_up.add(cell.id)
            retry = " (giving up for this run)" if cell.id in gave_up else "; retrying"
            log(f"FAILED {cell.id} (exit status {code}): {message}{retry}")
    cells, _, waiting = current_cells(workdir, spec)
    states = {cell.id: study.cell_state(workdir, cell) for cell in cells}
    return Outcome(
        done=[c.id for c in cells if states[c.id] == "done"],
        failed=[c.id for c in cells if states[c.id] == "failed"],
        elsewhere=sorted(elsewhere),
        waiting=waiting,
        stopped=stopping,
    )


def status_rows(workdir: str | os.PathLike) -> tuple[list[tuple[str, str, str, str]], str]:
    """``--status``: one row per cell ``(state, id, seeds done, last failure)`` and a
    summary line. Groups still tuning appear as one "waiting" row each."""
    spec = study.read_spec(workdir)
    cells, _, waiting = current_cells(workdir, spec)
    rows, counts = [], {}
    for cell in cells:
        state = study.cell_state(workdir, cell)
        counts[state] = counts.get(state, 0) + 1
        done = len(study.cell_records(workdir, cell))
        failure = study.read_failure(workdir, cell) if state == "failed" else None
        message = f"exit status {failure['exit_status']}: {failure['message']}" if failure else ""
        rows.append((state, cell.id, f"{done}/{len(cell.config.seeds)}", message))
    for group in waiting:
        rows.append(("waiting", group, "—", "evaluation cell after its tuning cells"))
    if waiting:
        counts["waiting for tuning"] = len(waiting)
    order = ("done", "running", "pending", "failed", "waiting for tuning")
    summary = f"{len(rows)} cells: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in order)
    return rows, summary
