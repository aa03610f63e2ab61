"""The cleanup port's contract (archive, delete, retention), on the memory twin, SQLite and
PostgreSQL alike (``ports.CleanupPort``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from clearq.errors import InvalidInput, NotFound
from clearq.models import ScalarPoint, Script, TaskFilter, TaskSpec, TaskStatus
from tests.contract.test_store_contract import any_store  # noqa: F401 - the fixture


def _new(store: Any, name: str = "t", project: str = "p", **spec: Any) -> uuid.UUID:
    task_id: uuid.UUID = store.tasks.create(TaskSpec(project=project, name=name, **spec)).id
    return task_id


def _ran(store: Any, name: str, status: TaskStatus = TaskStatus.COMPLETED) -> uuid.UUID:
    """A task run through queue q to ``status``, with a log line and a scalar point."""
    task_id = _new(store, name)
    store.queues.enqueue(task_id, "q")
    [claim] = store.claimer("w", ["q"]).claim(among=["q"])
    assert claim.task_id == task_id
    store.outputs.append_logs(claim.fence, [("stdout", f"{name}\n")])
    point = ScalarPoint(title="loss", series="train", iteration=1, value=0.5)
    store.outputs.append_scalars(claim.fence, [point])
    if status is not TaskStatus.RUNNING:
        store.leases.finish(
            claim.fence, status, exit_code=0 if status is TaskStatus.COMPLETED else 1
        )
    return task_id


def test_archived_tasks_leave_the_default_lists_and_stay_readable(any_store: Any) -> None:  # noqa: F811
    a, b = _new(any_store, "a"), _new(any_store, "b")
    assert any_store.cleanup.archive([a, a]) == 1
    assert any_store.cleanup.archive([a]) == 0  # already archived: nothing changes
    assert [t.id for t in any_store.tasks.list()] == [b]
    assert [t.id for t in any_store.tasks.list(archived=True)] == [a]
    assert {t.id for t in any_store.tasks.list(archived=None)} == {a, b}
    shown = any_store.tasks.get(a)
    assert shown.archived
    assert shown.archived_at is not None
    assert any_store.cleanup.select(TaskFilter(archived=True)) == [a]
    assert any_store.cleanup.unarchive([a, b]) == 1
    assert {t.id for t in any_store.tasks.list()} == {a, b}
    with pytest.raises(NotFound, match="nothing was changed"):
        any_store.cleanup.archive([b, uuid.uuid4()])
    assert not any_store.tasks.get(b).archived


def test_a_filter_picks_by_project_status_tag_and_age(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    done = _ran(any_store, "done")
    failed = _ran(any_store, "failed", TaskStatus.FAILED)
    draft = _new(any_store, "draft", tags=("sweep",))
    other = _new(any_store, "other", project="elsewhere", tags=("sweep",))
    pick = any_store.cleanup.select
    assert pick(TaskFilter(project="p")) == [done, failed, draft]
    assert pick(TaskFilter(statuses=(TaskStatus.FAILED,))) == [failed]
    assert pick(TaskFilter(tags=("sweep",))) == [draft, other]
    assert pick(TaskFilter(project="p", tags=("sweep",))) == [draft]
    assert pick(TaskFilter(ended_before_seconds=3600)) == []
    time.sleep(0.3)
    assert pick(TaskFilter(ended_before_seconds=0.1)) == [done, failed, draft, other]
    assert pick(TaskFilter(archived=True)) == []
    assert pick(TaskFilter(project="p"), limit=1) == [done]


def test_delete_removes_the_task_and_what_names_it(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    done = _ran(any_store, "done")
    clone = _new(any_store, "clone", parent_id=done)
    waiting = _new(any_store, "waiting")
    any_store.queues.enqueue(waiting, "q")
    report = any_store.cleanup.delete([done, waiting])
    assert set(report.deleted) == {done, waiting}
    assert report.skipped == ()
    for gone in (done, waiting):
        with pytest.raises(NotFound):
            any_store.tasks.get(gone)
        assert any_store.outputs.logs(gone) == []
        assert any_store.outputs.summary(gone) == []
    assert any_store.tasks.get(clone).parent_id is None
    [queue] = any_store.queues.list()
    assert queue.length == 0
    with pytest.raises(NotFound, match="nothing was changed"):
        any_store.cleanup.delete([clone, uuid.uuid4()])
    assert any_store.tasks.get(clone).status is TaskStatus.CREATED


def test_a_running_task_is_deleted_only_with_force_which_stops_it(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    running = _ran(any_store, "running", TaskStatus.RUNNING)
    draft = _new(any_store, "draft")
    with pytest.raises(InvalidInput, match="is running: abort it first"):
        any_store.cleanup.delete([draft, running])
    assert any_store.tasks.get(draft).status is TaskStatus.CREATED  # nothing went
    fence = any_store.tasks.get(running)
    report = any_store.cleanup.delete([draft, running], force=True)
    assert set(report.deleted) == {draft, running}
    lost = any_store.leases.heartbeat("w", [_fence_of(fence)]).lost
    assert lost == {running}


def _fence_of(task: Any) -> Any:
    from clearq.models import Fence

    return Fence(task_id=task.id, attempt=task.attempt, worker=task.worker)


def test_retention_drops_old_lines_and_points_of_ended_tasks_only(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    done = _ran(any_store, "done")
    running = _ran(any_store, "running", TaskStatus.RUNNING)
    cleanup = any_store.cleanup
    assert (cleanup.count_old_logs(3600), cleanup.purge_logs(3600)) == (0, 0)
    time.sleep(0.3)
    assert cleanup.count_old_logs(0.1) == 1
    assert cleanup.count_old_scalars(0.1) == 1
    assert cleanup.purge_logs(0.1) == 1
    assert cleanup.purge_scalars(0.1) == 1
    assert any_store.outputs.logs(done) == []
    assert any_store.outputs.scalars(done) == []
    assert [s.last for s in any_store.outputs.summary(done)] == [0.5]  # the summary stays
    assert [x.text for x in any_store.outputs.logs(running)] == ["running\n"]
    with pytest.raises(InvalidInput, match="above 0"):
        cleanup.purge_logs(0)


def test_archived_tasks_are_found_by_how_long_ago_they_were_archived(any_store: Any) -> None:  # noqa: F811
    a, b = _new(any_store, "a"), _new(any_store, "b")
    any_store.cleanup.archive([a])
    assert any_store.cleanup.archived_before(3600) == []
    time.sleep(0.3)
    assert any_store.cleanup.archived_before(0.1) == [a]
    assert b not in any_store.cleanup.archived_before(0.1)  # never archived


def test_gc_asks_which_tasks_exist_and_which_repositories_they_run(any_store: Any) -> None:  # noqa: F811

    url = "https://git.example/org/repo.git"
    a = _new(any_store, "a", script=Script(repository=url, entry_point="train.py"))
    _new(any_store, "b", script=Script(repository=url, entry_point="eval.py"))
    _new(any_store, "c")  # a standalone script: no repository
    gone = uuid.uuid4()
    assert any_store.cleanup.existing([a, gone]) == {a}
    assert any_store.cleanup.existing([]) == set()
    assert any_store.cleanup.repositories() == {url}


def test_one_of_racing_holders_takes_a_chore_s_turn(any_store: Any) -> None:  # noqa: F811
    import threading

    cleanup = any_store.cleanup
    start = threading.Barrier(6)
    won: list[str] = []

    def take(holder: str) -> None:
        start.wait()
        if cleanup.take_turn("retention", holder, every_seconds=3600):
            won.append(holder)

    threads = [threading.Thread(target=take, args=(f"agent-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(won) == 1, won
    [holder] = won
    assert not cleanup.take_turn("retention", "late", every_seconds=3600)
    # The holder keeps its turn step by step; another cannot keep what it never took.
    assert cleanup.take_turn("retention", holder, every_seconds=3600, keep=True)
    assert not cleanup.take_turn("retention", "late", every_seconds=3600, keep=True)
    # Another chore is another turn.
    assert cleanup.take_turn("other", "late", every_seconds=3600)


def test_a_chore_is_due_again_once_its_time_passed(any_store: Any) -> None:  # noqa: F811
    cleanup = any_store.cleanup
    assert cleanup.take_turn("retention", "a", every_seconds=0.3)
    assert not cleanup.take_turn("retention", "b", every_seconds=0.3)
    deadline = time.monotonic() + 30
    while not cleanup.take_turn("retention", "b", every_seconds=3600):
        assert time.monotonic() < deadline, "the chore never came due again"
        time.sleep(0.1)
    # b holds it now: a's keeping fails.
    assert not cleanup.take_turn("retention", "a", every_seconds=3600, keep=True)


def test_retention_deletes_in_bounded_steps(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    task_id = _new(any_store, "noisy")
    any_store.queues.enqueue(task_id, "q")
    [claim] = any_store.claimer("w", ["q"]).claim(among=["q"])
    any_store.outputs.append_logs(claim.fence, [("stdout", f"{i}\n") for i in range(5)])
    points = [ScalarPoint(title="loss", series="train", iteration=i, value=0.5) for i in range(5)]
    any_store.outputs.append_scalars(claim.fence, points)
    any_store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    time.sleep(1.2)
    assert any_store.cleanup.purge_logs(1.0, limit=2) == 2
    assert len(any_store.outputs.logs(task_id)) == 3
    assert any_store.cleanup.purge_logs(1.0, limit=10) == 3
    assert any_store.cleanup.purge_scalars(1.0, limit=4) == 4
    assert any_store.cleanup.purge_scalars(1.0) == 1
    assert any_store.outputs.logs(task_id) == []


def test_a_running_archived_task_waits_for_its_end_before_retention(any_store: Any) -> None:  # noqa: F811
    any_store.queues.create("q")
    running = _ran(any_store, "running", TaskStatus.RUNNING)
    done = _ran(any_store, "done")
    any_store.cleanup.archive([running, done])
    time.sleep(0.3)
    assert any_store.cleanup.archived_before(0.1) == [done]
