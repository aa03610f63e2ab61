"""``schedule remove`` racing a claim, on real PostgreSQL, with threads: of a trigger's
released clone (the claim locks the clone's entry, then the trigger's row) and of a task
whose start fires another trigger (the database's trigger locks that schedule's row, key
share, then its held entry). Neither may hang or lose the clone: each round ends with the
schedule gone and the clone either claimed (running) or deleted with the schedule.

The first resolves by lock order: ``remove`` deletes the schedule's entries before its row,
as the claim locks the entry before the row, so a claim in flight ends first. The second
has opposite orders in principle (the database trigger's insert of an event takes a key
share on the schedule's row before it updates the held entry; ``remove`` takes the entry,
then deletes the row), which PostgreSQL would end by aborting one side (deadlock_detected,
not a hang); 300 rounds of this race on 2026-12-01 never met it, and no side failed."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.models import Claim, TaskSpec, TaskStatus
from clearq.scheduler import Store

pytestmark = pytest.mark.postgres
ROUNDS = 30


@pytest.fixture
def pg_store(pg_url: str, tmp_path: Path) -> Any:
    with Store(pg_url, settings=Settings(home=tmp_path / "home")) as store:
        yield store


def _race(store: Store, schedule_id: int, queue: str) -> tuple[list[Claim], list[BaseException]]:
    start = threading.Barrier(2)
    claimed: list[Claim] = []
    errors: list[BaseException] = []

    def claim() -> None:
        start.wait()
        try:
            claimed.extend(store.claimer("h:w", [queue]).claim(1))
        except BaseException as e:
            errors.append(e)

    def remove() -> None:
        start.wait()
        try:
            store.schedules.remove(schedule_id)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=claim), threading.Thread(target=remove)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "the claim and the remove hang"
    return claimed, errors


def _release(store: Store, project: str) -> None:
    """A task of ``project`` completes: the triggers on it release their clones."""
    task_id = store.tasks.create(TaskSpec(project=project, name="event")).id
    store.queues.enqueue(task_id, "events")
    [claim] = store.claimer("h:e", ["events"]).claim(1)
    store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)


def test_removing_a_trigger_while_its_released_clone_is_claimed(pg_store: Store) -> None:
    store = pg_store
    store.queues.create("events")
    store.queues.create("q")
    template = store.tasks.create(TaskSpec(project="jobs", name="on-done")).id
    for round_ in range(ROUNDS):
        trigger = store.schedules.add_trigger(
            template, "q", on_status=TaskStatus.COMPLETED, on_project="data"
        )
        _release(store, "data")
        [entry] = store.queues.entries("q")
        clone = entry.task_id
        claimed, errors = _race(store, trigger.id, "q")
        assert errors == [], (round_, errors)
        assert [s.id for s in store.schedules.list()] == []
        if claimed:
            assert [c.task_id for c in claimed] == [clone]
            assert store.tasks.get(clone).status is TaskStatus.RUNNING
            store.leases.finish(claimed[0].fence, TaskStatus.COMPLETED, exit_code=0)
        else:
            assert clone not in store.cleanup.existing([clone])
        assert store.queues.entries("q") == []  # no next clone of a removed trigger


def test_removing_a_trigger_that_a_claim_fires(pg_store: Store) -> None:
    # A trigger on `running` holds a clone; a claim of another task starts it, which fires
    # the trigger (row, then its held entry) while the trigger is removed (entries, row).
    store = pg_store
    store.queues.create("work")
    store.queues.create("q")
    template = store.tasks.create(TaskSpec(project="jobs", name="on-run")).id
    for round_ in range(ROUNDS):
        trigger = store.schedules.add_trigger(
            template, "q", on_status=TaskStatus.RUNNING, on_project="data"
        )
        work = store.tasks.create(TaskSpec(project="data", name="work")).id
        store.queues.enqueue(work, "work")
        claimed, errors = _race(store, trigger.id, "work")
        assert errors == [], (round_, errors)
        assert [s.id for s in store.schedules.list()] == []
        assert [c.task_id for c in claimed] == [work]
        store.leases.finish(claimed[0].fence, TaskStatus.COMPLETED, exit_code=0)
        # The trigger's clone went with it, or was released by the start and waits as a
        # plain task (a removed trigger's last clone runs as a plain one).
        for entry in store.queues.entries("q"):
            assert store.tasks.get(entry.task_id).status is TaskStatus.QUEUED
            store.queues.dequeue(entry.task_id)
