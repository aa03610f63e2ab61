"""Printing: rich tables for people, JSON for programs, errors on stderr.

rich loads on the first line printed for a person (``--json`` output never needs it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clearq.enums import TaskStatus

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

# Wide enough that a table with full task ids stays on one line when not on a terminal.
_PIPE_WIDTH = 160

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for programs, nothing else.")]
"""The ``--json`` flag every listing command takes."""
_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

STATUS_STYLES = {
    TaskStatus.CREATED: "white",
    TaskStatus.QUEUED: "cyan",
    TaskStatus.RUNNING: "yellow",
    TaskStatus.COMPLETED: "green",
    TaskStatus.FAILED: "red",
    TaskStatus.STOPPED: "magenta",
}


@functools.cache
def out() -> Console:
    """The console for people on stdout (160 columns wide when not on a terminal)."""
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = _PIPE_WIDTH
    return console


@functools.cache
def err() -> Console:
    """The console for people on stderr."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def say(message: str) -> None:
    """Print a line for a person on stdout, taken literally (no rich markup)."""
    out().print(message, markup=False, soft_wrap=True)


def warn(message: str) -> None:
    """Print ``warning: message`` in yellow on stderr (the command still succeeds)."""
    from rich.text import Text

    err().print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)


def error(message: str) -> None:
    """Print ``error: message`` in red on stderr."""
    from rich.text import Text

    err().print(Text(f"error: {message}", style="red"), soft_wrap=True)


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout, and nothing else."""
    typer.echo(json.dumps(data, indent=2))


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as plain JSON-ready values."""
    return model.model_dump(mode="json")


def dump_all(models: Iterable[BaseModel]) -> list[dict[str, Any]]:
    """Models as a list of plain JSON-ready values."""
    return [dump(m) for m in models]


def table(*columns: str) -> Table:
    """A plain table with these column headers."""
    from rich.table import Table

    grid = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        grid.add_column(name, no_wrap=name == "ID")
    return grid


def status_text(status: TaskStatus) -> Text:
    """A task status, coloured."""
    from rich.text import Text

    return Text(status.value, style=STATUS_STYLES[status])


def human_duration(seconds: float) -> str:
    """A duration as a person says it: ``45s``, ``12m``, ``3h 20m``, ``2d 4h``."""
    s = max(0, int(seconds))
    if s < _MINUTE:
        return f"{s}s"
    if s < _HOUR:
        return f"{s // _MINUTE}m"
    if s < _DAY:
        return f"{s // _HOUR}h {s % _HOUR // _MINUTE}m"
    return f"{s // _DAY}d {s % _DAY // _HOUR}h"


def age(when: datetime | None, *, now: datetime | None = None) -> str:
    """How far ``when`` is from now: ``3m ago``, ``in 40s``, or ``-`` for never."""
    if when is None:
        return "-"
    elapsed = ((now or datetime.now(UTC)) - when).total_seconds()
    if elapsed < 0:
        return f"in {human_duration(-elapsed)}"
    return f"{human_duration(elapsed)} ago"


def timestamp(when: datetime | None) -> str:
    """A timestamp in UTC with its age, or ``-``."""
    if when is None:
        return "-"
    return f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({age(when)})"
