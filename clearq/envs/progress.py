"""What a build shows while it runs: a rich spinner on a terminal, nothing elsewhere.

A builder reports the stage it is in and each line its installer prints; the terminal
display shows the stage, the latest line and the time so far, and disappears when the
build ends. An agent whose stderr is a file or a pipe shows nothing (its caller keeps
the installer's output in the error when a build fails).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

__all__ = ["BuildProgress", "NullProgress", "RichProgress", "terminal_progress"]

_LINE_CHARS = 70


class BuildProgress(Protocol):
    """Where a build reports what it is doing."""

    def stage(self, text: str) -> None:
        """A new step began (``creating venv``, ``installing 12 requirements``)."""

    def output(self, line: str) -> None:
        """The installer printed ``line``."""


class NullProgress:
    """Shows nothing."""

    def stage(self, text: str) -> None:
        """Ignored."""

    def output(self, line: str) -> None:
        """Ignored."""


class RichProgress:
    """A one-line rich display: spinner, environment, stage, latest installer line."""

    def __init__(self, progress: Progress, task: TaskID, label: str) -> None:
        self._progress = progress
        self._task = task
        self._label = escape(label)
        self._stage = ""

    def stage(self, text: str) -> None:
        """Show the new stage."""
        self._stage = escape(text)
        self._progress.update(self._task, description=f"{self._label}: {self._stage}")

    def output(self, line: str) -> None:
        """Show the latest line beside the stage."""
        tail = escape(line.strip()[:_LINE_CHARS])
        if tail:
            self._progress.update(
                self._task, description=f"{self._label}: {self._stage} [dim]{tail}[/dim]"
            )


@contextmanager
def terminal_progress(label: str) -> Iterator[BuildProgress]:
    """A RichProgress on stderr while the block runs when stderr is a terminal, else none."""
    if not sys.stderr.isatty():
        yield NullProgress()
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"building {escape(label)}", total=None)
        yield RichProgress(progress, task, f"building {label}")
