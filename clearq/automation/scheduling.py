"""ClearML's ``TaskScheduler`` and ``TriggerScheduler`` names over clearq's schedules.

In ClearML both are controller processes: a service task that sleeps, wakes, clones and
enqueues. In clearq a schedule lives in the database and fires inside the claim of its
waiting clone (``clearq schedule``), so these classes only *add* schedules and triggers:
``start()`` and ``start_remotely()`` return at once, and nothing has to keep running
(the script that added them may exit). The arguments that map cleanly are taken; each one
that does not is refused by name when given a value other than ClearML's default, never
silently ignored.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from clearq.errors import InvalidInput
from clearq.models import ScheduleInfo, TaskStatus, clone_spec
from clearq.ports import SchedulePort, TaskRecords
from clearq.sdk import Task, default_store

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CRON_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLEARML_STATUSES: Mapping[str, TaskStatus] = {
    "in_progress": TaskStatus.RUNNING,
    "running": TaskStatus.RUNNING,
    "completed": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "stopped": TaskStatus.STOPPED,
    "skipped": TaskStatus.SKIPPED,
}
"""ClearML's status names a trigger may fire on, as clearq's."""


class SchedulingStore(Protocol):
    """What the facades use of the store."""

    @property
    def tasks(self) -> TaskRecords: ...
    @property
    def schedules(self) -> SchedulePort: ...


def _refuse(**given: Any) -> None:
    """InvalidInput naming every argument given that clearq cannot honour."""
    names = sorted(name for name, value in given.items() if value)
    if names:
        raise InvalidInput(
            f"clearq's schedules do not support {', '.join(names)}: leave "
            f"{'it' if len(names) == 1 else 'them'} out (see clearq.automation.scheduling)"
        )


def _task_id(task: str | uuid.UUID | Task | None) -> uuid.UUID:
    if task is None:
        raise InvalidInput("give the task to clone (schedule_task_id): clearq runs tasks only")
    if isinstance(task, Task):
        return uuid.UUID(task.id)
    return task if isinstance(task, uuid.UUID) else uuid.UUID(str(task))


def _base(
    store: SchedulingStore,
    task_id: uuid.UUID,
    name: str | None,
    parameters: Mapping[str, Any] | None,
) -> uuid.UUID:
    """The task a schedule clones: ``task_id``, or a draft of it with ``parameters`` set."""
    if not parameters:
        return task_id
    source = store.tasks.get(task_id)
    spec = clone_spec(source, name=name or source.name)
    merged = {**source.parameters, **{k: str(v) for k, v in parameters.items()}}
    draft = store.tasks.create(spec.model_copy(update={"parameters": merged}))
    return draft.id


def cron_of(
    *,
    minute: int | None,
    hour: int | None,
    day: int | None,
    weekdays: Sequence[str] | None,
    month: int | None,
) -> tuple[float | None, str | None]:
    """ClearML's ``add_task`` times as (every seconds, cron line), UTC as ClearML's are.

    ``minute=15``: every 15 minutes; ``hour=2``: every 2 hours; ``hour=1, minute=30``:
    every hour at :30; ``day=1, hour=22, minute=30``: every day at 22:30 (``day=2``: on
    every other day of the month); ``weekdays=[...]`` with ``day`` 0 or 1: on those days
    at ``hour:minute``, without ``day``: every ``hour`` hours on those days;
    ``month=1, day=5``: on the 5th of every month.
    """
    m = minute or 0
    if weekdays:
        if day not in (None, 0, 1):
            raise InvalidInput("weekdays and day combine only with day=None, 0 or 1 (as ClearML)")
        days = ",".join(_CRON_DAYS[_weekday(w)] for w in weekdays)
        if day is None and hour:
            return None, f"{m} */{hour} * * {days}"
        return None, f"{m} {hour or 0} * * {days}"
    if month:
        return None, f"{m} {hour or 0} {day or 1} */{month} *"
    if day:
        return None, f"{m} {hour or 0} */{day} * *"
    if hour and minute is not None:
        return None, f"{m} */{hour} * * *"
    if hour:
        return hour * 3600.0, None
    if minute:
        return minute * 60.0, None
    raise InvalidInput("give the schedule's time: minute, hour, day, weekdays or month")


def _weekday(name: str | int) -> int:
    if isinstance(name, int):
        return min(6, max(name, 0))
    if name.lower() not in WEEKDAYS:
        raise InvalidInput(f"unknown weekday {name!r}: use one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(name.lower())


class TaskScheduler:
    """ClearML's ``TaskScheduler``: clones of a task enqueued at times, kept in the store.

    Supported: ``add_task(schedule_task_id, queue, name, minute, hour, day, weekdays,
    month, task_parameters)`` (times in UTC, as ClearML's), ``get_scheduled_tasks()``,
    ``remove_task()``; ``start()`` and ``start_remotely()`` return at once (the agents
    fire the schedules). Not supported (refused when given): ``schedule_function`` (no
    scheduler process exists to call it), ``target_project``, ``year``,
    ``limit_execution_time``, ``single_instance``, ``recurring=False``,
    ``execute_immediately``, ``reuse_task``, ``task_overrides``. The constructor's
    ``sync_frequency_minutes`` and ``force_create_task_*`` are accepted and unused: no
    service task is made.
    """

    def __init__(
        self,
        sync_frequency_minutes: float = 15,
        force_create_task_name: str | None = None,
        force_create_task_project: str | None = None,
        *,
        store: SchedulingStore | None = None,
    ) -> None:
        self._store: SchedulingStore = store if store is not None else default_store()
        self._added: dict[int, uuid.UUID] = {}

    def add_task(
        self,
        schedule_task_id: str | uuid.UUID | Task | None = None,
        schedule_function: Any = None,
        queue: str | None = None,
        name: str | None = None,
        target_project: str | None = None,
        minute: int | None = None,
        hour: int | None = None,
        day: int | None = None,
        weekdays: Sequence[str] | None = None,
        month: int | None = None,
        year: int | None = None,
        limit_execution_time: float | None = None,
        single_instance: bool = False,
        recurring: bool = True,
        execute_immediately: bool = False,
        reuse_task: bool = False,
        task_parameters: Mapping[str, Any] | None = None,
        task_overrides: Mapping[str, Any] | None = None,
    ) -> bool:
        """Enqueue a clone of ``schedule_task_id`` in ``queue`` at each of these times."""
        _refuse(
            schedule_function=schedule_function,
            target_project=target_project,
            year=year,
            limit_execution_time=limit_execution_time,
            single_instance=single_instance,
            recurring_false=not recurring,
            execute_immediately=execute_immediately,
            reuse_task=reuse_task,
            task_overrides=task_overrides,
        )
        if not queue:
            raise InvalidInput("give the queue the clones go to (queue=...)")
        every, cron = cron_of(minute=minute, hour=hour, day=day, weekdays=weekdays, month=month)
        task_id = _task_id(schedule_task_id)
        base = _base(self._store, task_id, name, task_parameters)
        info = self._store.schedules.add(base, queue, every_seconds=every, cron=cron, name=name)
        self._added[info.id] = task_id
        return True

    def get_scheduled_tasks(self) -> builtins.list[ScheduleInfo]:
        """Every time schedule in the store (not the triggers)."""
        return [s for s in self._store.schedules.list() if s.on_status is None]

    def remove_task(self, task_id: str | uuid.UUID | Task) -> bool:
        """Remove the schedules of a task (the one given to ``add_task``) or of that name."""
        wanted = str(task_id.id) if isinstance(task_id, Task) else str(task_id)
        removed = False
        for s in self.get_scheduled_tasks():
            if wanted in (str(s.task_id), s.name, str(self._added.get(s.id, ""))):
                self._store.schedules.remove(s.id)
                removed = True
        return removed

    def start(self) -> None:
        """Return at once: the schedules are in the store and agents fire them."""

    def start_remotely(self, queue: str = "services") -> None:
        """Return at once, as :meth:`start` (no service task is needed to keep time)."""


class TriggerScheduler:
    """ClearML's ``TriggerScheduler``: a clone of a task enqueued when tasks reach a status.

    Supported: ``add_task_trigger(schedule_task_id, schedule_queue, trigger_project,
    trigger_on_status, trigger_on_tags, name, task_parameters)``: one trigger per status
    (ClearML's ``in_progress`` is clearq's ``running``) and one per tag (a task gaining
    it fires it); ``${trigger.task.id}`` in the parameters
    names the task that fired it. ``start()`` and ``start_remotely()`` return at once
    (the database fires triggers in the status change's transaction). Not supported
    (refused when given): ``schedule_function``, ``trigger_name``,
    ``trigger_required_tags``, ``trigger_on_metric`` and its variant, threshold and sign,
    ``target_project``, ``single_instance``, ``reuse_task``, ``task_overrides``; nor
    ``add_model_trigger`` and ``add_dataset_trigger``. clearq fires on every task, run
    by an agent or by hand (``trigger_exclude_dev_tasks`` is not read), and adds no tag.
    """

    def __init__(
        self,
        pooling_frequency_minutes: float = 3.0,
        sync_frequency_minutes: float = 15,
        force_create_task_name: str | None = None,
        force_create_task_project: str | None = None,
        *,
        store: SchedulingStore | None = None,
    ) -> None:
        self._store: SchedulingStore = store if store is not None else default_store()

    def add_task_trigger(
        self,
        schedule_task_id: str | uuid.UUID | Task | None = None,
        schedule_queue: str | None = None,
        schedule_function: Any = None,
        trigger_project: str | None = None,
        trigger_name: str | None = None,
        trigger_on_tags: Sequence[str] | None = None,
        trigger_on_status: Sequence[str] | None = None,
        trigger_exclude_dev_tasks: bool | None = None,
        trigger_on_metric: str | None = None,
        trigger_on_variant: str | None = None,
        trigger_on_threshold: float | None = None,
        trigger_on_sign: str | None = None,
        trigger_required_tags: Sequence[str] | None = None,
        name: str | None = None,
        target_project: str | None = None,
        add_tag: bool | str = True,
        single_instance: bool = False,
        reuse_task: bool = False,
        task_parameters: Mapping[str, Any] | None = None,
        task_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        """Enqueue a clone of ``schedule_task_id`` each time a task of ``trigger_project``
        reaches one of ``trigger_on_status``."""
        _refuse(
            schedule_function=schedule_function,
            trigger_name=trigger_name,
            trigger_required_tags=trigger_required_tags,
            trigger_on_metric=trigger_on_metric,
            trigger_on_variant=trigger_on_variant,
            trigger_on_threshold=trigger_on_threshold is not None,
            trigger_on_sign=trigger_on_sign,
            target_project=target_project,
            single_instance=single_instance,
            reuse_task=reuse_task,
            task_overrides=task_overrides,
        )
        if not schedule_queue:
            raise InvalidInput("give the queue the clones go to (schedule_queue=...)")
        if not trigger_on_status and not trigger_on_tags:
            raise InvalidInput(
                "give what fires it: trigger_on_status=[...] or trigger_on_tags=[...]"
            )
        statuses = [_status(s) for s in trigger_on_status or ()]
        base = _base(self._store, _task_id(schedule_task_id), name, task_parameters)
        add = self._store.schedules.add_trigger
        for status in dict.fromkeys(statuses):
            add(base, schedule_queue, on_status=status, on_project=trigger_project, name=name)
        for tag in dict.fromkeys(trigger_on_tags or ()):
            add(base, schedule_queue, on_tag=tag, on_project=trigger_project, name=name)

    def start(self) -> None:
        """Return at once: the triggers are in the store and the database fires them."""

    def start_remotely(self, queue: str = "services") -> None:
        """Return at once, as :meth:`start`."""


def _status(name: str) -> TaskStatus:
    found = CLEARML_STATUSES.get(name.lower())
    if found is None:
        raise InvalidInput(
            f"a trigger cannot fire on status {name!r}: use one of {', '.join(CLEARML_STATUSES)}"
        )
    return found
