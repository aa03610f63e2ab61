"""Leases, fenced writes, stop requests and the reaper, on a real database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.errors import InvalidInput, LeaseLost
from clearq.models import RunResult, ScalarPoint, TaskStatus
from clearq.scheduler import Store
from tests.integration.helpers import new_task, queued

SHORT_LEASE = 0.5


@pytest.fixture
def short(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """A store whose leases last half a second."""
    settings = Settings(home=tmp_path, lease_seconds=SHORT_LEASE, worker_gone_seconds=0.5)
    with Store(store_url, settings=settings) as s:
        s.queues.create("q")
        yield s


def _expire(store: Store) -> None:
    """Let every current lease lapse, as the store's own reaper sees it.

    On SQLite a reaper declares a lease dead once it watched the renewals stand still
    for a lease length (clearq.scheduler.expiry): it must look once before the wait.
    """
    store.leases.reap()
    time.sleep(SHORT_LEASE + 0.3)


def test_heartbeat_extends_the_lease(short: Store) -> None:
    queued(short, "q")
    [claim] = short.claimer("w", ["q"]).claim()
    first = short.tasks.get(claim.task_id).lease_expires_at
    time.sleep(0.05)
    beat = short.leases.heartbeat("w", [claim.fence])
    assert beat.held == {claim.task_id}
    assert beat.lost == frozenset()
    second = short.tasks.get(claim.task_id).lease_expires_at
    assert first is not None
    assert second is not None
    assert second > first
    for _ in range(3):  # kept alive past several lease lengths
        time.sleep(SHORT_LEASE / 2)
        short.leases.heartbeat("w", [claim.fence])
    assert short.leases.reap().requeued == ()
    assert short.tasks.get(claim.task_id).status is TaskStatus.RUNNING


def test_silent_worker_loses_its_task_and_its_late_writes_are_rejected(short: Store) -> None:
    task_id = queued(short, "q")
    [old] = short.claimer("w1", ["q"]).claim()
    _expire(short)
    report = short.leases.reap()
    assert report.requeued == (task_id,)
    task = short.tasks.get(task_id)
    assert task.status is TaskStatus.QUEUED
    assert task.worker is None
    assert "w1" in task.status_reason
    [new] = short.claimer("w2", ["q"]).claim()
    assert new.task_id == task_id
    assert new.attempt == old.attempt + 1

    with pytest.raises(LeaseLost, match="no longer current"):
        short.leases.finish(old.fence, TaskStatus.COMPLETED, exit_code=0)
    with pytest.raises(LeaseLost):
        short.outputs.append_logs(old.fence, [("stdout", "late\n")])
    with pytest.raises(LeaseLost):
        short.outputs.append_scalars(
            old.fence, [ScalarPoint(title="l", series="s", iteration=0, value=1)]
        )
    beat = short.leases.heartbeat("w1", [old.fence])
    assert beat.lost == {task_id}
    assert beat.held == frozenset()

    task = short.tasks.get(task_id)
    assert task.status is TaskStatus.RUNNING
    assert task.worker == "w2"
    assert short.outputs.logs(task_id) == []
    short.leases.finish(new.fence, TaskStatus.COMPLETED, exit_code=0)
    assert short.tasks.get(task_id).status is TaskStatus.COMPLETED
    with pytest.raises(LeaseLost):
        short.leases.finish(new.fence, TaskStatus.FAILED, exit_code=1)
    assert short.tasks.get(task_id).status is TaskStatus.COMPLETED


def test_requeued_task_goes_to_the_front(short: Store) -> None:
    lost = queued(short, "q", "lost")
    short.claimer("w1", ["q"]).claim()
    waiting = [queued(short, "q", f"w{i}", priority=3) for i in range(2)]
    _expire(short)
    short.leases.reap()
    assert [e.task_id for e in short.queues.entries("q")] == [lost, *waiting]


def test_attempts_spent_fails_with_worker_lost(short: Store) -> None:
    task_id = new_task(short, max_attempts=2)
    short.queues.enqueue(task_id, "q")
    for worker in ("w1", "w2"):
        assert short.claimer(worker, ["q"]).claim()[0].task_id == task_id
        _expire(short)
        short.leases.reap()
    task = short.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert "worker lost" in task.status_reason
    assert "2 attempts" in task.status_reason
    assert task.attempt == 2
    assert short.queues.get("q").length == 0


def test_task_started_by_hand_fails_when_its_process_goes_silent(short: Store) -> None:
    task_id = new_task(short)
    fence = short.tasks.start(task_id)
    assert fence.worker is None
    short.outputs.append_logs(fence, [("stdout", "running by hand\n")])
    _expire(short)
    assert short.leases.reap().failed == (task_id,)
    task = short.tasks.get(task_id)
    assert task.status is TaskStatus.FAILED
    assert "no queue" in task.status_reason


def test_graceful_requeue_does_not_spend_an_attempt(short: Store) -> None:
    task_id = new_task(short, max_attempts=1)
    short.queues.enqueue(task_id, "q")
    other = queued(short, "q", "other")
    [claim] = short.claimer("w", ["q"]).claim()
    task = short.leases.requeue(claim.fence, reason="agent shutting down")
    assert task.status is TaskStatus.QUEUED
    assert task.tries == 0
    assert [e.task_id for e in short.queues.entries("q")] == [task_id, other]
    assert short.claimer("w", ["q"]).claim()[0].task_id == task_id


def test_stop_request_reaches_the_worker_through_the_heartbeat(short: Store) -> None:
    task_id = queued(short, "q")
    [claim] = short.claimer("w", ["q"]).claim()
    assert short.leases.heartbeat("w", [claim.fence]).stop_requested == frozenset()
    assert short.leases.request_stop(task_id).stop_requested_at is not None
    beat = short.leases.heartbeat("w", [claim.fence])
    assert beat.stop_requested == {task_id}
    short.leases.finish(claim.fence, TaskStatus.STOPPED, reason="stopped on request")
    stopped = short.tasks.get(task_id)
    assert stopped.status is TaskStatus.STOPPED
    assert stopped.status_reason == "stopped on request"


def test_stop_request_needs_a_running_task(short: Store) -> None:
    task_id = queued(short, "q")
    with pytest.raises(InvalidInput, match="dequeue"):
        short.leases.request_stop(task_id)
    assert short.tasks.get(task_id).stop_requested_at is None


def test_finish_rejects_a_non_final_status(short: Store) -> None:
    queued(short, "q")
    [claim] = short.claimer("w", ["q"]).claim()
    with pytest.raises(InvalidInput):
        short.leases.finish(claim.fence, TaskStatus.QUEUED)
    assert short.tasks.get(claim.task_id).status is TaskStatus.RUNNING


def test_silent_workers_are_marked_gone(short: Store) -> None:
    short.workers.register("h:quiet", host="h", pid=1, queues=["q"])
    short.workers.register("h:alive", host="h", pid=2, queues=["q"])
    time.sleep(0.4)
    short.leases.heartbeat("h:alive")
    time.sleep(0.3)
    assert short.leases.reap().workers_gone == ("h:quiet",)
    states = {w.id: w.state.value for w in short.workers.list()}
    assert states == {"h:quiet": "gone", "h:alive": "active"}
    short.leases.heartbeat("h:quiet")
    assert short.workers.get("h:quiet").state.value == "active"


def test_finish_many_records_each_and_reports_lost_fences(short: Store) -> None:
    ids = [queued(short, "q", f"t{i}") for i in range(3)]
    claims = short.claimer("w", ["q"]).claim(3)
    assert {c.task_id for c in claims} == set(ids)
    stale = claims[2].fence.model_copy(update={"attempt": claims[2].attempt + 5})
    results = [
        RunResult(fence=claims[0].fence, status=TaskStatus.COMPLETED, exit_code=0),
        RunResult(fence=claims[1].fence, status=TaskStatus.FAILED, exit_code=2, reason="boom"),
        RunResult(fence=stale, status=TaskStatus.COMPLETED, exit_code=0),
    ]
    assert short.leases.finish_many(results) == {claims[2].task_id}
    first, second, third = (short.tasks.get(c.task_id) for c in claims)
    assert (first.status, first.exit_code) == (TaskStatus.COMPLETED, 0)
    assert (second.status, second.exit_code, second.status_reason) == (
        TaskStatus.FAILED,
        2,
        "boom",
    )
    assert third.status is TaskStatus.RUNNING
    assert short.leases.finish_many(results[:1]) == {claims[0].task_id}
    with pytest.raises(InvalidInput):
        short.leases.finish_many([RunResult(fence=claims[2].fence, status=TaskStatus.QUEUED)])


def test_runtime_facts_merge_and_are_fenced(short: Store) -> None:
    task_id = queued(short, "q")
    [claim] = short.claimer("w", ["q"]).claim()
    short.tasks.update_runtime(claim.fence, {"env": "abc", "cache": "miss"})
    short.tasks.update_runtime(claim.fence, {"cache": "hit"})
    assert short.tasks.get(task_id).runtime == {"env": "abc", "cache": "hit"}
    stale = claim.fence.model_copy(update={"attempt": claim.attempt + 1})
    with pytest.raises(LeaseLost):
        short.tasks.update_runtime(stale, {"env": "other"})
    assert short.tasks.get(task_id).runtime["env"] == "abc"
