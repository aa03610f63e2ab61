"""Durations typed on the command line (``--older-than 30d``)."""

from __future__ import annotations

import pytest

from clearq.cli.durations import parse_duration
from clearq.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("90m", 5400), ("12h", 43200), ("30d", 2592000), ("2w", 1209600), ("1.5h", 5400)],
)
def test_a_number_and_a_unit_are_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(f" {text.upper()} ") == seconds


@pytest.mark.parametrize("text", ["30", "d", "30 days", "-1d", "0d", "1y", ""])
def test_anything_else_says_what_a_duration_is(text: str) -> None:
    with pytest.raises(InvalidInput, match="duration"):
        parse_duration(text)
