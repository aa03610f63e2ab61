"""Entries of a task's status history that the triggers do not write.

The database's triggers (migration 0002) record every change of a task's status or
attempt. A preemption is not a status (the task is ``queued`` again at once), so the
store writes its ``preempted`` entry itself, in the transaction that requeues the task,
just before the trigger's ``queued`` entry.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from clearq.models import Fence, HistoryMark
from clearq.scheduler.schema import db_now, task_events

PREEMPTED_PREFIX = "preempted: "


def mark_preempted(conn: Connection, fence: Fence, reason: str) -> str:
    """Record that ``fence``'s attempt was preempted; the reason to requeue it with."""
    why = reason if reason.startswith(PREEMPTED_PREFIX) else PREEMPTED_PREFIX + reason
    conn.execute(
        task_events.insert().values(
            task_id=fence.task_id,
            at=db_now(),
            status=HistoryMark.PREEMPTED.value,
            attempt=fence.attempt,
            worker=fence.worker,
            reason=why,
        )
    )
    return why
