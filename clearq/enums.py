"""The enums every layer speaks: task statuses, claim orders, environment managers, ...

Standard library only, so the run's own path (``Task.init`` in a training script) and the
CLI's flags can use them without importing pydantic; ``clearq.models`` re-exports them.
"""

from __future__ import annotations

import enum

__all__ = [
    "DEFAULT_FAIR_HALF_LIFE",
    "FINAL_STATUSES",
    "RUN_END_STATUSES",
    "ClaimOrder",
    "EnvManager",
    "FairShare",
    "HistoryMark",
    "QuotaKind",
    "ScheduleKind",
    "TaskStatus",
    "WorkerCommand",
    "WorkerState",
]


class TaskStatus(enum.StrEnum):
    """Where a task is in its lifecycle (see ``clearq.scheduler.lifecycle``)."""

    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    SKIPPED = "skipped"
    """Never ran: a task it depends on failed or was stopped (``status_reason`` says which)."""

    @property
    def is_final(self) -> bool:
        """True for the statuses nothing follows but a reset (a run's end, or skipped)."""
        return self in FINAL_STATUSES


RUN_END_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.STOPPED})
"""The statuses a run ends in."""
FINAL_STATUSES = RUN_END_STATUSES | {TaskStatus.SKIPPED}
"""The statuses nothing follows but a reset."""


class HistoryMark(enum.StrEnum):
    """An entry of a task's status history that is not a status the task can be in."""

    PREEMPTED = "preempted"
    """The attempt was interrupted from outside (its agent drained, a spot notice, Slurm
    taking the node back): it spends none of max_attempts and the task is queued again."""


class ClaimOrder(enum.StrEnum):
    """How a worker picks among the queues it serves."""

    STRICT = "strict"
    """The first queue with an eligible entry wins, in the order given."""
    ROUND_ROBIN = "round-robin"
    """Queues take turns: the starting queue rotates after each claim."""


class EnvManager(enum.StrEnum):
    """The tool that builds a task's Python environment."""

    UV = "uv"
    PIP = "pip"
    POETRY = "poetry"
    CONDA = "conda"


class FairShare(enum.StrEnum):
    """Whose turns a fair-share queue balances: its tasks' users', or their projects'."""

    USER = "user"
    PROJECT = "project"


class QuotaKind(enum.StrEnum):
    """Whom a quota limits: the tasks one user made, or the tasks of one project."""

    USER = "user"
    PROJECT = "project"


class ScheduleKind(enum.StrEnum):
    """What makes a schedule fire (``clearq.scheduler.schedules``)."""

    EVERY = "every"
    """A fixed interval from when it was added."""
    CRON = "cron"
    """A cron line, in a time zone."""
    TRIGGER = "trigger"
    """A task (of a project) reaching a status."""


class WorkerState(enum.StrEnum):
    """Whether a worker is heard from."""

    ACTIVE = "active"
    GONE = "gone"


class WorkerCommand(enum.StrEnum):
    """What an operator asked of a worker (``clearq workers drain|pause``)."""

    DRAIN = "drain"
    """Finish the running tasks, claim nothing more, then exit."""
    PAUSE = "pause"
    """Claim nothing until resumed; the running tasks go on."""


DEFAULT_FAIR_HALF_LIFE = 7 * 24 * 3600.0
"""A run's usage counts half after a week (Slurm's PriorityDecayHalfLife default)."""
