"""Gang formation in the store: ranks join atomically, the last one starts the task."""

from __future__ import annotations

import pytest

from clearq.errors import InvalidInput, LeaseLost
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.gangs import GangLeft
from clearq.scheduler.schema import db_now, gang_members

SPEC = TaskSpec(project="p", name="gang", script=Script(source="", entry_point="x.py"))


def test_ranks_join_and_the_last_one_starts_the_gang(store: Store) -> None:
    store.queues.create("q")
    task_id = store.tasks.create(SPEC).id
    store.queues.enqueue(task_id, "q", nodes=3)
    # The agents' ordinary claim and `clearq task run` pass a gang over.
    assert store.claimer("w", ["q"]).claim(5) == []
    with pytest.raises(InvalidInput, match="runs on 3 nodes at once"):
        store.claim_task("w", task_id)
    first = store.gangs.join("h:a", ["q"], address="10.0.0.1", port=1234)
    assert first is not None
    assert (first.membership.rank, first.claim) == (0, None)
    assert store.gangs.join("h:a", ["q"], address="10.0.0.1", port=1234) is None  # one rank each
    second = store.gangs.join("h:b", ["q"], address="10.0.0.2", port=99)
    assert second is not None
    assert second.claim is None
    assert store.gangs.wait(first.membership) is None  # still forming
    third = store.gangs.join("h:c", ["q"], address="10.0.0.3", port=98)
    assert third is not None
    assert third.claim is not None
    assert third.claim.gang is not None
    assert (third.claim.gang.rank, third.claim.gang.size) == (2, 3)
    assert (third.claim.gang.master_addr, third.claim.gang.master_port) == ("10.0.0.1", 1234)
    task = store.tasks.get(task_id)
    assert (task.status, task.attempt, task.tries) == (TaskStatus.RUNNING, 1, 1)
    assert task.worker == third.claim.worker
    claim0 = store.gangs.wait(first.membership)
    assert claim0 is not None
    assert claim0.gang is not None
    assert claim0.gang.rank == 0
    assert claim0.fence == third.claim.fence  # every rank writes with one fence
    assert store.queues.entries("q") == []
    # Completion: the task completes with its last rank.
    assert not store.gangs.complete_rank(claim0.fence, 0)
    assert not store.gangs.complete_rank(claim0.fence, 1)
    assert store.gangs.complete_rank(claim0.fence, 2)


def test_a_waiting_rank_leaves_and_another_takes_its_place(store: Store) -> None:
    store.queues.create("q")
    task_id = store.tasks.create(SPEC).id
    store.queues.enqueue(task_id, "q", nodes=2)
    first = store.gangs.join("h:a", ["q"], address="a", port=1)
    assert first is not None
    assert store.gangs.leave(first.membership)
    with pytest.raises(GangLeft):
        store.gangs.wait(first.membership)
    assert store.gangs.join("h:b", ["q"], address="b", port=2, skip=[task_id]) is None
    again = store.gangs.join("h:b", ["q"], address="b", port=2)
    assert again is not None
    assert again.membership.rank == 0  # the rank given back
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED


def test_a_failed_rank_ends_the_attempt_for_all(store: Store) -> None:
    store.queues.create("q")
    task_id = store.tasks.create(SPEC).id
    store.queues.enqueue(task_id, "q", nodes=2)
    store.gangs.join("h:a", ["q"], address="a", port=1)
    last = store.gangs.join("h:b", ["q"], address="b", port=2)
    assert last is not None
    assert last.claim is not None
    fence = last.claim.fence
    store.leases.finish(fence, TaskStatus.FAILED, exit_code=1, reason="rank 1 of 2: boom")
    with pytest.raises(LeaseLost):
        store.gangs.complete_rank(fence, 0)
    assert store.leases.heartbeat("h:a", [fence]).lost == {task_id}


def test_a_rank_whose_agent_went_silent_puts_the_gang_back(store: Store) -> None:
    store.queues.create("q")
    task_id = store.tasks.create(SPEC).id
    store.queues.enqueue(task_id, "q", nodes=2)
    store.gangs.join("h:a", ["q"], address="a", port=1)
    last = store.gangs.join("h:b", ["q"], address="b", port=2)
    assert last is not None
    assert last.claim is not None
    fence = last.claim.fence
    assert store.gangs.beat(fence, 1) is None  # both alive
    with store.db.write() as conn:  # rank 0's agent stopped renewing: its lease passed
        conn.execute(
            gang_members.update()
            .where(gang_members.c.task_id == task_id, gang_members.c.rank == 0)
            .values(lease_expires_at=db_now(-5))
        )
    why = store.gangs.beat(fence, 1)
    assert why == "rank 0 of the gang (h:a) stopped renewing its lease"
    task = store.tasks.get(task_id)
    assert (task.status, task.tries) == (TaskStatus.QUEUED, 1)  # an infrastructure failure
    assert why in task.status_reason
    # Back in its queue as a gang: agents pass it over, ranks join it for attempt 2.
    assert store.claimer("w", ["q"]).claim(5) == []
    again = store.gangs.join("h:c", ["q"], address="c", port=3)
    assert again is not None
    assert (again.membership.attempt, again.membership.rank) == (2, 0)
