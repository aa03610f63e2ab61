"""The task lifecycle as an explicit state machine.

::

    created ──enqueue──> queued ──claim──> running ──> completed | failed | stopped
       ^  ^                │                  │ │               │
       │  └────dequeue─────┘                  │ └─requeue (lease lost, agent shutdown)─> queued
       │                                      │
       ├──────────── start (a script run by hand) ──────────────┘
       └──────────── reset ──── completed | failed | stopped | skipped

    created | queued ──> skipped    a task it depends on failed or was stopped
    running ──> queued              a retry (after a delay), or a lease lost
    running ──> created             a run by hand leaves its task as a draft (execute_remotely)

Every status change in the store goes through :func:`check_transition`, inside the same
transaction as the change and conditioned on the status it read, so an illegal or
raced change raises and writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from clearq.enums import TaskStatus
from clearq.errors import IllegalTransition

S = TaskStatus

TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    S.CREATED: frozenset({S.QUEUED, S.RUNNING, S.SKIPPED}),
    S.QUEUED: frozenset({S.CREATED, S.RUNNING, S.SKIPPED}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.STOPPED, S.QUEUED, S.CREATED}),
    S.COMPLETED: frozenset({S.CREATED}),
    S.FAILED: frozenset({S.CREATED}),
    S.STOPPED: frozenset({S.CREATED}),
    S.SKIPPED: frozenset({S.CREATED}),
}

_HINTS: Mapping[TaskStatus, str] = {
    S.CREATED: "enqueue it first",
    S.QUEUED: "dequeue it first (`clearq task dequeue`)",
    S.RUNNING: "wait for it to end or abort it",
    S.COMPLETED: "reset it first (`clearq task reset`) or clone it",
    S.FAILED: "reset it first (`clearq task reset`) or clone it",
    S.STOPPED: "reset it first (`clearq task reset`) or clone it",
    S.SKIPPED: "reset it first (`clearq task reset`) or clone it",
}


def can_transition(current: TaskStatus, target: TaskStatus) -> bool:
    """True when the lifecycle allows ``current -> target``."""
    return target in TRANSITIONS[current]


def check_transition(task_id: uuid.UUID, current: TaskStatus, target: TaskStatus) -> None:
    """Raise IllegalTransition, saying what to do instead, unless the lifecycle allows it."""
    if can_transition(current, target):
        return
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
    raise IllegalTransition(
        f"task {task_id} is {current}: it cannot become {target} "
        f"(from {current} it can become {allowed}); {_HINTS[current]}"
    )
