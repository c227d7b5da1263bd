"""What a run shows while it trains: plain lines, and a live bar when stdout is a terminal.

The progress lines (variant k/n, step, training and held-out loss, steps/s, elapsed, time
left) are printed either way, so a log file or a pipe gets exactly what a terminal shows
above its bar. On a terminal a ``rich`` progress bar (rich comes with Flax) under the lines
shows the current variant's step, elapsed time and time left, ticking between evaluations.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import NamedTuple

__all__ = ["Display", "display"]


class Display(NamedTuple):
    """How a run reports: ``log(line)`` prints a line; ``advance(name, step, total)`` moves
    the bar of run ``name`` to ``step`` of ``total`` (nothing without a terminal)."""

    log: Callable[[str], None]
    advance: Callable[[str, int, int], None]


def _plain(line: str) -> None:
    print(line, flush=True)


@contextlib.contextmanager
def display(live: bool | None = None) -> Iterator[Display]:
    """The run's :class:`Display`: with a live bar when ``live`` (default: stdout is a
    terminal), plain lines otherwise. The bar is removed when the context ends."""
    if live is None:
        live = sys.stdout.isatty()
    if not live:
        yield Display(_plain, lambda name, step, total: None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(highlight=False)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    tasks: dict[str, int] = {}

    def advance(name: str, step: int, total: int) -> None:
        if name not in tasks:
            for other in tasks.values():  # one bar at a time: the run now training
                bar.update(other, visible=False)
            tasks[name] = bar.add_task(name, total=total, completed=step)
        bar.update(tasks[name], completed=step, total=total)

    with bar:
        yield Display(lambda line: console.print(line, markup=False, soft_wrap=True), advance)
