"""What every command shares on the terminal: argument types, progress display."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any


def count(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (``_`` allowed)."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: give {low:,} to {high:,}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type: a number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds > 0")
    return value


class TerminalProgress:
    """A rich progress line on a terminal's stderr; nothing in a pipe or with -q.

    ``describe(report)`` returns ``(completed, total, text)``; the display is
    a bar when a total is known, else a spinner. Used as a context manager,
    it yields the callback to hand to a run (or ``None`` when disabled).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        describe: Callable[[Any], tuple[int | None, int | None, str]],
        *,
        unit: str = "",
    ) -> None:
        self._enabled = not getattr(args, "quiet", False) and sys.stderr.isatty()
        self._describe = describe
        self._unit = unit
        self._display: Any = None
        self._task: Any = None

    def __enter__(self) -> Callable[[Any], None] | None:
        if not self._enabled:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._display = Progress(
            TextColumn(self._unit),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._display.__enter__()
        self._task = self._display.add_task("", total=None)
        return self._update

    def _update(self, report: Any) -> None:
        completed, total, text = self._describe(report)
        self._display.update(
            self._task, completed=completed, total=total, description=text
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._display is not None:
            self._display.__exit__(None, None, None)
