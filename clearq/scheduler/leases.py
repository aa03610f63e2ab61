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
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput, LeaseLost
from clearq.models import (
    RUN_END_STATUSES,
    Fence,
    Heartbeat,
    ReapReport,
    RunResult,
    Task,
    TaskStatus,
)
from clearq.scheduler.dependencies import skip_blocked
from clearq.scheduler.engine import Database
from clearq.scheduler.history import mark_preempted
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.notify import ENQUEUE_CHANNEL, STOP_CHANNEL, notify
from clearq.scheduler.queues import insert_entry
from clearq.scheduler.rows import fence_clause, fetch_task, hold, lock_status, lost
from clearq.scheduler.schema import db_now, tasks, workers

REAP_BATCH = 500


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
        .returning(tasks.c.id, tasks.c.has_children)
    )


_PG_FINISH_MANY = """
WITH v(id, attempt, worker, status, exit_code, reason) AS (VALUES {rows})
UPDATE tasks t
SET status = v.status, exit_code = v.exit_code, status_reason = v.reason,
    finished_at = now(), updated_at = now(), lease_expires_at = NULL
FROM v
WHERE t.id = v.id AND t.attempt = v.attempt AND t.status = 'running'
  AND t.worker IS NOT DISTINCT FROM v.worker
RETURNING t.id, t.has_children
"""


def _finish_values(
    fence: Fence, status: TaskStatus, exit_code: int | None, reason: str
) -> dict[str, object]:
    """Bind values for the ``_FINISH`` statements."""
    return {
        "fence_task_id": fence.task_id,
        "fence_attempt": fence.attempt,
        "fence_worker": fence.worker,
        "new_status": status.value,
        "new_exit_code": exit_code,
        "new_reason": reason,
    }


def _over_time(started: datetime | None, limit: float | None, now: datetime) -> bool:
    """True when a run that started at ``started`` is past ``limit`` seconds at ``now``."""
    return started is not None and limit is not None and now - started > timedelta(seconds=limit)


def _check_final(status: TaskStatus) -> None:
    if status not in RUN_END_STATUSES:
        raise InvalidInput(f"a run ends completed, failed or stopped, not {status}")


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
        overtime: set[uuid.UUID] = set()
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
                    .returning(
                        tasks.c.id,
                        tasks.c.stop_requested_at,
                        tasks.c.started_at,
                        tasks.c.max_run_seconds,
                        db_now().label("now"),
                    )
                ).all()
                held = {r.id: r.stop_requested_at is not None for r in rows}
                overtime = {
                    r.id for r in rows if _over_time(r.started_at, r.max_run_seconds, r.now)
                }
        return Heartbeat(
            held=frozenset(held),
            lost=frozenset(f.task_id for f in fences if f.task_id not in held),
            stop_requested=frozenset(t for t, stop in held.items() if stop),
            overtime=frozenset(overtime),
        )

    def finish(
        self,
        fence: Fence,
        status: TaskStatus,
        *,
        exit_code: int | None = None,
        reason: str = "",
    ) -> None:
        """Record how an attempt ended; LeaseLost when the attempt is no longer ``fence``'s."""
        _check_final(status)
        if status is TaskStatus.FAILED and self._retry(fence, exit_code, reason):
            return
        # One fenced UPDATE: on PostgreSQL no BEGIN/COMMIT round trips either (the
        # statement is its own transaction). Read the task back with tasks.get if needed.
        values = _finish_values(fence, status, exit_code, reason)
        with self._db.write_one() as conn:
            row = conn.execute(_FINISH[fence.worker is None], values).first()
            if row is None:
                raise lost(conn, fence)
            if row.has_children and status is TaskStatus.COMPLETED:
                # Wake idle agents now: a child of this task may have become claimable.
                notify(conn, self._db, ENQUEUE_CHANNEL, str(fence.task_id))
        if status is not TaskStatus.COMPLETED:
            self.skip_blocked()

    def skip_blocked(self) -> list[uuid.UUID]:
        """Mark queued tasks whose parent failed or was stopped ``skipped``; their ids."""
        with self._db.write() as conn:
            return skip_blocked(conn)

    def _retry(self, fence: Fence, exit_code: int | None, reason: str) -> bool:
        """Send a failed attempt back to its queue after its delay, if it has retries left.

        A retry is for the code failing (the attempt ran and exited badly): it spends one
        of ``max_retries``, not one of the ``max_attempts`` kept for lost workers.
        """
        with self._db.write() as conn:
            hold(conn, fence)
            row = conn.execute(
                sa.select(
                    tasks.c.queue_id,
                    tasks.c.max_retries,
                    tasks.c.retries,
                    tasks.c.retry_delay_seconds,
                    tasks.c.tries,
                    tasks.c.attempt,
                ).where(tasks.c.id == fence.task_id)
            ).one()
            if row.queue_id is None or row.retries >= row.max_retries:
                return False
            check_transition(fence.task_id, TaskStatus.RUNNING, TaskStatus.QUEUED)
            delay = (row.retry_delay_seconds or 0.0) * 2**row.retries
            conn.execute(
                tasks.update()
                .where(tasks.c.id == fence.task_id)
                .values(
                    status=TaskStatus.QUEUED.value,
                    status_reason=(
                        f"retry {row.retries + 1} of {row.max_retries} after attempt "
                        f"{row.attempt}: {reason}" + (f" (waits {delay:g} s)" if delay else "")
                    ),
                    exit_code=exit_code,
                    retries=row.retries + 1,
                    tries=row.tries - 1,
                    worker=None,
                    lease_expires_at=None,
                    stop_requested_at=None,
                    queued_at=db_now(),
                    updated_at=db_now(),
                )
            )
            insert_entry(
                conn,
                self._db,
                queue_id=row.queue_id,
                task_id=fence.task_id,
                priority=0,
                front=True,
                delay_seconds=delay,
            )
        return True

    def finish_many(self, results: Sequence[RunResult]) -> frozenset[uuid.UUID]:
        """Record several ended attempts; return the tasks whose fence lost.

        For a worker finishing many short tasks (services mode, a batch consumer): each
        result is fenced exactly like :meth:`finish`; the ones whose attempt is no longer
        the worker's change nothing and come back in the returned set. Completed and
        stopped attempts go in one statement; a failed one goes through :meth:`finish`,
        which decides whether it is retried.
        """
        for result in results:
            _check_final(result.status)
        lost: set[uuid.UUID] = set()
        batch = []
        for r in results:
            if r.status is not TaskStatus.FAILED:
                batch.append(r)
                continue
            try:
                self.finish(r.fence, r.status, exit_code=r.exit_code, reason=r.reason)
            except LeaseLost:
                lost.add(r.fence.task_id)
        if batch:
            lost |= self._finish_batch(batch)
        return frozenset(lost)

    def _finish_batch(self, results: Sequence[RunResult]) -> set[uuid.UUID]:
        with self._db.write_one() as conn:
            if self._db.is_postgres:
                rows = self._finish_pg(conn, results)
            else:
                rows = self._finish_each(conn, results)
            done = {task_id for task_id, _ in rows}
            woken = {task_id for task_id, has_children in rows if has_children}
            completed = {r.fence.task_id for r in results if r.status is TaskStatus.COMPLETED}
            if woken & completed:  # a child of one of them may be claimable now
                notify(conn, self._db, ENQUEUE_CHANNEL, str(min(woken & completed)))
        if any(r.status is not TaskStatus.COMPLETED for r in results):
            self.skip_blocked()
        return {r.fence.task_id for r in results if r.fence.task_id not in done}

    def _finish_pg(
        self, conn: Connection, results: Sequence[RunResult]
    ) -> list[tuple[uuid.UUID, bool]]:
        rows = ", ".join(
            f"(CAST(:id{i} AS uuid), :a{i}, CAST(:w{i} AS varchar), :s{i}, "
            f"CAST(:e{i} AS integer), :r{i})"
            for i in range(len(results))
        )
        params: dict[str, object] = {}
        for i, r in enumerate(results):
            f = r.fence
            params.update({f"id{i}": f.task_id, f"a{i}": f.attempt, f"w{i}": f.worker})
            params.update({f"s{i}": r.status.value, f"e{i}": r.exit_code, f"r{i}": r.reason})
        found = conn.execute(sa.text(_PG_FINISH_MANY.format(rows=rows)), params).all()
        return [(row.id, row.has_children) for row in found]

    def _finish_each(
        self, conn: Connection, results: Sequence[RunResult]
    ) -> list[tuple[uuid.UUID, bool]]:
        done = []
        for r in results:
            values = _finish_values(r.fence, r.status, r.exit_code, r.reason)
            row = conn.execute(_FINISH[r.fence.worker is None], values).first()
            if row is not None:
                done.append((r.fence.task_id, bool(row.has_children)))
        return done

    def requeue(
        self, fence: Fence, *, reason: str, infra: bool = False, preempted: bool = False
    ) -> Task:
        """Give a running attempt back: its task goes to the front of its queue.

        For an agent shutting down the attempt does not count against max_attempts; for
        a failure of the machine or the network (``infra``: an environment that could
        not be downloaded) it does, and the task fails once they are spent. A task with
        no queue (started by hand) cannot go back and fails instead. ``preempted``: the
        attempt was interrupted from outside; the history says so (a ``preempted`` entry
        before the ``queued`` one) and so does the reason.
        """
        with self._db.write() as conn:
            hold(conn, fence)
            if preempted:
                reason = mark_preempted(conn, fence, reason)
            self._back_to_queue_or_fail(conn, fence.task_id, reason=reason, count_try=infra)
            task = fetch_task(conn, fence.task_id)
        if task.status is TaskStatus.FAILED:
            self.skip_blocked()
        return task

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

        Safe to run from every agent at once: on PostgreSQL each expired task is locked
        by one reaper (SKIP LOCKED) before it changes, so a heartbeat cannot slip in
        between; on SQLite the reaper holds the write lock.
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
            skip_blocked(conn)  # whichever path ended a parent, its children learn it
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
