"""Leases, fenced writes, stop requests and the reaper.

A running task belongs to one (attempt, worker) pair, its fence. Heartbeats extend the
lease of the attempts a worker holds; every write about a running task names its fence
and changes nothing when the fence no longer matches (the attempt was reaped, stopped
or reset), raising LeaseLost so the writer stops. Execution is at least once; results
are exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput
from clearq.models import Fence, Heartbeat, ReapReport, RunResult, Task, TaskStatus
from clearq.scheduler import fenced
from clearq.scheduler.engine import Database
from clearq.scheduler.expiry import BeatWatch, Running
from clearq.scheduler.fenced import Ending
from clearq.scheduler.history import mark_preempted
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.notify import STOP_CHANNEL, notify
from clearq.scheduler.rows import fetch_task, hold, lock_status
from clearq.scheduler.schema import db_now, tasks, workers
from clearq.scheduler.sqla_exec import SqlaConnector, on
from clearq.scheduler.workers import mark_seen, worker_names

REAP_BATCH = 500
STOP_REASON = "stop requested"
"""What a stopped task says when someone asked for it (a reason given follows it)."""


def _ending(fence: Fence, status: TaskStatus, exit_code: int | None, reason: str) -> Ending:
    return Ending(fence, status, exit_code, reason)  # in field order: a third fewer instructions


class Leases:
    """Heartbeats, completions, stop requests and the reaper."""

    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float,
        worker_gone_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self.lease_seconds = lease_seconds
        self._gone_seconds = worker_gone_seconds
        self._connector = SqlaConnector(db)
        self._watch = BeatWatch(lease_seconds, clock=clock)

    def heartbeat(
        self, worker: str | Sequence[str] | None, fences: Sequence[Fence] = ()
    ) -> Heartbeat:
        """Mark ``worker`` (one id or several: an agent's sub-workers, and any in
        ``fences``) seen, extend their leases.

        Returns which attempts are still held, which are lost (stop them now), and
        which of the held ones someone asked to stop.
        """
        held: dict[uuid.UUID, bool] = {}
        overtime: set[uuid.UUID] = set()
        reasons: dict[uuid.UUID, str] = {}
        with self._db.write() as conn:
            names = {f.worker for f in fences if f.worker is not None}
            mark_seen(conn, names.union(worker_names(worker)))
            x = on(conn)
            for f in fences:
                renewal = fenced.renew(x, f, self.lease_seconds)
                if renewal.held:
                    held[f.task_id] = renewal.stop_requested
                if renewal.stop_requested:
                    reasons[f.task_id] = renewal.stop_reason
                if renewal.overtime:
                    overtime.add(f.task_id)
        return Heartbeat(
            held=frozenset(held),
            lost=frozenset(f.task_id for f in fences if f.task_id not in held),
            stop_requested=frozenset(t for t, stop in held.items() if stop),
            overtime=frozenset(overtime),
            stop_reasons=reasons,
        )

    def finish(
        self,
        fence: Fence,
        status: TaskStatus,
        *,
        exit_code: int | None = None,
        reason: str = "",
    ) -> None:
        """Record how an attempt ended, with what follows from it (``fenced.finish``).

        Failed with retries left: back to its queue. Completed with children: idle agents
        are woken. Failed or stopped: the children waiting on it are skipped. LeaseLost
        when the attempt is no longer ``fence``'s.
        """
        fenced.finish(self._connector, _ending(fence, status, exit_code, reason))

    def skip_blocked(self) -> list[uuid.UUID]:
        """Mark queued tasks whose parent failed or was stopped ``skipped``; their ids."""
        with self._db.write() as conn:
            return fenced.skip_blocked(on(conn))

    def finish_many(self, results: Sequence[RunResult]) -> frozenset[uuid.UUID]:
        """Record several ended attempts; return the tasks whose fence lost.

        For a worker finishing many short tasks (services mode, a batch consumer): each
        result is fenced and followed up exactly like :meth:`finish`; the ones whose
        attempt is no longer the worker's change nothing and come back in the returned
        set. Completed and stopped attempts go in one statement; a failed one goes
        through :meth:`finish`, which decides whether it is retried.
        """
        endings = [_ending(r.fence, r.status, r.exit_code, r.reason) for r in results]
        return fenced.finish_many(self._connector, endings)

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

    def request_stop(self, task_id: uuid.UUID, *, reason: str = "", force: bool = False) -> Task:
        """Ask the worker running a task to stop it (it records ``stopped``).

        ``reason`` is what the stopped task will say (``stop requested: <reason>``): the
        worker reads it with its next heartbeat. ``force`` ends the running attempt now,
        as ``stopped``, without waiting for its worker, whose writes are then refused
        (it stops the process when its heartbeat finds the attempt lost).
        """
        why = f"{STOP_REASON}: {reason}" if reason else STOP_REASON
        with self._db.write() as conn:
            status = lock_status(conn, task_id)
            if status is not TaskStatus.RUNNING:
                hint = "dequeue it instead" if status is TaskStatus.QUEUED else "nothing to stop"
                raise InvalidInput(f"task {task_id} is {status}, not running: {hint}")
            task = fetch_task(conn, task_id)
            if not force:
                conn.execute(
                    tasks.update()
                    .where(tasks.c.id == task_id)
                    .values(
                        stop_requested_at=sa.func.coalesce(tasks.c.stop_requested_at, db_now()),
                        status_reason=why,
                        updated_at=db_now(),
                    )
                )
                notify(conn, self._db, STOP_CHANNEL, str(task_id))
                return fetch_task(conn, task_id)
        fence = Fence(task_id=task_id, attempt=task.attempt, worker=task.worker)
        self.finish(fence, TaskStatus.STOPPED, reason=f"{why} (forced)")
        with self._db.read() as conn:
            return fetch_task(conn, task_id)

    def reap(self, *, batch: int = REAP_BATCH) -> ReapReport:
        """Requeue or fail running tasks whose lease expired; mark silent workers gone.

        Safe to run from every agent at once: on PostgreSQL each expired task is locked
        by one reaper (SKIP LOCKED) before it changes, so a heartbeat cannot slip in
        between; on SQLite the reaper holds the write lock. On SQLite a lease is dead
        when its renewals stood still for a lease length of this process's monotonic
        clock (``clearq.scheduler.expiry``): call this regularly, as agents do.
        """
        requeued: list[uuid.UUID] = []
        failed: list[uuid.UUID] = []
        with self._db.write() as conn:
            for task_id, worker in self._expired(conn, batch):
                who = f"worker {worker}" if worker else "the process running it"
                went_back = self._back_to_queue_or_fail(
                    conn, task_id, reason=f"{who} stopped renewing its lease", count_try=True
                )
                (requeued if went_back else failed).append(task_id)
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
            fenced.skip_blocked(on(conn))  # whichever path ended a parent, its children learn
            active = conn.execute(
                sa.select(sa.func.count()).select_from(workers).where(workers.c.state == "active")
            ).scalar_one()
        return ReapReport(
            requeued=tuple(requeued),
            failed=tuple(failed),
            workers_gone=workers_gone,
            active_workers=int(active),
        )

    def _expired(self, conn: Connection, batch: int) -> list[tuple[uuid.UUID, str | None]]:
        """(task, worker) of each running task whose lease is dead: by the server's clock
        on PostgreSQL, by its renewals standing still on SQLite."""
        if self._db.is_postgres:
            found = conn.execute(
                sa.select(tasks.c.id, tasks.c.worker)
                .where(
                    tasks.c.status == TaskStatus.RUNNING.value,
                    tasks.c.lease_expires_at < db_now(),
                )
                .order_by(tasks.c.lease_expires_at)
                .limit(batch)
                .with_for_update(skip_locked=True)
            ).all()
            return [(r.id, r.worker) for r in found]
        rows = conn.execute(
            sa.select(tasks.c.id, tasks.c.worker, tasks.c.attempt, tasks.c.beats).where(
                tasks.c.status == TaskStatus.RUNNING.value
            )
        ).all()
        dead = set(self._watch.dead(Running(r.id, r.attempt, r.worker, r.beats) for r in rows))
        return [(r.id, r.worker) for r in rows if r.id in dead][:batch]

    def reap_by_hand(self) -> ReapReport:
        """One reaping for a process that has not been watching (``clearq reap``).

        On SQLite a lease is dead only once its renewals stood still for a lease length
        of this process's clock (``clearq.scheduler.expiry``): this watches for that
        long, then reaps. On PostgreSQL it is one :meth:`reap`.
        """
        if self._db.is_postgres:
            return self.reap()
        first = self.reap()
        time.sleep(self.lease_seconds)
        then = self.reap()
        return ReapReport(
            requeued=first.requeued + then.requeued,
            failed=first.failed + then.failed,
            workers_gone=first.workers_gone + then.workers_gone,
            active_workers=then.active_workers,
        )

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
            fenced.insert_entry(
                on(conn), queue_id=row.queue_id, task_id=task_id, priority=0, front=True
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
