"""Tasks and queues on a real database: lifecycle, enqueue/dequeue, ordering."""

from __future__ import annotations

import itertools
import uuid

import pytest
import sqlalchemy as sa

from clearq.errors import (
    AlreadyExists,
    IllegalTransition,
    InvalidInput,
    NotFound,
    QueueNotEmpty,
)
from clearq.models import EnvSpec, Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import queue_entries, tasks
from tests.integration.helpers import new_task, queued


def _invariant_holds(store: Store) -> None:
    """Every queued task has exactly one entry and every entry's task is queued."""
    with store.db.read() as conn:
        queued_ids = set(
            conn.execute(sa.select(tasks.c.id).where(tasks.c.status == "queued")).scalars()
        )
        entry_ids = list(conn.execute(sa.select(queue_entries.c.task_id)).scalars())
    assert sorted(map(str, entry_ids)) == sorted(map(str, queued_ids))


def test_create_and_read_back_everything(store: Store) -> None:
    spec = TaskSpec(
        project="mnist",
        name="baseline",
        script=Script(repository="https://example.com/r.git", commit="abc", entry_point="t.py"),
        env=EnvSpec(requirements=("numpy==2.0.0",)),
        parameters={"Args/lr": "0.1", "General/epochs": "3"},
        tags=("a", "b"),
        max_attempts=5,
    )
    created = store.tasks.create(spec)
    got = store.tasks.get(created.id)
    assert got == created
    assert got.status is TaskStatus.CREATED
    assert got.script.entry_point == "t.py"
    assert got.env.requirements == ("numpy==2.0.0",)
    assert got.parameters == {"Args/lr": "0.1", "General/epochs": "3"}
    assert got.max_attempts == 5
    assert got.attempt == 0
    assert got.created_at.tzinfo is not None


def test_default_max_attempts_comes_from_settings(store: Store) -> None:
    task_id = new_task(store)
    assert store.tasks.get(task_id).max_attempts == store.settings.max_attempts


def test_get_unknown_task_says_how_to_find_one(store: Store) -> None:
    with pytest.raises(NotFound, match="clearq task list"):
        store.tasks.get(uuid.uuid4())


def test_list_filters(store: Store) -> None:
    store.queues.create("q")
    a = new_task(store, "a", project="p1")
    b = new_task(store, "b", project="p2")
    store.queues.enqueue(b, "q")
    assert [t.id for t in store.tasks.list(project="p1")] == [a]
    assert [t.id for t in store.tasks.list(status=TaskStatus.QUEUED)] == [b]
    assert [t.id for t in store.tasks.list(queue="q")] == [b]
    assert {t.id for t in store.tasks.list()} == {a, b}


def test_edit_only_drafts(store: Store) -> None:
    store.queues.create("q")
    task_id = new_task(store)
    edited = store.tasks.edit(task_id, parameters={"General/lr": "0.5"}, name="renamed")
    assert edited.parameters == {"General/lr": "0.5"}
    assert edited.name == "renamed"
    store.queues.enqueue(task_id, "q")
    with pytest.raises(InvalidInput, match="only a draft"):
        store.tasks.edit(task_id, parameters={"General/lr": "9"})
    assert store.tasks.get(task_id).parameters == {"General/lr": "0.5"}


def test_queue_create_list_delete(store: Store) -> None:
    store.queues.create("gpu", gpus=2)
    store.queues.create("cpu")
    with pytest.raises(AlreadyExists):
        store.queues.create("gpu")
    with pytest.raises(InvalidInput):
        store.queues.create("bad", gpus=-1)
    queued(store, "gpu")
    queued(store, "gpu")
    listing = {q.name: q for q in store.queues.list()}
    assert [q.name for q in store.queues.list()] == ["cpu", "gpu"]
    assert listing["gpu"].gpus == 2
    assert listing["gpu"].length == 2
    assert listing["gpu"].oldest_enqueued_at is not None
    assert listing["cpu"].length == 0
    assert listing["cpu"].oldest_enqueued_at is None
    store.queues.delete("cpu")
    assert [q.name for q in store.queues.list()] == ["gpu"]


def test_delete_refused_while_entries_unless_forced(store: Store) -> None:
    store.queues.create("q")
    task_id = queued(store, "q")
    with pytest.raises(QueueNotEmpty, match="--force"):
        store.queues.delete("q")
    assert store.queues.get("q").length == 1
    assert store.queues.delete("q", force=True) == [task_id]
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.CREATED
    assert "deleted" in task.status_reason
    with pytest.raises(NotFound):
        store.queues.get("q")
    _invariant_holds(store)


def test_enqueue_and_dequeue_keep_entry_and_status_together(store: Store) -> None:
    store.queues.create("q")
    task_id = new_task(store)
    task = store.queues.enqueue(task_id, "q", priority=3)
    assert task.status is TaskStatus.QUEUED
    assert task.queue == "q"
    assert task.queued_at is not None
    _invariant_holds(store)
    assert store.queues.dequeue(task_id).status is TaskStatus.CREATED
    assert store.queues.get("q").length == 0
    _invariant_holds(store)


def test_enqueue_on_unknown_queue_changes_nothing(store: Store) -> None:
    task_id = new_task(store)
    with pytest.raises(NotFound, match="clearq queue create nope"):
        store.queues.enqueue(task_id, "nope")
    assert store.tasks.get(task_id).status is TaskStatus.CREATED
    _invariant_holds(store)


def test_illegal_transitions_raise_and_change_nothing(store: Store) -> None:
    store.queues.create("q")
    draft = new_task(store)
    with pytest.raises(IllegalTransition):
        store.queues.dequeue(draft)
    with pytest.raises(IllegalTransition):
        store.tasks.reset(draft)
    task_id = queued(store, "q")
    with pytest.raises(IllegalTransition):
        store.queues.enqueue(task_id, "q")
    with pytest.raises(IllegalTransition):
        store.tasks.reset(task_id)
    assert store.tasks.get(draft).status is TaskStatus.CREATED
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED
    assert store.queues.get("q").length == 1
    _invariant_holds(store)


def test_priority_then_fifo(store: Store) -> None:
    store.queues.create("q")
    low1 = queued(store, "q", "low1", priority=0)
    high1 = queued(store, "q", "high1", priority=5)
    low2 = queued(store, "q", "low2", priority=0)
    high2 = queued(store, "q", "high2", priority=5)
    mid = queued(store, "q", "mid", priority=1)
    expected = [high1, high2, mid, low1, low2]
    assert [e.task_id for e in store.queues.entries("q")] == expected
    claimer = store.claimer("w", ["q"])
    assert [claimer.claim()[0].task_id for _ in expected] == expected


def test_move_to_front_and_back(store: Store) -> None:
    store.queues.create("q")
    a = queued(store, "q", "a", priority=2)
    b = queued(store, "q", "b")
    c = queued(store, "q", "c")
    store.queues.move_to_front(c)
    assert [e.task_id for e in store.queues.entries("q")] == [c, a, b]
    store.queues.move_to_back(a)
    assert [e.task_id for e in store.queues.entries("q")] == [c, b, a]
    store.queues.move_to_front(a)
    store.queues.move_to_front(b)
    assert [e.task_id for e in store.queues.entries("q")] == [b, a, c]
    claimer = store.claimer("w", ["q"])
    assert [claimer.claim()[0].task_id for _ in range(3)] == [b, a, c]
    _invariant_holds(store)


def test_move_needs_a_queued_task(store: Store) -> None:
    with pytest.raises(InvalidInput, match="not queued"):
        store.queues.move_to_front(new_task(store))


def test_reset_returns_an_ended_task_to_draft_and_keeps_attempts(store: Store) -> None:
    store.queues.create("q")
    task_id = queued(store, "q")
    claim = store.claimer("w", ["q"]).claim()[0]
    store.outputs.append_logs(claim.fence, [("stdout", "hello\n")])
    store.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=3, reason="boom")
    task = store.tasks.reset(task_id)
    assert task.status is TaskStatus.CREATED
    assert task.exit_code is None
    assert task.status_reason == ""
    assert task.attempt == 1  # never reused: old attempts stay fenced out
    assert task.tries == 0
    assert store.outputs.logs(task_id) == []
    store.queues.enqueue(task_id, "q")
    assert store.claimer("w", ["q"]).claim()[0].attempt == 2


def test_list_limit_counts_only_tasks_with_the_tags(store: Store) -> None:
    tagged = new_task(store, "tagged", tags=("gpu",))
    for i in range(3):
        new_task(store, f"plain{i}")
    assert [t.id for t in store.tasks.list(tags=["gpu"], limit=1)] == [tagged]
    assert len(store.tasks.list(limit=2)) == 2


def test_move_to_another_queue_keeps_priority_and_goes_last(store: Store) -> None:
    store.queues.create("a")
    store.queues.create("b")
    waiting = queued(store, "b", "waiting", priority=1)
    moved = queued(store, "a", "moved", priority=1)
    task = store.queues.move_to_queue(moved, "b")
    assert (task.status, task.queue) == (TaskStatus.QUEUED, "b")
    assert [e.task_id for e in store.queues.entries("b")] == [waiting, moved]
    assert store.queues.entries("a") == []
    assert store.claimer("w", ["b"]).claim(2)[1].task_id == moved
    with pytest.raises(NotFound):
        store.queues.move_to_queue(queued(store, "a"), "nowhere")
    with pytest.raises(InvalidInput, match="not queued"):
        store.queues.move_to_queue(new_task(store), "b")


def test_clear_turns_every_entry_back_into_a_draft(store: Store) -> None:
    store.queues.create("a")
    store.queues.create("b")
    ids = [queued(store, "a", f"t{i}") for i in range(3)]
    kept = queued(store, "b")
    assert store.queues.clear("a") == ids
    assert store.queues.entries("a") == []
    assert all(store.tasks.get(i).status is TaskStatus.CREATED for i in ids)
    assert store.tasks.get(ids[0]).status_reason == "taken out of 'a' when it was cleared"
    assert [e.task_id for e in store.queues.entries("b")] == [kept]


def test_history_records_every_status_and_attempt_change_by_any_path(store: Store) -> None:
    store.queues.create("q")
    task_id = queued(store, "q")
    [claim] = store.claimer("w1", ["q"]).claim()
    store.leases.requeue(claim.fence, reason="agent shutting down")
    [again] = store.claimer("w2", ["q"]).claim()
    store.leases.finish(again.fence, TaskStatus.FAILED, exit_code=2, reason="exited with 2")
    store.tasks.reset(task_id)
    events = store.tasks.history(task_id)
    assert [(e.status, e.attempt, e.worker) for e in events] == [
        (TaskStatus.CREATED, 0, None),
        (TaskStatus.QUEUED, 0, None),
        (TaskStatus.RUNNING, 1, "w1"),
        (TaskStatus.QUEUED, 1, None),
        (TaskStatus.RUNNING, 2, "w2"),
        (TaskStatus.FAILED, 2, "w2"),
        (TaskStatus.CREATED, 2, None),
    ]
    assert events[5].reason == "exited with 2"
    assert events[3].reason == "requeued after attempt 1: agent shutting down"
    assert all(a.at <= b.at for a, b in itertools.pairwise(events))
    with pytest.raises(NotFound):
        store.tasks.history(uuid.uuid4())


def test_clone_copies_code_environment_parameters_and_limits(store: Store) -> None:
    source = new_task(
        store,
        "base",
        script=Script(entry_point="train.py", diff="d"),
        env=EnvSpec(requirements=("six==1.16.0",)),
        parameters={"General/lr": "0.1"},
        max_retries=2,
        retry_delay_seconds=1.5,
        max_run_seconds=60,
    )
    clone = store.tasks.clone(source)
    original = store.tasks.get(source)
    assert clone.id != source
    assert clone.status is TaskStatus.CREATED
    assert (clone.name, clone.parent_id) == ("base (clone)", source)
    assert (clone.script, clone.env, clone.parameters) == (
        original.script,
        original.env,
        original.parameters,
    )
    assert (clone.max_retries, clone.retry_delay_seconds, clone.max_run_seconds) == (2, 1.5, 60)
    named = store.tasks.clone(source, name="lr=1", parent=clone.id)
    assert (named.name, named.parent_id) == ("lr=1", clone.id)
