"""Gangs: a task of N ranks on N agents, started together or not at all.

A task with ``nodes`` > 1 waits in its queue with its entry held by the gang former
(``held_by = 'gang'``), so the agents' ordinary claim passes it over. An agent with a
free slot *joins* it instead: in one transaction it takes the lowest free rank in
``gang_members`` for the task's next attempt, with a lease of its own and, for rank 0,
the address and port the others will reach. The agent that fills the last rank starts
the task for all of them in the same transaction: the entry goes, the task turns
``running`` with the next attempt and a lease, its worker the gang's shared name (the
fence every rank's writes carry). Until then each waiting agent renews its member lease;
one that gives up (``CLEARQ_GANG_WAIT_SECONDS``) or dies leaves a rank the next joiner
takes, so a gang that cannot fill never holds agents past that bound.

Quotas hold gangs as they hold plain tasks (``clearq.scheduler.quotas``): every rank
counts as one running task with its queue's GPUs, agents do not join a gang whose ranks
do not all fit its user's and project's quotas now, and the join that would start it
checks again under the claims' quota lock, in its transaction; refused, it leaves the
gang forming until room frees. Fair share does not order gangs (they go by priority and
age).

While the gang runs each rank's agent renews its member lease too; any rank that finds
another's lease passed puts the task back (its agent was lost). A rank that fails, is
stopped or is preempted ends the task as such through the ordinary fenced finish (the
other ranks' writes then find the fence gone and their agents stop them); a rank that
completes marks itself, and the last one completes the task.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import StoreError
from clearq.models import Claim, Fence, GangJoin, GangMembership, GangRank, TaskStatus
from clearq.scheduler.claim import BLOCKED
from clearq.scheduler.engine import Database
from clearq.scheduler.leases import Leases
from clearq.scheduler.lifecycle import check_transition
from clearq.scheduler.quotas import GANG_FITS, gang_fits, hold_quotas
from clearq.scheduler.rows import hold, lock_status
from clearq.scheduler.schema import db_now, gang_members, queue_entries, queues, tasks
from clearq.scheduler.statements import GANG_HOLD

WAITING, RUNNING, COMPLETED = "waiting", "running", "completed"


def gang_worker(task_id: uuid.UUID, attempt: int) -> str:
    """The fence worker every rank of a gang's attempt shares."""
    return f"gang:{task_id}:{attempt}"


Membership = GangMembership
Joined = GangJoin


class Gangs:
    """Join, wait for, run and end gang tasks."""

    def __init__(self, db: Database, *, leases: Leases, lease_seconds: float) -> None:
        self._db = db
        self._leases = leases
        self._lease = lease_seconds

    def join(
        self,
        worker: str,
        queues_ranked: Sequence[str],
        *,
        address: str,
        port: int,
        skip: Sequence[uuid.UUID] = (),
    ) -> Joined | None:
        """Take a rank in the first gang of ``queues_ranked`` that has one free; None: none.

        ``skip``: gangs not to join now (this agent just gave a rank of them back).
        """
        with self._db.write() as conn:
            quotas = hold_quotas(conn, postgres=self._db.is_postgres)
            for entry in self._candidates(conn, queues_ranked, skip, quotas=quotas):
                joined = self._join(conn, entry, worker, address, port, quotas=quotas)
                if joined is not None:
                    return joined
        return None

    def join_task(
        self, worker: str, task_id: uuid.UUID, *, address: str, port: int
    ) -> Joined | None:
        """Take a rank of one named gang task, whoever holds its entry (``clearq task run``
        in the ranks of one Slurm allocation); None when it has no free rank or no entry."""
        query = (
            sa.select(queue_entries.c.id, queue_entries.c.task_id, queues.c.name.label("queue"))
            .join(queues, queues.c.id == queue_entries.c.queue_id)
            .where(queue_entries.c.task_id == task_id)
            .with_for_update(of=queue_entries)
        )
        with self._db.write() as conn:
            quotas = hold_quotas(conn, postgres=self._db.is_postgres)
            entry = conn.execute(query).first()
            if entry is None:
                return None
            return self._join(conn, entry, worker, address, port, quotas=quotas)

    def _candidates(
        self, conn: Connection, names: Sequence[str], skip: Sequence[uuid.UUID], *, quotas: bool
    ) -> Sequence[Any]:
        if not names:
            return []
        rank = sa.case({name: i for i, name in enumerate(names)}, value=queues.c.name)
        query = (
            sa.select(queue_entries.c.id, queue_entries.c.task_id, queues.c.name.label("queue"))
            .join(queues, queues.c.id == queue_entries.c.queue_id)
            .where(
                queues.c.name.in_(names),
                queue_entries.c.held_by == GANG_HOLD,
                queue_entries.c.task_id.not_in(list(skip)),
                sa.or_(
                    queue_entries.c.not_before.is_(None), queue_entries.c.not_before <= db_now()
                ),
                ~BLOCKED,
                sa.text(GANG_FITS) if quotas else sa.true(),
            )
            .order_by(rank, queue_entries.c.priority.desc(), queue_entries.c.id)
            .limit(20)
            .with_for_update(of=queue_entries)
        )
        return conn.execute(query).all()

    def _join(
        self,
        conn: Connection,
        entry: Any,
        worker: str,
        address: str,
        port: int,
        *,
        quotas: bool,
    ) -> Joined | None:
        task_id: uuid.UUID = entry.task_id
        queue: str = entry.queue
        task = conn.execute(
            sa.select(tasks.c.nodes, tasks.c.attempt).where(tasks.c.id == task_id)
        ).one()
        attempt = task.attempt + 1
        members = gang_members.c
        conn.execute(  # ranks of an earlier attempt, or whose agent gave up or died
            gang_members.delete().where(
                members.task_id == task_id,
                sa.or_(members.attempt != attempt, members.lease_expires_at < db_now()),
            )
        )
        taken = conn.execute(
            sa.select(members.rank, members.worker).where(members.task_id == task_id)
        ).all()
        if any(r.worker == worker for r in taken):
            return None  # this worker already holds a rank of it
        free = sorted(set(range(task.nodes)) - {r.rank for r in taken})
        if not free:
            return None
        rank = free[0]
        starts = len(taken) + 1 == task.nodes
        if starts and quotas and not gang_fits(conn, task_id):
            return None  # its ranks would pass a quota: it waits until they fit
        conn.execute(
            gang_members.insert().values(
                task_id=task_id,
                rank=rank,
                attempt=attempt,
                worker=worker,
                address=address,
                port=port,
                state=WAITING,
                lease_expires_at=db_now(self._lease),
            )
        )
        membership = Membership(
            task_id=task_id, attempt=attempt, rank=rank, worker=worker, queue=queue
        )
        if len(taken) + 1 < task.nodes:
            return Joined(membership=membership)
        return Joined(
            membership=membership, claim=self._start(conn, membership, entry.id, task.nodes)
        )

    def _start(self, conn: Connection, m: Membership, entry_id: int, size: int) -> Claim:
        check_transition(m.task_id, TaskStatus.QUEUED, TaskStatus.RUNNING)
        conn.execute(queue_entries.delete().where(queue_entries.c.id == entry_id))
        conn.execute(
            tasks.update()
            .where(tasks.c.id == m.task_id)
            .values(
                status=TaskStatus.RUNNING.value,
                worker=gang_worker(m.task_id, m.attempt),
                attempt=m.attempt,
                tries=tasks.c.tries + 1,
                started_at=db_now(),
                updated_at=db_now(),
                finished_at=None,
                exit_code=None,
                stop_requested_at=None,
                status_reason=f"running on {size} ranks",
                lease_expires_at=db_now(self._lease),
            )
        )
        conn.execute(
            gang_members.update().where(gang_members.c.task_id == m.task_id).values(state=RUNNING)
        )
        return self._claim(conn, m, size)

    def _claim(self, conn: Connection, m: Membership, size: int) -> Claim:
        master = conn.execute(
            sa.select(gang_members.c.address, gang_members.c.port).where(
                gang_members.c.task_id == m.task_id, gang_members.c.rank == 0
            )
        ).one()
        rank = GangRank(rank=m.rank, size=size, master_addr=master.address, master_port=master.port)
        return Claim(
            task_id=m.task_id,
            attempt=m.attempt,
            worker=gang_worker(m.task_id, m.attempt),
            queue=m.queue,
            gang=rank,
        )

    def wait(self, m: Membership) -> Claim | None:
        """Renew a waiting rank; the gang's claim once it started, else None.

        Raises :class:`GangLeft` when the rank is gone (its lease passed and another
        joiner cleared it): the agent holds nothing of that gang any more.
        """
        with self._db.write() as conn:
            renewed = conn.execute(
                gang_members.update()
                .where(*self._mine(m))
                .values(lease_expires_at=db_now(self._lease))
                .returning(gang_members.c.state)
            ).first()
            if renewed is None:
                raise GangLeft(f"rank {m.rank} of task {m.task_id} is no longer this agent's")
            if renewed.state != RUNNING:
                return None
            size = conn.execute(
                sa.select(tasks.c.nodes).where(tasks.c.id == m.task_id)
            ).scalar_one()
            return self._claim(conn, m, size)

    def leave(self, m: Membership) -> bool:
        """Give a waiting rank back; False when the gang started meanwhile (run it)."""
        with self._db.write() as conn:
            gone = conn.execute(
                gang_members.delete()
                .where(*self._mine(m), gang_members.c.state == WAITING)
                .returning(gang_members.c.rank)
            ).first()
        return gone is not None

    def beat(self, fence: Fence, rank: int) -> str | None:
        """Renew a running rank's lease; when another rank's lease passed (its agent was
        lost), put the task back in its queue and say why. LeaseLost: the attempt ended."""
        members = gang_members.c
        with self._db.write() as conn:
            conn.execute(
                gang_members.update()
                .where(
                    members.task_id == fence.task_id,
                    members.attempt == fence.attempt,
                    members.rank == rank,
                    members.state == RUNNING,
                )
                .values(lease_expires_at=db_now(self._lease))
            )
            lost = conn.execute(
                sa.select(members.rank, members.worker).where(
                    members.task_id == fence.task_id,
                    members.attempt == fence.attempt,
                    members.state == RUNNING,
                    members.lease_expires_at < db_now(),
                )
            ).first()
        if lost is None:
            return None
        why = f"rank {lost.rank} of the gang ({lost.worker}) stopped renewing its lease"
        self._leases.requeue(fence, reason=why, infra=True)
        return why

    def complete_rank(self, fence: Fence, rank: int) -> bool:
        """Mark a rank completed; True when it was the last (complete the task now).

        LeaseLost when the attempt is no longer ``fence``'s (another rank ended it).
        """
        members = gang_members.c
        with self._db.write() as conn:
            lock_status(conn, fence.task_id)  # the last two ranks to end take turns here
            hold(conn, fence)
            conn.execute(
                gang_members.update()
                .where(
                    members.task_id == fence.task_id,
                    members.attempt == fence.attempt,
                    members.rank == rank,
                )
                .values(state=COMPLETED)
            )
            left = conn.execute(
                sa.select(sa.func.count()).where(
                    members.task_id == fence.task_id,
                    members.attempt == fence.attempt,
                    members.state != COMPLETED,
                )
            ).scalar_one()
        return int(left) == 0

    def members(self, task_id: uuid.UUID) -> builtins.list[tuple[int, str, str]]:
        """(rank, worker, state) of a gang's current members, by rank."""
        members = gang_members.c
        with self._db.read() as conn:
            rows = conn.execute(
                sa.select(members.rank, members.worker, members.state)
                .where(members.task_id == task_id)
                .order_by(members.rank)
            ).all()
        return [(r.rank, r.worker, r.state) for r in rows]

    @staticmethod
    def _mine(m: Membership) -> tuple[sa.ColumnElement[bool], ...]:
        members = gang_members.c
        return (
            members.task_id == m.task_id,
            members.rank == m.rank,
            members.worker == m.worker,
            members.attempt == m.attempt,
        )


class GangLeft(StoreError):
    """A waiting rank is no longer this agent's."""
