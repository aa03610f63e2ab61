"""What a run reports beyond logs and scalars: plots and debug samples, as rows.

Standard library only, like ``runlink`` (a training script imports it on its way to
``Task.init``). A plot is a plotly figure stored as JSON; a debug sample is a file the
run wrote under its task's output location, and its row says where and what it is. Their
statements are in ``statements.py``; ``fenced.append`` writes them inside the same fenced
transaction as a batch of logs and scalars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clearq.valueclass import fields, value_class

PLOT_KINDS = frozenset(
    {
        "plotly",
        "matplotlib",
        "table",
        "histogram",
        "confusion_matrix",
        "scatter2d",
        "scatter3d",
        "surface",
        "line",
    }
)
SAMPLE_KINDS = frozenset({"image", "audio", "video", "html", "text", "file"})

# extension -> (kind, content type), one table for the writer and for the page that serves
# the files (which never trusts a row's own content type). Anything else is a plain file.
SAMPLE_TYPES: dict[str, tuple[str, str]] = {
    "png": ("image", "image/png"),
    "jpg": ("image", "image/jpeg"),
    "jpeg": ("image", "image/jpeg"),
    "gif": ("image", "image/gif"),
    "webp": ("image", "image/webp"),
    "bmp": ("image", "image/bmp"),
    "svg": ("image", "image/svg+xml"),
    "wav": ("audio", "audio/wav"),
    "mp3": ("audio", "audio/mpeg"),
    "ogg": ("audio", "audio/ogg"),
    "flac": ("audio", "audio/flac"),
    "m4a": ("audio", "audio/mp4"),
    "mp4": ("video", "video/mp4"),
    "webm": ("video", "video/webm"),
    "ogv": ("video", "video/ogg"),
    "mov": ("video", "video/quicktime"),
    "html": ("html", "text/html"),
    "htm": ("html", "text/html"),
    "txt": ("text", "text/plain"),
    "log": ("text", "text/plain"),
    "csv": ("text", "text/csv"),
    "json": ("text", "application/json"),
    "md": ("text", "text/markdown"),
}
OTHER_TYPE = ("file", "application/octet-stream")


def kind_of(extension: str) -> tuple[str, str]:
    """(kind, content type) of a sample by its file extension."""
    return SAMPLE_TYPES.get(extension.lower().lstrip("."), OTHER_TYPE)


@value_class
class PlotRow:
    """One reported plot: a plotly figure (``{"data": [...], "layout": {...}}``) as JSON."""

    title: str
    series: str
    iteration: int
    kind: str
    figure: str


@value_class
class SampleRow:
    """One debug sample: a file at ``uri`` (under the task's output location)."""

    title: str
    series: str
    iteration: int
    kind: str
    uri: str
    content_type: str
    size: int | None


def check_rows(plots: Sequence[PlotRow], samples: Sequence[SampleRow]) -> None:
    """Refuse kinds the page cannot show (a programming error in the SDK, not user input)."""
    bad = {p.kind for p in plots} - PLOT_KINDS | {s.kind for s in samples} - SAMPLE_KINDS
    if bad:
        raise ValueError(f"unknown plot or sample kinds {sorted(bad)}")


def plot_params(task: dict[str, Any], plots: Sequence[PlotRow]) -> list[dict[str, Any]]:
    """The insert's parameters for a batch of plots."""
    return [{**task, **row_values(p)} for p in plots]


def sample_params(task: dict[str, Any], samples: Sequence[SampleRow]) -> list[dict[str, Any]]:
    """The parameters of the forget-then-insert pair for a batch of samples.

    Of two samples written to the same file in one batch only the later is still there.
    """
    newest = {s.uri: s for s in samples}
    return [{**task, **row_values(s)} for s in newest.values()]


def row_values(row: PlotRow | SampleRow) -> dict[str, Any]:
    """A plot's or sample's fields by name (what ``dataclasses.asdict`` gave)."""
    return {name: getattr(row, name) for name in fields(type(row))}
