"""The warning on enqueue counts a worker only when it claims now: live, not paused or
draining, and inside its published claim windows (``clearq.scheduler.serving``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from clearq.models import WorkerCommand
from clearq.scheduler.claim_windows import ClaimWindows
from clearq.scheduler.serving import unserved_warning
from clearq.testing import MemoryStore

WEDNESDAY_NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _local(at: datetime, fmt: str) -> str:
    return at.astimezone().strftime(fmt)


def _store_with(windows: ClaimWindows | None, name: str = "w") -> MemoryStore:
    store = MemoryStore()
    store.queues.create("q")
    published = windows.published() if windows else None
    store.workers.register(name, host="h", pid=1, queues=["q"], windows=published)
    return store


def test_a_worker_without_windows_serves_at_any_time() -> None:
    assert unserved_warning(_store_with(None).workers, "q", now=WEDNESDAY_NOON) is None


def test_a_worker_outside_its_window_does_not_count_and_says_until_when() -> None:
    store = _store_with(ClaimWindows.parse(["mon-fri 20:00-08:00 UTC"]))
    warning = unserved_warning(store.workers, "q", now=WEDNESDAY_NOON)
    opens = _local(datetime(2026, 12, 2, 20, 0, tzinfo=UTC), "%H:%M")
    assert warning is not None
    assert warning.startswith(
        f"no live worker serves queue 'q' (w is outside its claim windows until {opens})"
    ), warning
    assert "workers resume" not in warning
    evening = datetime(2026, 12, 2, 21, 0, tzinfo=UTC)
    assert unserved_warning(store.workers, "q", now=evening) is None


def test_a_downtime_window_and_the_agent_s_own_zone() -> None:
    # No zone in the text: the agent's (published as an offset here) is the one read.
    windows = ClaimWindows.parse(["09:00-17:00"])
    published = windows.published()
    assert published is not None
    published["zone"] = "+05:00"
    store = MemoryStore()
    store.queues.create("q")
    store.workers.register("w", host="h", pid=1, queues=["q"], windows=published)
    morning = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)  # 10:00 at +05:00
    assert unserved_warning(store.workers, "q", now=morning) is None
    warning = unserved_warning(store.workers, "q", now=WEDNESDAY_NOON)  # 17:00 at +05:00
    assert warning is not None
    opens = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)  # 09:00 at +05:00 the next day
    same_day = opens.astimezone().date() == WEDNESDAY_NOON.astimezone().date()
    assert f"until {_local(opens, '%H:%M' if same_day else '%a %H:%M')}" in warning
    down = _store_with(ClaimWindows.parse(downtime=["wed UTC"]))
    assert "outside its claim windows" in (
        unserved_warning(down.workers, "q", now=WEDNESDAY_NOON) or ""
    )


def test_one_claiming_worker_is_enough_and_held_ones_are_named() -> None:
    store = _store_with(ClaimWindows.parse(["mon-fri 20:00-08:00 UTC"]), name="night")
    store.workers.register("paused", host="h", pid=2, queues=["q"])
    store.workers.set_command("paused", WorkerCommand.PAUSE)
    warning = unserved_warning(store.workers, "q", now=WEDNESDAY_NOON) or ""
    assert "night is outside its claim windows until" in warning
    assert "paused is paused" in warning
    assert warning.endswith("(`clearq agent -q q`, `clearq workers resume NAME`)")
    store.workers.register("day", host="h", pid=3, queues=["q"])
    assert unserved_warning(store.workers, "q", now=WEDNESDAY_NOON) is None


def test_published_windows_read_back_as_given() -> None:
    windows = ClaimWindows.parse(["mon-fri 20:00-08:00 Europe/Berlin"], ["sat"])
    published = windows.published()
    assert published is not None
    assert published["uptime"] == ["mon-fri 20:00-08:00 Europe/Berlin"]
    assert published["downtime"] == ["sat"]
    again = ClaimWindows.from_published(published)
    for hour in range(0, 24 * 7, 5):
        moment = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(hours=hour)
        assert again.uptime[0].contains(moment) == windows.uptime[0].contains(moment)
