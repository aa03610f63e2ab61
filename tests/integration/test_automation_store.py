"""What automation stands on, in the store: dependencies in the claim, skips, retries
with backoff, queue caps and the maximum run time on the database's clock."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.errors import InvalidInput, NotFound
from clearq.models import Fence, RunResult, TaskStatus
from clearq.scheduler import Store
from tests.integration.helpers import new_task


@pytest.fixture
def q(store: Store) -> Store:
    store.queues.create("q")
    return store


def _claim_ids(store: Store, worker: str = "w", n: int = 10) -> list[uuid.UUID]:
    return [c.task_id for c in store.claimer(worker, ["q"]).claim(n)]


def _fence(store: Store, task_id: uuid.UUID, worker: str) -> Fence:
    return Fence(task_id=task_id, attempt=store.tasks.get(task_id).attempt, worker=worker)


def _complete(store: Store, task_id: uuid.UUID, worker: str = "w") -> None:
    store.leases.finish(_fence(store, task_id, worker), TaskStatus.COMPLETED)


def _fail(
    store: Store, task_id: uuid.UUID, worker: str = "w", status: TaskStatus = TaskStatus.FAILED
) -> None:
    store.leases.finish(_fence(store, task_id, worker), status, exit_code=1, reason="boom")


def test_a_child_is_claimed_only_after_every_parent_completed(q: Store) -> None:
    a, b = new_task(q, "a"), new_task(q, "b")
    child = new_task(q, "child")
    q.queues.enqueue(child, "q", depends_on=[a, b])  # first in the queue, but blocked
    q.queues.enqueue(a, "q")
    q.queues.enqueue(b, "q")
    assert _claim_ids(q) == [a, b]
    assert _claim_ids(q) == []
    _complete(q, a)
    assert _claim_ids(q) == []
    _complete(q, b)
    assert _claim_ids(q) == [child]


def test_a_failed_parent_skips_its_waiting_children_transitively(q: Store) -> None:
    parent = new_task(q, "parent")
    child, grandchild, tolerant = new_task(q, "child"), new_task(q, "grand"), new_task(q, "tol")
    q.queues.enqueue(parent, "q")
    q.queues.enqueue(child, "q", depends_on=[parent])
    q.queues.enqueue(grandchild, "q", depends_on=[child])
    q.queues.enqueue(tolerant, "q", depends_on=[parent], continue_on_failure=True)
    assert _claim_ids(q, n=1) == [parent]
    _fail(q, parent)
    for skipped in (child, grandchild):
        task = q.tasks.get(skipped)
        assert task.status is TaskStatus.SKIPPED
        assert "it depends on" in task.status_reason
    assert "'parent'" in q.tasks.get(child).status_reason
    assert "'child'" in q.tasks.get(grandchild).status_reason
    assert [e.task_id for e in q.queues.entries("q")] == [tolerant]
    assert _claim_ids(q) == [tolerant]  # continues on failure


def test_enqueue_after_a_parent_failed_skips_at_once(q: Store) -> None:
    parent = new_task(q, "parent")
    q.queues.enqueue(parent, "q")
    _claim_ids(q)
    _fail(q, parent, status=TaskStatus.STOPPED)
    late = new_task(q, "late")
    assert q.queues.enqueue(late, "q", depends_on=[parent]).status is TaskStatus.SKIPPED


def test_dependencies_refuse_cycles_self_and_unknown_parents(q: Store) -> None:
    a, b = new_task(q, "a"), new_task(q, "b")
    q.queues.enqueue(b, "q", depends_on=[a])
    with pytest.raises(InvalidInput, match="cycle"):
        q.queues.enqueue(a, "q", depends_on=[b])
    with pytest.raises(InvalidInput, match="itself"):
        q.queues.enqueue(a, "q", depends_on=[a])
    with pytest.raises(NotFound):
        q.queues.enqueue(a, "q", depends_on=[uuid.uuid4()])
    assert q.tasks.get(a).status is TaskStatus.CREATED


def test_a_failed_run_with_retries_left_goes_back_after_its_delay(q: Store) -> None:
    task_id = new_task(q, "flaky", max_retries=2, retry_delay_seconds=0.6)
    q.queues.enqueue(task_id, "q")
    _claim_ids(q)
    _fail(q, task_id)
    task = q.tasks.get(task_id)
    assert (task.status, task.retries, task.exit_code) == (TaskStatus.QUEUED, 1, 1)
    assert task.status_reason.startswith("retry 1 of 2 after attempt 1: boom")
    assert _claim_ids(q) == []  # waits out its delay
    time.sleep(0.8)
    assert _claim_ids(q) == [task_id]
    _fail(q, task_id)
    assert _claim_ids(q) == []  # the second retry waits twice as long
    time.sleep(1.4)
    assert _claim_ids(q) == [task_id]
    _fail(q, task_id)
    task = q.tasks.get(task_id)
    assert (task.status, task.retries, task.attempt) == (TaskStatus.FAILED, 2, 3)
    assert task.tries == 1  # retries spend no attempt kept for lost workers


def test_the_running_time_limit_is_seen_on_the_database_clock(q: Store) -> None:
    task_id = new_task(q, "slow", max_run_seconds=0.3)
    q.queues.enqueue(task_id, "q")
    [claim] = q.claimer("w", ["q"]).claim()
    assert q.leases.heartbeat("w", [claim.fence]).overtime == frozenset()
    time.sleep(0.5)
    assert q.leases.heartbeat("w", [claim.fence]).overtime == {task_id}


def test_a_queue_cap_limits_running_tasks(q: Store) -> None:
    q.queues.set_max_running("q", 2)
    ids = [new_task(q, f"t{i}") for i in range(4)]
    for i in ids:
        q.queues.enqueue(i, "q")
    assert _claim_ids(q, "w1", 10) == ids[:2]
    assert _claim_ids(q, "w2", 10) == []
    _complete(q, ids[0], "w1")
    assert _claim_ids(q, "w2", 10) == [ids[2]]
    q.queues.set_max_running("q", None)
    assert _claim_ids(q, "w3", 10) == [ids[3]]


def _claimer_process(url: str, home: str, worker: str, seconds: float, out: object) -> None:
    with Store(url, settings=Settings(home=Path(home))) as store:
        claimer = store.claimer(worker, ["capped"])
        deadline = time.monotonic() + seconds
        got = 0
        while time.monotonic() < deadline:
            got += len(claimer.claim(2))
        out.put(got)  # type: ignore[attr-defined]


def test_a_queue_cap_holds_against_racing_claimers(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    store.queues.create("capped", max_running=3)
    for i in range(40):
        store.queues.enqueue(new_task(store, f"t{i}"), "capped")
    out = spawn.Queue()
    procs = [
        spawn.Process(target=_claimer_process, args=(store_url, str(tmp_path), f"w{i}", 3.0, out))
        for i in range(4)
    ]
    for p in procs:
        p.start()
    got = sum(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    running = store.tasks.list(status=TaskStatus.RUNNING, limit=100)
    assert got == len(running) == 3


def test_finish_many_retries_failures_and_skips_the_children_of_stopped_tasks(q: Store) -> None:
    flaky = new_task(q, "flaky", max_retries=1)
    stopped, done = new_task(q, "stopped"), new_task(q, "done")
    for task_id in (flaky, stopped, done):
        q.queues.enqueue(task_id, "q")
    child = new_task(q, "child")
    q.queues.enqueue(child, "q", depends_on=[stopped])
    claims = q.claimer("w", ["q"]).claim(3)
    status = {flaky: TaskStatus.FAILED, stopped: TaskStatus.STOPPED, done: TaskStatus.COMPLETED}
    results = [RunResult(fence=c.fence, status=status[c.task_id], reason="r") for c in claims]
    assert q.leases.finish_many(results) == frozenset()
    assert q.tasks.get(flaky).status is TaskStatus.QUEUED  # retried, not failed
    assert q.tasks.get(flaky).retries == 1
    assert q.tasks.get(done).status is TaskStatus.COMPLETED
    assert q.tasks.get(child).status is TaskStatus.SKIPPED
