"""When a schedule fires next: a fixed interval (``--every 6h``) or a cron line in a time zone.

Pure functions of a time, no database: the store calls :func:`next_fire` with the
database's clock inside the transaction that claims a schedule's entry, so the next time
is always the first one *after now*. That is what collapses missed times: a schedule
whose agents were all down for three days fires once when one comes back, and its next
entry waits for the next time still ahead.

An interval counts from the schedule's anchor (when it was added): ``--every 6h`` added
at 09:10 fires at 15:10, 21:10, ... whatever the clock says when it is claimed. A cron
line is read by ``cronsim`` in the schedule's time zone (IANA name, ``zoneinfo``), so
``0 3 * * *`` in ``Europe/Berlin`` is 03:00 Berlin time in summer and winter alike; on a
day that skips the hour (the spring change) it fires at the first minute after the gap,
and on a day that repeats it (autumn) it fires once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from clearq.errors import InvalidInput

MIN_EVERY_SECONDS = 1.0
"""The shortest interval a schedule may have."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_every(text: str) -> float:
    """Seconds in an interval written ``90s``, ``15m``, ``6h``, ``1d``, ``1h30m`` or ``3600``."""
    s = text.strip().lower().replace(" ", "")
    try:
        seconds = float(s)
    except ValueError:
        parts = _PART.findall(s)
        if not parts or "".join(n + u for n, u in parts) != s:
            raise InvalidInput(
                f"cannot read the interval {text!r}: write it as 90s, 15m, 6h, 1d or 1h30m"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < MIN_EVERY_SECONDS:
        raise InvalidInput(f"an interval must be at least {MIN_EVERY_SECONDS:g} s, not {text!r}")
    return seconds


def zone(name: str | None) -> ZoneInfo:
    """The time zone named ``name`` (IANA, e.g. ``Europe/Berlin``); UTC for None."""
    if name is None:
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InvalidInput(
            f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin or UTC"
        ) from e


@dataclass(frozen=True)
class Cadence:
    """A schedule's times: every ``every_seconds`` from ``anchor``, or the ``cron`` line."""

    anchor: datetime
    every_seconds: float | None = None
    cron: str | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        if (self.every_seconds is None) == (self.cron is None):
            raise InvalidInput("a schedule runs either --every INTERVAL or --cron LINE, not both")
        if self.anchor.tzinfo is None:
            raise InvalidInput("a schedule's anchor must be timezone-aware")
        if self.every_seconds is not None and self.every_seconds < MIN_EVERY_SECONDS:
            raise InvalidInput(f"an interval must be at least {MIN_EVERY_SECONDS:g} s")
        if self.every_seconds is not None and self.timezone is not None:
            raise InvalidInput(
                "--timezone applies to --cron only: an interval is the same anywhere"
            )
        if self.cron is not None:
            self.next_after(self.anchor)  # a bad line fails now, not at its first claim

    def next_after(self, now: datetime) -> datetime:
        """The first time of this cadence strictly after ``now``, in UTC."""
        if self.every_seconds is not None:
            elapsed = (now - self.anchor).total_seconds()
            periods = max(0, math.floor(elapsed / self.every_seconds) + 1)
            return (self.anchor + timedelta(seconds=periods * self.every_seconds)).astimezone(UTC)
        assert self.cron is not None
        try:
            times = CronSim(self.cron, now.astimezone(zone(self.timezone)))
            return next(times).astimezone(UTC)
        except (CronSimError, StopIteration) as e:
            raise InvalidInput(
                f"cannot use the cron line {self.cron!r} ({e or 'it never fires'}): write five "
                "fields, minute hour day month weekday, e.g. '0 3 * * *'"
            ) from e
