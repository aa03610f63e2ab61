"""Claim windows (``--uptime`` / ``--downtime``): parsing, and "is this moment inside".

Fixed datetimes only: naive ones are wall-clock times on the agent's own clock, aware
ones are read on the window's zone (daylight-saving changes included).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clearq.errors import InvalidInput
from clearq.scheduler.claim_windows import ClaimWindows, parse_window, parse_windows

# 2026-11-30 is a Monday.
MON, TUE, FRI, SAT, SUN = 30, 1, 4, 5, 6


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    month = 11 if day == MON else 12
    return datetime(2026, month, day, hour, minute)


def test_a_night_window_runs_from_each_listed_evening_into_the_next_morning() -> None:
    night = parse_window("mon-fri 20:00-08:00")
    assert night.contains(_at(MON, 20))
    assert night.contains(_at(TUE, 7, 59))  # Monday night
    assert not night.contains(_at(TUE, 8))
    assert not night.contains(_at(MON, 19, 59))
    assert not night.contains(_at(MON, 7))  # Sunday night is not listed
    assert night.contains(_at(SAT, 7))  # Friday night
    assert not night.contains(_at(SAT, 20))
    assert not night.contains(_at(SUN, 7))


def test_days_alone_mean_all_day_and_times_alone_every_day() -> None:
    weekend = parse_window("sat,sun")
    assert weekend.contains(_at(SAT, 0))
    assert weekend.contains(_at(SUN, 23, 59))
    assert not weekend.contains(_at(FRI, 23, 59))
    assert not weekend.contains(_at(MON, 0))
    office = parse_window("09:00-17:00")
    assert all(office.contains(_at(d, 9)) for d in (MON, TUE, FRI, SAT, SUN))
    assert not office.contains(_at(TUE, 17))
    until_midnight = parse_window("fri 18:00-24:00")
    assert until_midnight.contains(_at(FRI, 23, 59))
    assert not until_midnight.contains(_at(SAT, 0))


def test_day_ranges_wrap_and_full_names_are_understood() -> None:
    assert parse_window("fri-mon").days == {4, 5, 6, 0}
    assert parse_window("Monday,wed-thu 10:00-11:00").days == {0, 2, 3}
    assert parse_window("sun").days == {6}


def test_a_zone_keeps_its_wall_clock_hours_across_daylight_saving() -> None:
    office = parse_window("mon-fri 09:00-17:00 America/New_York")
    # 13:30 UTC is 09:30 in New York in summer (EDT) but 08:30 in winter (EST).
    assert office.contains(datetime(2026, 7, 1, 13, 30, tzinfo=UTC))
    assert not office.contains(datetime(2026, 12, 2, 13, 30, tzinfo=UTC))
    assert office.contains(datetime(2026, 12, 2, 14, 30, tzinfo=UTC))
    # The spring-forward Sunday skips 02:00-03:00: a window over it holds both sides.
    night = parse_window("sun 01:30-03:30 Europe/Berlin")
    assert night.contains(datetime(2026, 3, 29, 0, 45, tzinfo=UTC))  # 01:45 CET
    assert night.contains(datetime(2026, 3, 29, 1, 15, tzinfo=UTC))  # 03:15 CEST
    assert not night.contains(datetime(2026, 3, 29, 1, 45, tzinfo=UTC))  # 03:45 CEST
    # The fall-back Sunday has 02:30 twice: both are inside.
    autumn = parse_window("sun 02:00-03:00 Europe/Berlin")
    assert autumn.contains(datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    assert autumn.contains(datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert not autumn.contains(datetime(2026, 10, 25, 2, 0, tzinfo=UTC))  # 03:00 CET


def test_utc_is_a_zone() -> None:
    window = parse_window("09:00-10:00 UTC")
    assert window.contains(datetime(2026, 12, 1, 9, 30, tzinfo=UTC))
    assert not window.contains(datetime(2026, 12, 1, 10, 0, tzinfo=UTC))


def test_uptime_and_downtime_combine() -> None:
    windows = ClaimWindows.parse(["mon-fri 20:00-08:00", "sat,sun"], ["sun 02:00-04:00"])
    assert windows.allows(_at(TUE, 3))
    assert not windows.allows(_at(TUE, 12))
    assert windows.allows(_at(SAT, 12))
    assert not windows.allows(_at(SUN, 3))
    assert ClaimWindows.parse([], ["12:00-13:00"]).allows(_at(TUE, 11))
    assert not ClaimWindows.parse([], ["12:00-13:00"]).allows(_at(TUE, 12, 30))
    assert not ClaimWindows()
    assert ClaimWindows().allows(_at(TUE, 12))
    assert len(parse_windows("mon 09:00-10:00; tue 09:00-10:00")) == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        ("mon-fro", "'fro' is not a day"),
        ("25:00-01:00", "'25:00' is not a time of day"),
        ("8-17", "'8' is not a time: give HH:MM"),
        ("8:0-17:00", "'8:0' is not a time: give HH:MM"),
        ("10:00-10:00", "starts and ends at the same time"),
        ("mon 10:00", "'10:00' is not a time range"),
        ("24:00-02:00", "cannot start at 24:00"),
        ("mon 09:00-10:00 11:00-12:00", "two time ranges"),
        ("mon tue", "days given twice"),
        ("mon 09:00-10:00 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("UTC", "no days and no time range"),
    ],
)
def test_a_bad_window_is_refused_saying_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        ClaimWindows.parse([text])
    message = str(refused.value)
    assert message.startswith(f"--uptime {text!r}")
    assert says in message
    assert "for example" in message or "is empty" in message
