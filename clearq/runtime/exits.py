"""``clearq agent --once``'s exit status: how its one task ended.

A script that runs ``clearq agent --once`` (a Slurm job, a CI step, a pod) reads the
task's end from the exit status without asking the database. 1 and 2 stay what every
``clearq`` command means by them (an error the agent printed; a bad flag), so the task's
ends start at 3.
"""

from __future__ import annotations

import enum

from clearq.enums import TaskStatus


class OnceExit(enum.IntEnum):
    """The exit status of ``clearq agent --once`` (an agent without ``--once`` exits 0)."""

    COMPLETED = 0
    """The task ran and completed."""
    FAILED = 3
    """The task failed (its code, or a step before it), or spent its attempts."""
    STOPPED = 4
    """The task was stopped: a stop request, or its maximum run time."""
    REQUEUED = 5
    """The task went back to its queue: the agent was stopped, or the machine failed."""
    LOST = 6
    """The task is no longer this agent's (its lease passed on), or its end was not recorded."""
    NO_TASK = 7
    """No task was claimed: the agent was stopped or idled out (``--idle-exit``) first."""

    @classmethod
    def for_status(cls, status: TaskStatus) -> OnceExit:
        """The exit status for a task recorded with ``status``."""
        return _BY_STATUS.get(status, cls.LOST)


_BY_STATUS = {
    TaskStatus.COMPLETED: OnceExit.COMPLETED,
    TaskStatus.FAILED: OnceExit.FAILED,
    TaskStatus.STOPPED: OnceExit.STOPPED,
    TaskStatus.QUEUED: OnceExit.REQUEUED,
}


def describe_exits() -> str:
    """One line per status, for the command's help and the README."""
    return "; ".join(f"{code.value} {code.name.lower().replace('_', ' ')}" for code in OnceExit)
