"""``TaskTypes``: the kinds of task ClearML names, under the same names and values."""

from __future__ import annotations

import enum

from clearq.errors import InvalidInput


class TaskTypes(enum.StrEnum):
    """What a task is for: ``Task.init(task_type=Task.TaskTypes.testing)``."""

    training = "training"
    testing = "testing"
    inference = "inference"
    data_processing = "data_processing"
    application = "application"
    monitor = "monitor"
    controller = "controller"
    optimizer = "optimizer"
    service = "service"
    qc = "qc"
    custom = "custom"


def task_type_value(task_type: TaskTypes | str) -> str:
    """The stored text of a task type; InvalidInput naming the known ones otherwise."""
    try:
        return TaskTypes(task_type).value
    except ValueError:
        known = ", ".join(t.value for t in TaskTypes)
        raise InvalidInput(f"task_type {task_type!r} is not one of: {known}") from None


__all__ = ["TaskTypes", "task_type_value"]
