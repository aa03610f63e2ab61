"""ClearML's TaskScheduler and TriggerScheduler names over the in-memory store."""

from __future__ import annotations

import pytest

from clearq.automation import TaskScheduler, TriggerScheduler
from clearq.automation.scheduling import cron_of
from clearq.errors import InvalidInput
from clearq.models import ScheduleKind, TaskSpec, TaskStatus
from clearq.testing import MemoryStore


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"minute": 15}, (900.0, None)),
        ({"hour": 2}, (7200.0, None)),
        ({"hour": 1, "minute": 30}, (None, "30 */1 * * *")),
        ({"minute": 30, "hour": 22, "day": 1}, (None, "30 22 */1 * *")),
        ({"minute": 30, "hour": 7, "day": 2}, (None, "30 7 */2 * *")),
        ({"minute": 30, "hour": 8, "day": 0, "weekdays": ["saturday"]}, (None, "30 8 * * sat")),
        ({"hour": 2, "weekdays": ["saturday", "sunday"]}, (None, "0 */2 * * sat,sun")),
        ({"month": 1, "day": 5}, (None, "0 0 5 */1 *")),
    ],
)
def test_clearml_times_map_to_intervals_and_cron_lines(
    times: dict[str, object], expected: tuple[float | None, str | None]
) -> None:
    full = {"minute": None, "hour": None, "day": None, "weekdays": None, "month": None}
    assert cron_of(**{**full, **times}) == expected  # type: ignore[arg-type]


def _store() -> tuple[MemoryStore, str]:
    store = MemoryStore()
    store.queues.create("default")
    task = store.tasks.create(TaskSpec(project="p", name="report", parameters={"Args/x": "1"}))
    return store, str(task.id)


def test_task_scheduler_adds_schedules_that_the_store_keeps() -> None:
    store, task_id = _store()
    scheduler = TaskScheduler(store=store)
    assert scheduler.add_task(schedule_task_id=task_id, queue="default", minute=15)
    assert scheduler.add_task(
        schedule_task_id=task_id,
        queue="default",
        name="nightly",
        hour=3,
        minute=0,
        day=1,
        task_parameters={"Args/x": 2},
    )
    scheduler.start()  # returns: nothing has to keep running
    every, nightly = scheduler.get_scheduled_tasks()
    assert (every.kind, every.every_seconds, str(every.task_id)) == (
        ScheduleKind.EVERY,
        900.0,
        task_id,
    )
    assert (nightly.kind, nightly.cron, nightly.name) == (
        ScheduleKind.CRON,
        "0 3 */1 * *",
        "nightly",
    )
    base = store.tasks.get(nightly.task_id)
    assert (str(base.parent_id), base.parameters, base.status) == (
        task_id,
        {"Args/x": "2"},
        TaskStatus.CREATED,
    )
    assert scheduler.remove_task("nightly")
    assert [s.id for s in scheduler.get_scheduled_tasks()] == [every.id]
    assert scheduler.remove_task(task_id)
    assert store.schedules.list() == []


def test_task_scheduler_refuses_what_it_cannot_honour_by_name() -> None:
    store, task_id = _store()
    scheduler = TaskScheduler(store=store)
    with pytest.raises(InvalidInput, match="schedule_function"):
        scheduler.add_task(schedule_function=print, queue="default", minute=5)
    with pytest.raises(InvalidInput, match="recurring_false, single_instance"):
        scheduler.add_task(
            schedule_task_id=task_id, queue="default", hour=1, recurring=False, single_instance=True
        )
    with pytest.raises(InvalidInput, match="schedule's time"):
        scheduler.add_task(schedule_task_id=task_id, queue="default")
    assert store.schedules.list() == []


def test_trigger_scheduler_adds_one_trigger_per_status() -> None:
    store, task_id = _store()
    triggers = TriggerScheduler(store=store)
    triggers.add_task_trigger(
        schedule_task_id=task_id,
        schedule_queue="default",
        trigger_project="train",
        trigger_on_status=["completed", "in_progress"],
        trigger_exclude_dev_tasks=True,
    )
    triggers.start_remotely(queue="services")
    added = store.schedules.list()
    assert [(s.on_status, s.on_project, str(s.task_id)) for s in added] == [
        (TaskStatus.COMPLETED, "train", task_id),
        (TaskStatus.RUNNING, "train", task_id),
    ]
    triggers.add_task_trigger(
        schedule_task_id=task_id, schedule_queue="default", trigger_on_tags=["release"]
    )
    assert store.schedules.list()[-1].on_tag == "release"
    with pytest.raises(InvalidInput, match="trigger_required_tags"):
        triggers.add_task_trigger(
            schedule_task_id=task_id, schedule_queue="default", trigger_required_tags=["x"]
        )
    with pytest.raises(InvalidInput, match="cannot fire on status 'published'"):
        triggers.add_task_trigger(
            schedule_task_id=task_id, schedule_queue="default", trigger_on_status=["published"]
        )
