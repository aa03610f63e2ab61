"""Schedules meeting the store's other queue operations, on SQLite and PostgreSQL.

A schedule's waiting clone moved within or across queues stays its schedule's, with its
time (or a trigger's hold); ``clearq task run`` on a time schedule's clone fires it early;
on a trigger's held clone it says why it cannot.
"""

from __future__ import annotations

import pytest

from clearq.errors import InvalidInput
from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store

REPORT = TaskSpec(project="p", name="report")


def test_a_moved_waiting_clone_keeps_its_schedule_and_its_time(store: Store) -> None:
    for name in ("nightly", "other"):
        store.queues.create(name)
    template = store.tasks.create(REPORT).id
    info = store.schedules.add(template, "nightly", every_seconds=3600)
    assert info.next_task_id is not None
    store.queues.move_to_front(info.next_task_id)
    store.queues.move_to_back(info.next_task_id)
    store.queues.move_to_queue(info.next_task_id, "other")
    moved = store.schedules.get(info.id)
    assert (moved.next_task_id, moved.next_at) == (info.next_task_id, info.next_at)
    assert store.claimer("w", ["other", "nightly"]).claim() == []  # still waits for its time


def test_a_moved_trigger_clone_stays_held(store: Store) -> None:
    store.queues.create("eval")
    template = store.tasks.create(REPORT).id
    info = store.schedules.add_trigger(template, "eval", on_status=TaskStatus.COMPLETED)
    assert info.next_task_id is not None
    store.queues.move_to_front(info.next_task_id)
    assert store.claimer("w", ["eval"]).claim() == []
    assert store.schedules.get(info.id).next_task_id == info.next_task_id


def test_task_run_fires_a_schedule_early_but_waits_for_a_triggers_event(store: Store) -> None:
    store.queues.create("nightly")
    template = store.tasks.create(REPORT).id
    every = store.schedules.add(template, "nightly", every_seconds=3600)
    assert every.next_task_id is not None
    claim = store.claim_task("here", every.next_task_id)
    after = store.schedules.get(every.id)
    assert (after.fired, after.last_task_id) == (1, claim.task_id)
    assert after.next_task_id not in (None, claim.task_id)
    trigger = store.schedules.add_trigger(template, "nightly", on_status=TaskStatus.FAILED)
    assert trigger.next_task_id is not None
    with pytest.raises(InvalidInput, match=f"waits for trigger {trigger.id}"):
        store.claim_task("here", trigger.next_task_id)
