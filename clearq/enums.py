"""The enums every layer speaks: task statuses, claim orders, environment managers.

Standard library only, so the run's own path (``Task.init`` in a training script) can
use them without importing pydantic; ``clearq.models`` re-exports them.
"""

from __future__ import annotations

import enum

__all__ = [
    "FINAL_STATUSES",
    "RUN_END_STATUSES",
    "ClaimOrder",
    "EnvManager",
    "HistoryMark",
    "TaskStatus",
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
