"""Leases, fenced writes, stop requests and the reaper.

A running task belongs to one (attempt, worker) pair, its fence. Heartbeats extend the
lease of the attempts a worker holds; every write about a running task names its fence
and changes nothing when the fence no longer matches (the attempt was reaped, stopped
or reset), raising LeaseLost so the writer stops. Execution is at least once; results
are exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput
from clearq.models import FINAL_STATUSES, Fence, Heartbeat, ReapReport, Task, TaskStatus
from clearq.scheduler.engine import Database
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.notify import STOP_CHANNEL, notify
from clearq.scheduler.queues import insert_entry
from clearq.scheduler.rows import fence_clause, fetch_task, hold, lock_status, lost, task_from_row
from clearq.scheduler.schema import db_now, queues, tasks, workers

REAP_BATCH = 500
# The name of the task's queue, for RETURNING rows that task_from_row reads.
_QUEUE_NAME = (
    sa.select(queues.c.name).where(queues.c.id == tasks.c.queue_id).scalar_subquery()
).label("queue_name")


def _finish_statement(local_run: bool) -> sa.Update:
    """The fenced UPDATE ending an attempt, returning the row; built once, values bound per call.

    Its WHERE is :func:`fence_clause` with the fence's values as bind parameters (a
    local run's fence has no worker: ``worker IS NULL``). Building the statement once
    spares SQLAlchemy constructing and cache-keying it on every finish.
    """
    worker = (
        tasks.c.worker.is_(None) if local_run else tasks.c.worker == sa.bindparam("fence_worker")
    )
    return (
        tasks.update()
        .where(
            tasks.c.id == sa.bindparam("fence_task_id"),
            tasks.c.attempt == sa.bindparam("fence_attempt"),
            tasks.c.status == TaskStatus.RUNNING.value,
            worker,
        )
        .values(
            status=sa.bindparam("new_status"),
            exit_code=sa.bindparam("new_exit_code"),
            status_reason=sa.bindparam("new_reason"),
            finished_at=db_now(),
            updated_at=db_now(),
            lease_expires_at=None,
        )
        .returning(*tasks.c, _QUEUE_NAME)
    )


# Indexed by "the fence is a local run's" (no worker).
_FINISH = (_finish_statement(local_run=False), _finish_statement(local_run=True))


class Leases:
    """Heartbeats, completions, stop requests and the reaper."""

    def __init__(self, db: Database, *, lease_seconds: float, worker_gone_seconds: float) -> None:
        self._db = db
        self.lease_seconds = lease_seconds
        self._gone_seconds = worker_gone_seconds

    def heartbeat(self, worker: str | None, fences: Sequence[Fence] = ()) -> Heartbeat:
        """Mark ``worker`` (and any sub-workers in ``fences``) seen, extend their leases.

        Returns which attempts are still held, which are lost (stop them now), and
        which of the held ones someone asked to stop.
        """
        held: dict[uuid.UUID, bool] = {}
        with self._db.write() as conn:
            names = {f.worker for f in fences if f.worker is not None}
            if worker is not None:
                names.add(worker)
            if names:
                conn.execute(
                    workers.update()
                    .where(workers.c.id.in_(sorted(names)))
                    .values(last_seen=db_now(), state="active")
                )
            if fences:
                rows = conn.execute(
                    tasks.update()
                    .where(sa.or_(*(fence_clause(f) for f in fences)))
                    .values(lease_expires_at=db_now(self.lease_seconds))
                    .returning(tasks.c.id, tasks.c.stop_requested_at)
                ).all()
                held = {r.id: r.stop_requested_at is not None for r in rows}
        return Heartbeat(
            held=frozenset(held),
            lost=frozenset(f.task_id for f in fences if f.task_id not in held),
            stop_requested=frozenset(t for t, stop in held.items() if stop),
        )

    def finish(
        self,
        fence: Fence,
        status: TaskStatus,
        *,
        exit_code: int | None = None,
        reason: str = "",
    ) -> Task:
        """Record how an attempt ended; LeaseLost when the attempt is no longer ``fence``'s."""
        if status not in FINAL_STATUSES:
            raise InvalidInput(f"a run ends completed, failed or stopped, not {status}")
        # One fenced UPDATE that returns the finished row: no read-back, and on PostgreSQL
        # no BEGIN/COMMIT round trips (the statement is its own transaction).
        values = {
            "fence_task_id": fence.task_id,
            "fence_attempt": fence.attempt,
            "fence_worker": fence.worker,
            "new_status": status.value,
            "new_exit_code": exit_code,
            "new_reason": reason,
        }
        with self._db.write_one() as conn:
            row = conn.execute(_FINISH[fence.worker is None], values).first()
            if row is None:
                raise lost(conn, fence)
            return task_from_row(row)

    def requeue(self, fence: Fence, *, reason: str) -> Task:
        """Give a running attempt back: its task goes to the front of its queue.

        For an agent shutting down: the attempt does not count against max_attempts.
        A task with no queue (started by hand) cannot go back and fails instead.
        """
        with self._db.write() as conn:
            hold(conn, fence)
            self._back_to_queue_or_fail(conn, fence.task_id, reason=reason, count_try=False)
            return fetch_task(conn, fence.task_id)

    def request_stop(self, task_id: uuid.UUID) -> Task:
        """Ask the worker running a task to stop it (it records ``stopped``)."""
        with self._db.write() as conn:
            status = lock_status(conn, task_id)
            if status is not TaskStatus.RUNNING:
                hint = "dequeue it instead" if status is TaskStatus.QUEUED else "nothing to stop"
                raise InvalidInput(f"task {task_id} is {status}, not running: {hint}")
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id, tasks.c.stop_requested_at.is_(None))
                .values(stop_requested_at=db_now(), updated_at=db_now())
            )
            notify(conn, self._db, STOP_CHANNEL, str(task_id))
            return fetch_task(conn, task_id)

    def reap(self, *, batch: int = REAP_BATCH) -> ReapReport:
        """Requeue or fail running tasks whose lease expired; mark silent workers gone.

        Safe to run from every agent at once: on PostgreSQL each expired task is taken
        by one reaper (SKIP LOCKED), and every change is conditioned on the expiry.
        """
        requeued: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        with self._db.write() as conn:
            expired = conn.execute(
                sa.select(tasks.c.id, tasks.c.worker)
                .where(
                    tasks.c.status == TaskStatus.RUNNING.value,
                    tasks.c.lease_expires_at < db_now(),
                )
                .order_by(tasks.c.lease_expires_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            for row in expired:
                who = f"worker {row.worker}" if row.worker else "the process running it"
                went_back = self._back_to_queue_or_fail(
                    conn, row.id, reason=f"{who} stopped renewing its lease", count_try=True
                )
                (requeued if went_back else failed).append(row.id)
            gone = conn.execute(
                workers.update()
                .where(
                    workers.c.state == "active",
                    workers.c.last_seen < db_now(-self._gone_seconds),
                )
                .values(state="gone")
                .returning(workers.c.id)
            ).scalars()
            workers_gone = tuple(sorted(gone))
        return ReapReport(requeued=tuple(requeued), failed=tuple(failed), workers_gone=workers_gone)

    def _back_to_queue_or_fail(
        self, conn: Connection, task_id: uuid.UUID, *, reason: str, count_try: bool
    ) -> bool:
        row = conn.execute(
            sa.select(tasks.c.queue_id, tasks.c.tries, tasks.c.max_attempts, tasks.c.attempt).where(
                tasks.c.id == task_id
            )
        ).one()
        tries = row.tries if count_try else row.tries - 1
        if row.queue_id is not None and tries < row.max_attempts:
            check_transition(task_id, TaskStatus.RUNNING, TaskStatus.QUEUED)
            conn.execute(
                tasks.update()
                .where(tasks.c.id == task_id)
                .values(
                    status=TaskStatus.QUEUED.value,
                    status_reason=f"requeued after attempt {row.attempt}: {reason}",
                    tries=tries,
                    worker=None,
                    lease_expires_at=None,
                    stop_requested_at=None,
                    queued_at=db_now(),
                    updated_at=db_now(),
                )
            )
            insert_entry(
                conn, self._db, queue_id=row.queue_id, task_id=task_id, priority=0, front=True
            )
            return True
        check_transition(task_id, TaskStatus.RUNNING, TaskStatus.FAILED)
        if row.queue_id is None:
            why = f"worker lost: {reason}, and the task has no queue to go back to"
        else:
            why = f"worker lost: {reason}; all {row.max_attempts} attempts are spent"
        conn.execute(
            tasks.update()
            .where(tasks.c.id == task_id)
            .values(
                status=TaskStatus.FAILED.value,
                status_reason=why,
                lease_expires_at=None,
                finished_at=db_now(),
                updated_at=db_now(),
            )
        )
        return False
