"""When schedules fire: intervals, cron lines in time zones across DST, missed times collapsing.

The cadence is pure (a time in, the next time out); the firing is tested on the in-memory
store with a manual clock, so hours pass in microseconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from clearq.errors import InvalidInput
from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler.cadence import Cadence, parse_every
from clearq.scheduler.schedules import substitute
from clearq.testing import ManualClock, MemoryStore

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 1, 9, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("6h", 21600), ("1d", 86400), ("1h30m", 5400), ("3600", 3600)],
)
def test_intervals_are_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "6x", "h6", "-5m", "0s", "1h 30", "nan"])
def test_unreadable_intervals_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"interval"):
        parse_every(text)


def test_an_interval_counts_from_its_anchor_whatever_the_clock_says() -> None:
    every = Cadence(anchor=T0, every_seconds=6 * 3600)
    assert every.next_after(T0) == T0 + timedelta(hours=6)
    assert every.next_after(T0 + timedelta(hours=5, minutes=59)) == T0 + timedelta(hours=6)
    assert every.next_after(T0 + timedelta(hours=6)) == T0 + timedelta(hours=12)
    # Three days missed: the next time is the first one still ahead, not the oldest missed.
    assert every.next_after(T0 + timedelta(days=3, minutes=1)) == T0 + timedelta(days=3, hours=6)


def test_a_cron_line_is_read_in_its_time_zone_in_winter_and_summer() -> None:
    nightly = Cadence(anchor=T0, cron="0 3 * * *", timezone="Europe/Berlin")
    winter = nightly.next_after(datetime(2026, 1, 10, 12, tzinfo=UTC))
    summer = nightly.next_after(datetime(2026, 7, 10, 12, tzinfo=UTC))
    assert winter == datetime(2026, 1, 11, 2, tzinfo=UTC)  # 03:00 CET
    assert summer == datetime(2026, 7, 11, 1, tzinfo=UTC)  # 03:00 CEST
    assert winter.astimezone(BERLIN).hour == summer.astimezone(BERLIN).hour == 3
    utc = Cadence(anchor=T0, cron="0 3 * * *")
    assert utc.next_after(datetime(2026, 7, 10, 12, tzinfo=UTC)) == datetime(
        2026, 7, 11, 3, tzinfo=UTC
    )


def test_a_time_the_spring_change_skips_fires_once_right_after_the_gap() -> None:
    at_0230 = Cadence(anchor=T0, cron="30 2 * * *", timezone="Europe/Berlin")
    # 2026-03-29: Berlin's clocks jump from 02:00 to 03:00; 02:30 does not exist.
    fired = at_0230.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert fired.astimezone(BERLIN) == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    following = at_0230.next_after(fired)
    assert following.astimezone(BERLIN) == datetime(2026, 3, 30, 2, 30, tzinfo=BERLIN)


def test_a_time_the_autumn_change_repeats_fires_once() -> None:
    at_0230 = Cadence(anchor=T0, cron="30 2 * * *", timezone="Europe/Berlin")
    # 2026-10-25: Berlin's 02:00-03:00 happens twice.
    first = at_0230.next_after(datetime(2026, 10, 24, 12, tzinfo=UTC))
    second = at_0230.next_after(first)
    assert first.astimezone(BERLIN).date() == datetime(2026, 10, 25).date()
    assert second.astimezone(BERLIN).date() == datetime(2026, 10, 26).date()
    assert (second - first) > timedelta(hours=23)


def test_a_cron_line_that_never_fires_or_cannot_be_read_is_refused() -> None:
    with pytest.raises(InvalidInput, match="minute hour day month weekday"):
        Cadence(anchor=T0, cron="0 3 30 2 *")
    with pytest.raises(InvalidInput, match="cron line"):
        Cadence(anchor=T0, cron="every night")
    with pytest.raises(InvalidInput, match="--timezone applies to --cron only"):
        Cadence(anchor=T0, every_seconds=60, timezone="Europe/Berlin")


def _memory() -> tuple[MemoryStore, ManualClock]:
    clock = ManualClock(T0)
    store = MemoryStore(clock=clock)
    store.queues.create("nightly")
    return store, clock


def test_a_schedule_whose_agents_were_down_for_days_runs_once_when_one_is_back() -> None:
    store, clock = _memory()
    template = store.tasks.create(TaskSpec(project="p", name="report")).id
    info = store.schedules.add(template, "nightly", cron="0 3 * * *", timezone="Europe/Berlin")
    claimer = store.claimer("w", ["nightly"])
    assert claimer.claim() == []
    clock.advance(3 * 86400 + 3600)  # three nights pass with no agent
    claims = claimer.claim(limit=10)
    assert [c.task_id for c in claims] == [info.next_task_id]
    after = store.schedules.get(info.id)
    assert after.fired == 1
    assert after.next_at is not None
    assert after.next_at > clock.now
    assert after.next_at - clock.now < timedelta(days=1)
    assert claimer.claim(limit=10) == []


def test_each_time_fires_exactly_one_clone_across_claimers() -> None:
    store, clock = _memory()
    template = store.tasks.create(TaskSpec(project="p", name="report")).id
    store.schedules.add(template, "nightly", every_seconds=3600)
    claimers = [store.claimer(f"w{i}", ["nightly"]) for i in range(3)]
    ran = []
    for _hour in range(5):
        clock.advance(3600)
        for claimer in claimers:
            ran.extend(claimer.claim(limit=5))
    assert len(ran) == 5
    assert len({c.task_id for c in ran}) == 5
    assert {store.tasks.get(c.task_id).parent_id for c in ran} == {template}


def test_a_dequeued_waiting_clone_pauses_its_schedule() -> None:
    store, clock = _memory()
    template = store.tasks.create(TaskSpec(project="p", name="report")).id
    info = store.schedules.add(template, "nightly", every_seconds=60)
    assert info.next_task_id is not None
    store.queues.dequeue(info.next_task_id)
    clock.advance(600)
    assert store.claimer("w", ["nightly"]).claim() == []
    paused = store.schedules.get(info.id)
    assert (paused.next_task_id, paused.next_at, paused.fired) == (None, None, 0)


def test_trigger_references_are_filled_from_the_task_that_fired_it() -> None:
    store, _ = _memory()
    source = store.tasks.create(TaskSpec(project="train", name="resnet"))
    filled = substitute(
        {
            "Args/model": "${trigger.task.id}",
            "Args/what": "${trigger.task.project}/${trigger.task.name} ${trigger.task.status}",
            "Args/lr": "0.1",
        },
        source,
    )
    assert filled == {
        "Args/model": str(source.id),
        "Args/what": f"train/resnet {TaskStatus.CREATED}",
        "Args/lr": "0.1",
    }
