"""How the page writes times, durations and sizes."""

from __future__ import annotations

from datetime import UTC, datetime

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
RANGES = {"1h": _HOUR, "6h": 6 * _HOUR, "1d": _DAY, "1w": 7 * _DAY}
"""The time ranges a chart offers, by the name the page uses."""
DEFAULT_RANGE = "1h"


def range_seconds(name: str | None) -> tuple[str, int]:
    """A known range's name and seconds; anything else is the default range."""
    if name in RANGES:
        return name, RANGES[name]
    return DEFAULT_RANGE, RANGES[DEFAULT_RANGE]


def duration(seconds: float | None) -> str:
    """``45s``, ``12m 3s``, ``3h 20m``, ``2d 4h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < _MINUTE:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < _HOUR:
        return f"{s // _MINUTE}m {s % _MINUTE}s"
    if s < _DAY:
        return f"{s // _HOUR}h {s % _HOUR // _MINUTE}m"
    return f"{s // _DAY}d {s % _DAY // _HOUR}h"


def since(when: datetime | None, now: datetime) -> str:
    """How long ago ``when`` was, without "ago"; ``-`` for never."""
    return "-" if when is None else duration((now - when).total_seconds())


def ago(when: datetime | None, now: datetime) -> str:
    """``3m 2s ago``; ``-`` for never."""
    return "-" if when is None else f"{since(when, now)} ago"


def stamp(when: datetime | None) -> str:
    """A UTC timestamp, to the second; ``-`` for none."""
    return "-" if when is None else f"{when.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


def size(n: int | None) -> str:
    """Bytes as ``12.3 MiB``; ``-`` for unknown."""
    if n is None:
        return "-"
    value, unit = float(n), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def now() -> datetime:
    """The current time, UTC."""
    return datetime.now(UTC)
