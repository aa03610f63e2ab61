"""Durations as people type them on the command line: ``30d``, ``12h``, ``90m``, ``2w``."""

from __future__ import annotations

import re

from clearq.errors import InvalidInput

UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number and a unit (s, m, h, d or w), e.g. ``30d``; above 0."""
    match = _DURATION.fullmatch(text.lower())
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a duration: give a number and a unit, s, m, h, d or w "
            "(e.g. 30d, 12h, 90m)"
        )
    seconds = float(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if not seconds > 0:
        raise InvalidInput(f"{text!r}: a duration must be above 0")
    return seconds
