"""Ending an attempt has the same effects whichever path ends it.

Three paths end an attempt: an agent (``Leases.finish``), a run started by hand over
its bare connection (``RunLink.finish``) and a worker's batch (``Leases.finish_many``).
Each goes through the same table of cases on both databases: what becomes of the task,
of the child waiting on it, and whether idle agents are woken.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from clearq.errors import LeaseLost
from clearq.models import Fence, RunResult, TaskStatus
from clearq.scheduler import ENQUEUE_CHANNEL, Store
from clearq.scheduler.runlink import RunFence, RunLink, open_run_link
from tests.integration.helpers import new_task

Path_ = Callable[[Store, RunLink, Fence, TaskStatus, int | None, str], None]


def _agent(
    store: Store, link: RunLink, fence: Fence, s: TaskStatus, code: int | None, why: str
) -> None:
    store.leases.finish(fence, s, exit_code=code, reason=why)


def _hand_run(
    store: Store, link: RunLink, fence: Fence, s: TaskStatus, code: int | None, why: str
) -> None:
    link.finish(RunFence(fence.task_id, fence.attempt, fence.worker), s, exit_code=code, reason=why)


def _batch(
    store: Store, link: RunLink, fence: Fence, s: TaskStatus, code: int | None, why: str
) -> None:
    lost = store.leases.finish_many([RunResult(fence=fence, status=s, exit_code=code, reason=why)])
    if lost:
        raise LeaseLost(f"finish_many lost {sorted(lost)}")


PATHS: dict[str, Path_] = {"agent": _agent, "hand run": _hand_run, "finish_many": _batch}


@dataclass(frozen=True)
class Case:
    """One way an attempt ends, and what must follow."""

    status: TaskStatus
    exit_code: int | None
    max_retries: int
    parent_after: TaskStatus
    reason_has: str
    child_after: TaskStatus
    wakes: bool
    """A NOTIFY naming the parent (its child may be claimable now), on PostgreSQL."""


CASES = {
    "completed": Case(
        TaskStatus.COMPLETED, 0, 0, TaskStatus.COMPLETED, "", TaskStatus.QUEUED, True
    ),
    "failed": Case(TaskStatus.FAILED, 3, 0, TaskStatus.FAILED, "boom", TaskStatus.SKIPPED, False),
    "failed, retried": Case(
        TaskStatus.FAILED, 3, 1, TaskStatus.QUEUED, "retry 1 of 1", TaskStatus.QUEUED, False
    ),
    "stopped": Case(
        TaskStatus.STOPPED, None, 0, TaskStatus.STOPPED, "boom", TaskStatus.SKIPPED, False
    ),
}


@pytest.fixture
def link(store: Store, store_url: str) -> Iterator[RunLink]:
    opened = open_run_link(store_url, lease_seconds=30.0)
    yield opened
    opened.close()


def _parent_and_child(store: Store, max_retries: int) -> tuple[Fence, uuid.UUID]:
    store.queues.create("q")
    parent = new_task(store, "parent", max_retries=max_retries)
    child = new_task(store, "child")
    store.queues.enqueue(parent, "q")
    store.queues.enqueue(child, "q", depends_on=[parent])
    [claim] = store.claimer("w", ["q"]).claim()
    assert claim.task_id == parent
    return claim.fence, child


def _notices_naming(store: Store, listener: object, payload: str) -> bool:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for notice in listener.wait(0.5):  # type: ignore[attr-defined]
            if notice.channel == ENQUEUE_CHANNEL and notice.payload == payload:
                return True
    return False


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("case_name", list(CASES))
def test_each_path_ends_an_attempt_with_the_same_effects(
    store: Store, link: RunLink, path: str, case_name: str
) -> None:
    case = CASES[case_name]
    fence, child = _parent_and_child(store, case.max_retries)
    listener = store.listen([ENQUEUE_CHANNEL])
    try:
        listener.wait(0)  # listening from here on
        PATHS[path](store, link, fence, case.status, case.exit_code, "boom")
        parent = store.tasks.get(fence.task_id)
        assert parent.status is case.parent_after
        assert case.reason_has in parent.status_reason
        assert parent.exit_code == case.exit_code
        assert store.tasks.get(child).status is case.child_after
        if case.child_after is TaskStatus.SKIPPED:
            assert "it depends on" in store.tasks.get(child).status_reason
        if store.db.is_postgres and case.wakes:
            assert _notices_naming(store, listener, str(fence.task_id))
    finally:
        listener.close()
    if case.parent_after is TaskStatus.QUEUED:
        # Back at the front of its queue: the next claim is the retry, a new attempt.
        [again] = store.claimer("w2", ["q"]).claim()
        assert (again.task_id, again.fence.attempt) == (fence.task_id, fence.attempt + 1)
    # However it ended, the ended attempt's fence holds no more.
    with pytest.raises(LeaseLost):
        PATHS[path](store, link, fence, TaskStatus.COMPLETED, 0, "")


@pytest.mark.parametrize("path", list(PATHS))
def test_a_skipped_childs_own_children_are_skipped_too(
    store: Store, link: RunLink, path: str
) -> None:
    fence, child = _parent_and_child(store, 0)
    grandchild = new_task(store, "grandchild")
    store.queues.enqueue(grandchild, "q", depends_on=[child])
    PATHS[path](store, link, fence, TaskStatus.FAILED, 1, "boom")
    assert store.tasks.get(child).status is TaskStatus.SKIPPED
    assert store.tasks.get(grandchild).status is TaskStatus.SKIPPED
    assert "'child'" in store.tasks.get(grandchild).status_reason
