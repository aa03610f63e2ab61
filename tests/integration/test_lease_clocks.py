"""Lease expiry against clocks that disagree or step: SQLite watches renewals, not clocks.

The reaper's clock is injected (the ``clock`` seam of ``Leases``); the stored deadline
is moved by hand to stand for a writer whose wall clock runs behind or ahead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.models import TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.leases import Leases
from clearq.scheduler.schema import tasks
from tests.integration.helpers import queued

LEASE = 30.0


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(sqlite_url: str, tmp_path: Path) -> Iterator[Store]:
    with Store(sqlite_url, settings=Settings(home=tmp_path, lease_seconds=LEASE)) as s:
        s.queues.create("q")
        yield s


def _reaper(store: Store, clock: FakeClock) -> Leases:
    return Leases(store.db, lease_seconds=LEASE, worker_gone_seconds=3600, clock=clock)


def _deadline(store: Store, task_id: object, at: datetime) -> None:
    with store.db.write() as conn:
        conn.execute(tasks.update().where(tasks.c.id == task_id).values(lease_expires_at=at))


def test_a_renewing_worker_keeps_its_task_whatever_the_stored_deadline_says(store: Store) -> None:
    task_id = queued(store, "q")
    [claim] = store.claimer("w", ["q"]).claim()
    clock = FakeClock()
    reaper = _reaper(store, clock)
    for _ in range(5):
        # As a reaper whose clock runs 300 s ahead (or after an NTP step) would see it.
        _deadline(store, task_id, datetime.now(UTC) - timedelta(seconds=300))
        assert reaper.reap().requeued == ()
        store.leases.heartbeat("w", [claim.fence])
        clock.now += 2 * LEASE
    assert store.tasks.get(task_id).status is TaskStatus.RUNNING


def test_a_silent_worker_is_reaped_after_a_lease_of_the_reapers_own_clock(store: Store) -> None:
    task_id = queued(store, "q")
    store.claimer("w", ["q"]).claim()
    # As written by a worker whose clock runs an hour ahead: the deadline never comes.
    _deadline(store, task_id, datetime.now(UTC) + timedelta(hours=1))
    clock = FakeClock()
    reaper = _reaper(store, clock)
    assert reaper.reap().requeued == ()  # first look: nothing seen standing still yet
    clock.now += LEASE - 0.1
    assert reaper.reap().requeued == ()
    clock.now += 0.1
    assert reaper.reap().requeued == (task_id,)
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED


def test_a_new_attempt_is_watched_afresh(store: Store) -> None:
    task_id = queued(store, "q")
    clock = FakeClock()
    reaper = _reaper(store, clock)
    store.claimer("w1", ["q"]).claim()
    reaper.reap()
    clock.now += LEASE
    assert reaper.reap().requeued == (task_id,)
    [again] = store.claimer("w2", ["q"]).claim()
    assert again.attempt == 2
    assert reaper.reap().requeued == ()  # the same counter, but a new attempt: watch again
    clock.now += LEASE / 2
    assert reaper.reap().requeued == ()
    assert store.tasks.get(task_id).worker == "w2"


@pytest.mark.postgres
def test_postgres_keeps_the_servers_clock(pg_url: str, tmp_path: Path) -> None:
    with Store(pg_url, settings=Settings(home=tmp_path, lease_seconds=LEASE)) as pg:
        pg.queues.create("q")
        task_id = queued(pg, "q")
        pg.claimer("w", ["q"]).claim()
        clock = FakeClock()
        reaper = Leases(pg.db, lease_seconds=LEASE, worker_gone_seconds=3600, clock=clock)
        clock.now += 10 * LEASE  # the reaper's own clock does not matter here
        assert reaper.reap().requeued == ()
        _deadline(pg, task_id, datetime.now(UTC) - timedelta(seconds=1))
        assert reaper.reap().requeued == (task_id,)
