"""Holds: queue entries an outside launcher has taken out of the agents' reach.

An outside launcher (``clearq slurm``) picks the next entry of a queue in claim order and
holds it (``held_by = 'slurm:<job id>'``) while its job waits in the launcher's own queue.
The task stays ``queued`` and keeps its place; the agents' claim passes the entry over;
``clearq task run ID`` in the job claims it like any other (the claim takes held entries
too). Holds are only hints about a job: the launcher reconciles them with its scheduler's
view on every pass (releases the hold of a job that is gone, re-holds an entry whose job
is back), so a launcher that dies leaves nothing that cannot be repaired by the next.
"""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from clearq.models import Fence, TaskStatus
from clearq.scheduler.claim import BLOCKED
from clearq.scheduler.engine import Database
from clearq.scheduler.schema import db_now, gang_members, queue_entries, queues, tasks
from clearq.scheduler.statements import GANG_HOLD


@dataclass(frozen=True)
class HeldEntry:
    """A queued task whose entry an outside launcher holds."""

    task_id: uuid.UUID
    holder: str
    queue: str


@dataclass(frozen=True)
class RunningUnder:
    """A running task whose worker name matches a launcher's pattern."""

    fence: Fence
    stop_requested: bool
    runner: str
    """The matching worker name: the task's own, or for a gang one of its ranks'."""


# A gang's entry given back is the gang former's again; any other is free.
_FREE = (
    sa.select(sa.case((tasks.c.nodes > 1, GANG_HOLD), else_=sa.null()))
    .where(tasks.c.id == queue_entries.c.task_id)
    .scalar_subquery()
)
_JOINED = (
    sa.select(gang_members.c.task_id)
    .where(
        gang_members.c.task_id == queue_entries.c.task_id,
        gang_members.c.lease_expires_at > db_now(),
    )
    .exists()
)


class Holds:
    """Hold, re-hold and release queue entries for outside launchers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def hold_next(self, queue: str, holder: str) -> uuid.UUID | None:
        """Hold the next entry the claim would hand out from ``queue``; its task, or None."""
        pick = (
            sa.select(queue_entries.c.id)
            .join(queues, queues.c.id == queue_entries.c.queue_id)
            .where(
                queues.c.name == queue,
                # Free, or a gang that no agent has begun to join.
                sa.or_(
                    queue_entries.c.held_by.is_(None),
                    sa.and_(queue_entries.c.held_by == GANG_HOLD, ~_JOINED),
                ),
                sa.or_(
                    queue_entries.c.not_before.is_(None), queue_entries.c.not_before <= db_now()
                ),
                ~BLOCKED,
            )
            .order_by(queue_entries.c.priority.desc(), queue_entries.c.id)
            .limit(1)
            .with_for_update(of=queue_entries, skip_locked=True)
        )
        with self._db.write() as conn:
            entry = conn.execute(pick).scalar()
            if entry is None:
                return None
            task_id: uuid.UUID = conn.execute(
                queue_entries.update()
                .where(queue_entries.c.id == entry)
                .values(held_by=holder)
                .returning(queue_entries.c.task_id)
            ).scalar_one()
        return task_id

    def rehold(self, task_id: uuid.UUID, holder: str, *, was: str | None) -> bool:
        """Move a hold from ``was`` (None: an entry nobody holds) to ``holder``."""
        held = queue_entries.c.held_by
        with self._db.write() as conn:
            found = conn.execute(
                queue_entries.update()
                .where(
                    queue_entries.c.task_id == task_id,
                    held.is_(None) if was is None else held == was,
                )
                .values(held_by=holder)
                .returning(queue_entries.c.id)
            ).first()
        return found is not None

    def release(self, task_id: uuid.UUID, holder: str) -> bool:
        """Give a held entry back to the agents' claim; False when ``holder`` held nothing."""
        with self._db.write() as conn:
            found = conn.execute(
                queue_entries.update()
                .where(queue_entries.c.task_id == task_id, queue_entries.c.held_by == holder)
                .values(held_by=_FREE)
                .returning(queue_entries.c.id)
            ).first()
        return found is not None

    def held(self, prefix: str) -> builtins.list[HeldEntry]:
        """Every entry held by a holder whose name starts with ``prefix``."""
        query = (
            sa.select(queue_entries.c.task_id, queue_entries.c.held_by, queues.c.name)
            .join(queues, queues.c.id == queue_entries.c.queue_id)
            .where(queue_entries.c.held_by.startswith(prefix, autoescape=True))
        )
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [HeldEntry(r.task_id, r.held_by, r.name) for r in rows]

    def note(self, task_id: uuid.UUID, holder: str, reason: str) -> None:
        """Show where a held task stands (``pending in Slurm job 12: Resources``)."""
        still_held = (
            sa.select(queue_entries.c.id)
            .where(queue_entries.c.task_id == task_id, queue_entries.c.held_by == holder)
            .exists()
        )
        with self._db.write() as conn:
            conn.execute(
                tasks.update()
                .where(
                    tasks.c.id == task_id,
                    tasks.c.status == TaskStatus.QUEUED.value,
                    tasks.c.status_reason != reason,
                    still_held,
                )
                .values(status_reason=reason)
            )

    def running_under(self, worker_suffix: str) -> builtins.list[RunningUnder]:
        """Running tasks whose worker name, or a running rank's, contains ``worker_suffix``."""
        t = tasks.c
        own = sa.select(
            t.id, t.attempt, t.worker, t.stop_requested_at, t.worker.label("runner")
        ).where(
            t.status == TaskStatus.RUNNING.value,
            t.worker.contains(worker_suffix, autoescape=True),
        )
        ranks = (
            sa.select(t.id, t.attempt, t.worker, t.stop_requested_at, gang_members.c.worker)
            .join(gang_members, gang_members.c.task_id == t.id)
            .where(
                t.status == TaskStatus.RUNNING.value,
                gang_members.c.attempt == t.attempt,
                gang_members.c.state != "completed",
                gang_members.c.worker.contains(worker_suffix, autoescape=True),
            )
        )
        with self._db.read() as conn:
            rows = [*conn.execute(own).all(), *conn.execute(ranks).all()]
        return [
            RunningUnder(
                Fence(task_id=r[0], attempt=r[1], worker=r[2]), r[3] is not None, runner=r[4]
            )
            for r in rows
        ]
