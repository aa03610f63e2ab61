"""Claim windows: when an agent takes new work (``clearq agent --uptime/--downtime``).

A window is some days and a time range on a wall clock: ``mon-fri 20:00-08:00``,
``sat,sun``, ``09:00-17:00``, ``mon-fri 09:00-17:00 Europe/Berlin``. Days are
``mon`` .. ``sun``, a list (``sat,sun``) or a range (``mon-fri``; ``fri-mon`` wraps);
no days: every day. Times are ``HH:MM``, ``24:00`` may end one; no times: all day. A
range whose end is not after its start runs past midnight and belongs to the day it
starts (``fri 20:00-08:00`` is Friday evening to Saturday morning). Without a zone the
clock is the agent machine's local time (``TZ``); with an IANA zone, that zone's wall
clock, so a window keeps its hours across daylight-saving changes. Several windows:
repeat the option or separate them with ``;``.

Outside its uptime windows (or inside a downtime window) an agent claims nothing, but
it keeps heartbeating and running what it already has.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clearq.errors import InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MINUTES_PER_DAY = 24 * 60
EXAMPLE = "'mon-fri 20:00-08:00', 'sat,sun' or '09:00-17:00 Europe/Berlin'"


@dataclass(frozen=True)
class Window:
    """Days (0 = Monday) and minutes of the day ``[start, end)``; end <= start: past midnight."""

    text: str
    days: frozenset[int]
    start: int
    end: int
    zone: tzinfo | None = None

    def contains(self, moment: datetime) -> bool:
        """True when ``moment`` falls in this window.

        An aware moment is read on the window's zone (else the machine's local time);
        a naive one is taken as a wall-clock time already.
        """
        wall = _wall(moment, self.zone)
        day, minute = wall.weekday(), wall.hour * 60 + wall.minute
        if self.start < self.end:
            return day in self.days and self.start <= minute < self.end
        # Past midnight: the evening of a listed day, or the morning after one.
        return (day in self.days and minute >= self.start) or (
            (day - 1) % 7 in self.days and minute < self.end
        )


@dataclass(frozen=True)
class ClaimWindows:
    """When an agent claims: inside an uptime window (if any) and no downtime window."""

    uptime: tuple[Window, ...] = ()
    downtime: tuple[Window, ...] = ()

    @classmethod
    def parse(cls, uptime: Sequence[str] = (), downtime: Sequence[str] = ()) -> ClaimWindows:
        """Windows from the option values; InvalidInput naming the bad one."""
        return cls(
            uptime=tuple(w for text in uptime for w in parse_windows(text, option="--uptime")),
            downtime=tuple(
                w for text in downtime for w in parse_windows(text, option="--downtime")
            ),
        )

    def __bool__(self) -> bool:
        return bool(self.uptime or self.downtime)

    def allows(self, moment: datetime) -> bool:
        """True when an agent with these windows may claim at ``moment``."""
        if self.uptime and not any(w.contains(moment) for w in self.uptime):
            return False
        return not any(w.contains(moment) for w in self.downtime)

    def published(self) -> dict[str, Any] | None:
        """The windows as the agent's worker row keeps them (``workers.windows``): their
        texts and the zone a window without one is read in (this machine's), so another
        machine can tell whether this agent claims now (``clearq.scheduler.serving``)."""
        if not self:
            return None
        return {
            "uptime": [w.text for w in self.uptime],
            "downtime": [w.text for w in self.downtime],
            "zone": local_zone_name(),
        }

    @classmethod
    def from_published(cls, published: dict[str, Any]) -> ClaimWindows:
        """The windows an agent published, each without a zone read in the agent's."""
        zone = _published_zone(str(published.get("zone") or ""))
        windows = cls.parse(published.get("uptime") or (), published.get("downtime") or ())

        def placed(found: tuple[Window, ...]) -> tuple[Window, ...]:
            return tuple(
                w if w.zone is not None else dataclasses.replace(w, zone=zone) for w in found
            )

        return cls(uptime=placed(windows.uptime), downtime=placed(windows.downtime))

    def next_change(self, moment: datetime, *, within_days: int = 8) -> datetime | None:
        """The first minute after ``moment`` at which :meth:`allows` changes; None when it
        does not within ``within_days``."""
        now = self.allows(moment)
        start = moment.replace(second=0, microsecond=0)
        for minute in range(1, within_days * _MINUTES_PER_DAY + 1):
            at = start + timedelta(minutes=minute)
            if self.allows(at) is not now:
                return at
        return None

    def describe(self) -> str:
        """The windows as given, for the agent's log."""
        parts = []
        if self.uptime:
            parts.append("uptime " + "; ".join(w.text for w in self.uptime))
        if self.downtime:
            parts.append("downtime " + "; ".join(w.text for w in self.downtime))
        return ", ".join(parts)


def parse_windows(text: str, *, option: str = "--uptime") -> list[Window]:
    """The windows in ``text`` (``;`` between them); InvalidInput saying what is wrong."""
    pieces = [p.strip() for p in text.split(";")]
    if not any(pieces):
        raise InvalidInput(f"{option} {text!r} is empty: give a window such as {EXAMPLE}")
    return [parse_window(p, option=option) for p in pieces if p]


def parse_window(text: str, *, option: str = "--uptime") -> Window:
    """One window: ``[DAYS] [HH:MM-HH:MM] [ZONE]``, at least days or times."""
    tokens = text.split()
    try:
        return _window(text, tokens)
    except InvalidInput as e:
        raise InvalidInput(f"{option} {text!r}: {e}; for example {EXAMPLE}") from None


def _window(text: str, tokens: list[str]) -> Window:
    zone = None
    if tokens and _looks_like_zone(tokens[-1]):
        zone = _zone(tokens.pop())
    days: frozenset[int] | None = None
    span: tuple[int, int] | None = None
    for token in tokens:
        if any(c.isdigit() for c in token):  # a time range, maybe misspelt
            if span is not None:
                raise InvalidInput(f"two time ranges ({token!r}): give one per window")
            span = _span(token)
        else:
            if days is not None:
                raise InvalidInput(f"days given twice ({token!r}): separate them with commas")
            days = _days(token)
    if days is None and span is None:
        raise InvalidInput("no days and no time range")
    start, end = span if span is not None else (0, _MINUTES_PER_DAY)
    return Window(
        text=text.strip(),
        days=days if days is not None else frozenset(range(7)),
        start=start,
        end=end,
        zone=zone,
    )


def _looks_like_zone(word: str) -> bool:
    return "/" in word or word.upper() in {"UTC", "GMT"} or word == "localtime"


def _zone(name: str) -> ZoneInfo | None:
    if name == "localtime":
        return None
    try:
        return ZoneInfo("UTC" if name.upper() in {"UTC", "GMT"} else name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"unknown time zone {name!r}: give an IANA name such as Europe/Berlin"
        ) from None


def _days(token: str) -> frozenset[int]:
    found: set[int] = set()
    for item in token.lower().split(","):
        first, sep, last = item.partition("-")
        if not sep:
            found.add(_day(first))
            continue
        a, b = _day(first), _day(last)
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(found)


def _day(name: str) -> int:
    if name in DAYS:
        return DAYS.index(name)
    if name in _FULL_DAYS:
        return _FULL_DAYS.index(name)
    raise InvalidInput(f"{name!r} is not a day: use mon, tue, wed, thu, fri, sat, sun")


def _span(token: str) -> tuple[int, int]:
    first, sep, last = token.partition("-")
    if not sep:
        raise InvalidInput(f"{token!r} is not a time range: give HH:MM-HH:MM")
    start, end = _minute(first), _minute(last)
    if start == _MINUTES_PER_DAY:
        raise InvalidInput("a window cannot start at 24:00: start at 00:00")
    if start == end:
        raise InvalidInput(
            f"{token!r} starts and ends at the same time: for the whole day leave the times out"
        )
    return start, end


def _minute(text: str) -> int:
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise InvalidInput(f"{text!r} is not a time: give HH:MM, as 08:00 or 20:30")
    h, m = int(hours), int(minutes)
    if (h, m) == (24, 0):
        return _MINUTES_PER_DAY
    if h > 23 or m > 59:
        raise InvalidInput(f"{text!r} is not a time of day (00:00 to 24:00)")
    return h * 60 + m


def _wall(moment: datetime, zone: tzinfo | None) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(zone) if zone is not None else moment.astimezone()


def local_zone_name() -> str:
    """This machine's time zone: its IANA name where known (``TZ``, ``/etc/localtime``),
    else its UTC offset now (``+01:00``)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and _zone_or_none(tz) is not None:
        return tz
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        name = target.split("zoneinfo/", 1)[1]
        if _zone_or_none(name) is not None:
            return name
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _published_zone(name: str) -> tzinfo:
    """A published zone: an IANA name or an offset ``+HH:MM``; UTC if neither."""
    if name[:1] in "+-" and len(name) == 6 and name[3] == ":":
        sign = -1 if name[0] == "-" else 1
        try:
            return timezone(sign * timedelta(hours=int(name[1:3]), minutes=int(name[4:6])))
        except ValueError:
            return UTC_ZONE
    return _zone_or_none(name) or UTC_ZONE


UTC_ZONE = UTC
