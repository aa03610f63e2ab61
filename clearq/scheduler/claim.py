"""The claim: hand a worker the next eligible tasks across its ordered queues.

One reviewed statement per dialect, one transaction: pick entries in claim order,
delete them, and turn their tasks ``running`` with the worker, the next attempt and a
lease deadline on the database's clock.

Claim order within a queue is (priority desc, entry id). Across queues the caller
gives a ranked list; ``interleave=False`` is strict priority (rank first), ``True``
takes the first entry of each queue in rank order before the second of any (round
robin within one batch). :class:`Claimer` keeps a worker's rotation between claims.

An entry is eligible when no outside launcher holds it (``held_by``: a task waiting in
Slurm's queue), its delay (a retry's ``not_before``) is over and every task it
depends on has completed (or ended otherwise on an edge that continues on failure):
both are conditions of the same statement, not of a polling controller. The database
keeps the dependencies' part on the entry itself (``queue_entries.waiting``, set by
triggers when the entry, an edge or a parent's status changes, migration 0020), and the
claim reads the ready entries' own claim-order index (``ix_queue_entries_ready``), so
its plan is the same whatever the planner's statistics say of the queue. A queue with a
cap (``max_running``) hands out only as many tasks as it has room for. On PostgreSQL the
claim of a capped queue holds that queue's advisory lock for its transaction and counts
its running tasks in a statement after taking it, so concurrent claimers never overrun
the cap; uncapped queues keep the single lock-free statement. Quotas per user and per
project (``clearq.scheduler.quotas``) are held the same way, under one lock of their own,
and a claim of several tasks under them claims one at a time in its transaction. A
fair-share queue (``clearq.scheduler.fair``) is claimed by a statement of its own
(``clearq.scheduler.fair_claim``), one task at a time, in rank order with the others.

A schedule's waiting clone (an entry with a ``schedule_id``) is claimed like any entry,
and the same transaction fires its schedule (``schedules.fire``: the next waiting clone).
The lock-free statement is its own transaction, so it passes such entries over; a
Claimer that serves a queue with schedules claims from it in a transaction, as it does
from a capped one.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.errors import InvalidInput
from clearq.models import Claim, ClaimOrder, TaskStatus
from clearq.scheduler import fair_claim
from clearq.scheduler.engine import Database
from clearq.scheduler.fenced import Execution
from clearq.scheduler.quotas import (
    ANY_QUOTA,
    NO_QUOTAS,
    PG_OVER_QUOTA,
    PG_QUOTA_LOCK,
    PG_QUOTA_USE,
    QUOTA_USE,
    over_quota,
)
from clearq.scheduler.schedules import fire
from clearq.scheduler.schema import (
    db_now,
    queue_entries,
    queues,
    schedules,
    task_dependencies,
    tasks,
)
from clearq.scheduler.sqla_exec import on, statement
from clearq.scheduler.statements import GANG_HOLD
from clearq.scheduler.take import PG_TAKE_AND_RUN, SQLITE_RUN, driver_sql

CAPS_REFRESH_SECONDS = 5.0
"""How often a Claimer on PostgreSQL re-reads which of its queues are capped, and
whether any quota exists."""

# PostgreSQL: the picked entries are fenced in a MATERIALIZED CTE so the planner cannot
# re-evaluate the SKIP LOCKED scan. Each queue is scanned through the claim-order index
# by its own LATERAL subquery (LIMIT n per queue), so the cost does not grow with the
# length of the queues. The DELETE and the UPDATE both read the fenced rows.
_PG_CLAIM = """
WITH ranks(name, rank) AS (VALUES {ranks}),{quota_use}
picked AS MATERIALIZED (
    SELECT c.id, c.task_id, c.priority, c.schedule_id, r.name AS queue_name
    FROM ranks r
    JOIN queues q ON q.name = r.name{queue_filter}
    CROSS JOIN LATERAL (
        SELECT e.id, e.task_id, e.priority, e.schedule_id
        FROM queue_entries e
        WHERE e.queue_id = q.id
          AND e.held_by IS NULL AND NOT e.waiting{entry_filter}
          AND (e.not_before IS NULL OR e.not_before <= now()){quota_filter}
        ORDER BY e.priority DESC, e.id
        LIMIT {limit}
        FOR UPDATE OF e SKIP LOCKED
    ) c
    ORDER BY {order}
    LIMIT :n
),
{take_and_run}"""
# Claimer.anything_ready: the entries of the claim's path (ix_queue_entries_ready) that are
# due, or a forming gang's (held for its ranks to join).
_READY_OR_FORMING = f"((e.held_by IS NULL AND NOT e.waiting) OR e.held_by = '{GANG_HOLD}')"
_PG_READY = f"""SELECT EXISTS (
    SELECT 1 FROM queue_entries e JOIN queues q ON q.id = e.queue_id
    WHERE q.name IN ({{names}}) AND {_READY_OR_FORMING}
      AND (e.not_before IS NULL OR e.not_before <= now())
)"""
_PG_UNCAPPED = "\n    AND q.max_running IS NULL"
# Outside a transaction nothing can follow the claim: a schedule's entry waits for a
# claimer that knows its queue has schedules (Claimer reads them as it reads caps).
_PG_UNSCHEDULED = "\n          AND e.schedule_id IS NULL"
_PG_NO_QUOTAS = "\n    AND " + NO_QUOTAS
_PG_ROOM = (
    "GREATEST(0, LEAST(:n, COALESCE(q.max_running - (SELECT count(*) FROM tasks rt "
    "WHERE rt.queue_id = q.id AND rt.status = 'running'), :n)))"
)
# Any fixed number: the first key of a capped queue's advisory lock (the second: its id).
_PG_CAP_LOCK = 0x636C7163
_PG_STRICT_ORDER = "r.rank, c.priority DESC, c.id"
_PG_INTERLEAVED_ORDER = (
    "row_number() OVER (PARTITION BY r.rank ORDER BY c.priority DESC, c.id), r.rank"
)

# SQLite: the transaction began IMMEDIATE, so this writer is alone; each queue is read
# through the claim-order index, then the picked entries are deleted and their tasks
# updated, all before anyone else may write.
_parent = tasks.alias("parent")
BLOCKED = (
    sa.select(sa.literal(1))
    .select_from(task_dependencies.join(_parent, _parent.c.id == task_dependencies.c.parent_id))
    .where(
        task_dependencies.c.child_id == queue_entries.c.task_id,
        _parent.c.status != TaskStatus.COMPLETED.value,
        ~sa.and_(
            task_dependencies.c.continue_on_failure,
            _parent.c.status.in_(["failed", "stopped", "skipped"]),
        ),
    )
    .exists()
)
_SQLITE_PICK = (
    sa.select(queue_entries.c.id, queue_entries.c.task_id, queue_entries.c.schedule_id)
    .where(
        queue_entries.c.queue_id == sa.bindparam("queue_id"),
        queue_entries.c.held_by.is_(None),
        sa.text("NOT queue_entries.waiting"),
        sa.or_(queue_entries.c.not_before.is_(None), queue_entries.c.not_before <= db_now()),
    )
    .order_by(queue_entries.c.priority.desc(), queue_entries.c.id)
    .limit(sa.bindparam("n"))
)
_SQLITE_PICK_UNDER_QUOTAS = _SQLITE_PICK.where(
    sa.text(
        over_quota(
            f"({QUOTA_USE})",
            "queue_entries.task_id",
            "(SELECT gpus FROM queues WHERE queues.id = queue_entries.queue_id)",
        )
    )
)
_ready_e = queue_entries.alias("e")
_ready_q = queues.alias("q")
_SQLITE_READY = (
    sa.select(sa.literal(1))
    .select_from(_ready_e.join(_ready_q, _ready_q.c.id == _ready_e.c.queue_id))
    .where(
        _ready_q.c.name.in_(sa.bindparam("names", expanding=True)),
        sa.text(_READY_OR_FORMING),
        sa.or_(_ready_e.c.not_before.is_(None), _ready_e.c.not_before <= db_now()),
    )
    .limit(1)
)
_SQLITE_FAIR_QUEUES = sa.select(queues.c.name, queues.c.id).where(
    queues.c.name.in_(sa.bindparam("names", expanding=True)), queues.c.fair_share.is_not(None)
)
_SQLITE_RUNNING = sa.select(sa.func.count()).where(
    tasks.c.queue_id == sa.bindparam("queue_id"), tasks.c.status == TaskStatus.RUNNING.value
)


def claim(
    db: Database,
    *,
    worker: str,
    queues_ranked: Sequence[str],
    limit: int = 1,
    interleave: bool = False,
    lease_seconds: float,
    capped: dict[str, int] | None = None,
    quotas: bool = False,
    scheduled: Collection[str] = (),
    fair_queues: dict[str, int] | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` tasks for ``worker`` from ``queues_ranked``, in one transaction.

    ``capped``: the queues among them known to have a cap, by name -> id (PostgreSQL
    takes their locks; a queue capped since is skipped by the lock-free statement).
    ``quotas``: whether quotas are known to exist (PostgreSQL takes their lock; while one
    exists unseen, the statements without it claim nothing). SQLite reads them itself.
    ``scheduled``: the queues among them known to hold schedules' entries (PostgreSQL
    claims in a transaction that fires those schedules, ``schedules.fire``; the lock-free
    statement passes such entries over). SQLite always claims in a transaction.
    ``fair_queues``: those known to share by user or project, by name -> id (SQLite
    reads them itself).
    """
    if limit < 1:
        raise InvalidInput(f"a claim takes at least one task, not {limit}")
    if not queues_ranked:
        return []
    capped = capped or {}
    fair_ids = {q: i for q, i in (fair_queues or {}).items() if q in queues_ranked}
    if db.is_postgres and not capped and not quotas and not scheduled and not fair_ids:
        # One statement: its own transaction, without BEGIN/COMMIT round trips.
        with statement(db) as x:
            return _claim_pg(x, worker, queues_ranked, limit, interleave, lease_seconds)
    if db.is_postgres:
        with db.write() as conn:
            # Always in this order (caps by queue id, then quotas): no two claims deadlock.
            for queue_id in sorted(capped.values()):
                conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:k, :id)"),
                    {"k": _PG_CAP_LOCK, "id": queue_id},
                )
            if quotas:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k, 0)"), {"k": PG_QUOTA_LOCK})

            def take_plain(names: Sequence[str], n: int) -> list[Claim]:
                return _claim_pg(
                    on(conn),
                    worker,
                    names,
                    n,
                    interleave,
                    lease_seconds,
                    capped=bool(capped),
                    quota=quotas,
                    fire_on=conn,
                )

            def take_fair(name: str) -> list[Claim]:
                queue_id, held = fair_ids[name], name in capped
                return fair_claim.claim_pg(conn, worker, queue_id, lease_seconds, held, quotas)

            take = _by_segments(take_plain, take_fair, fair_ids)
            one_by_one = quotas or bool(fair_ids)
            return _one_at_a_time(take, queues_ranked, limit, interleave, one_by_one)
    with db.write() as conn:
        under_quotas = bool(conn.execute(ANY_QUOTA).scalar())
        fair_ids = dict(conn.execute(_SQLITE_FAIR_QUEUES, {"names": list(queues_ranked)}).all())

        def take_sqlite(names: Sequence[str], n: int) -> list[Claim]:
            return _claim_sqlite(
                conn,
                worker,
                names,
                n,
                interleave,
                lease_seconds,
                quota=under_quotas,
                fair_queues=frozenset(fair_ids),
            )

        one_by_one = under_quotas or bool(fair_ids)
        return _one_at_a_time(take_sqlite, queues_ranked, limit, interleave, one_by_one)


def _by_segments(
    take_plain: Callable[[Sequence[str], int], list[Claim]],
    take_fair: Callable[[str], list[Claim]],
    fair_queues: dict[str, int],
) -> Callable[[Sequence[str], int], list[Claim]]:
    """A claim of one task over ranked queues where some share fairly: each run of plain
    queues in one statement, each fair queue in its own, in rank order, until one gives."""
    if not fair_queues:
        return take_plain

    def take(names: Sequence[str], n: int) -> list[Claim]:
        plain: list[str] = []
        for name in [*names, ""]:  # "" ends the last run of plain queues
            if name and name not in fair_queues:
                plain.append(name)
                continue
            if plain and (got := take_plain(plain, n)):
                return got
            plain = []
            if name and (got := take_fair(name)):
                return got
        return []

    return take


def _one_at_a_time(
    take: Callable[[Sequence[str], int], list[Claim]],
    names: Sequence[str],
    limit: int,
    interleave: bool,
    one_by_one: bool,
) -> list[Claim]:
    """``take(names, limit)`` at once; under quotas or with a fair queue, one task per
    statement.

    Each statement sees the tasks the ones before turned running (one transaction), so
    a batch cannot take one user's last room twice. Round robin moves on to the queue
    after each task's own, as the interleaved batch would.
    """
    if not one_by_one:
        return take(names, limit)
    claims: list[Claim] = []
    ranked = list(names)
    while len(claims) < limit:
        got = take(ranked, 1)
        if not got:
            break
        claims.extend(got)
        if interleave:
            after = ranked.index(got[0].queue) + 1
            ranked = ranked[after:] + ranked[:after]
    return claims


def _claim_pg(
    x: Execution,
    worker: str,
    names: Sequence[str],
    limit: int,
    interleave: bool,
    lease_seconds: float,
    *,
    capped: bool = False,
    quota: bool = False,
    fire_on: Connection | None = None,
) -> list[Claim]:
    """``fire_on``: the transaction's connection, where schedules' entries are claimed too
    and their schedules fired."""
    params: dict[str, Any] = {f"q{i}": name for i, name in enumerate(names)}
    params.update(n=limit, worker=worker, lease=float(lease_seconds))
    scheduled = fire_on is not None
    rows = x.execute(_pg_claim_statement(len(names), interleave, capped, quota, scheduled), params)
    # RETURNING t.id, t.attempt, p.queue_name, p.priority, p.id AS entry_id, p.schedule_id
    if fire_on is not None:
        fire(fire_on, [(r[0], r[5]) for r in rows if r[5] is not None])
    picked = [_Picked(r[0], r[1], r[2], r[3], r[4]) for r in rows]
    return _in_claim_order(picked, names, worker, interleave)


@functools.cache
def _pg_ready_statement(n_queues: int) -> str:
    names = ", ".join(f":q{i}" for i in range(n_queues))
    return driver_sql(_PG_READY.format(names=names))


@functools.cache
def _pg_claim_statement(
    n_queues: int, interleave: bool, capped: bool, quota: bool, scheduled: bool
) -> str:
    # One statement per shape, rendered once in the driver's parameter style and sent
    # with exec_driver_sql: the hot path pays no SQLAlchemy compilation or cache lookup.
    # Lock-free: capped queues are left out; under their locks: each queue takes at most
    # the room its cap leaves. Under the quota
    # lock, entries of users and projects at a quota are passed over; without it,
    # nothing is claimed while a quota exists. Schedules' entries are claimed only in a
    # transaction (``scheduled``), which fires them.
    ranks = ", ".join(f"(CAST(:q{i} AS varchar), {i})" for i in range(n_queues))
    order = _PG_INTERLEAVED_ORDER if interleave else _PG_STRICT_ORDER
    queue_filter = ("" if capped else _PG_UNCAPPED) + ("" if quota else _PG_NO_QUOTAS)
    return driver_sql(
        _PG_CLAIM.format(
            ranks=ranks,
            order=order,
            queue_filter=queue_filter,
            limit=_PG_ROOM if capped else ":n",
            quota_use=PG_QUOTA_USE if quota else "",
            quota_filter=PG_OVER_QUOTA if quota else "",
            entry_filter="" if scheduled else _PG_UNSCHEDULED,
            take_and_run=PG_TAKE_AND_RUN,
        )
    )


def _claim_sqlite(
    conn: Connection,
    worker: str,
    names: Sequence[str],
    limit: int,
    interleave: bool,
    lease_seconds: float,
    *,
    quota: bool = False,
    fair_queues: frozenset[str] = frozenset(),
) -> list[Claim]:
    found = conn.execute(
        sa.select(queues.c.name, queues.c.id, queues.c.max_running).where(queues.c.name.in_(names))
    ).all()
    ids = {r.name: r.id for r in found}
    caps = {r.name: r.max_running for r in found if r.max_running is not None}
    per_queue: list[list[_Entry]] = []
    for name in names:
        if name not in ids:
            continue
        room = limit
        if name in caps:  # this writer is alone (BEGIN IMMEDIATE): the count holds
            running = conn.execute(_SQLITE_RUNNING, {"queue_id": ids[name]}).scalar_one()
            room = min(limit, caps[name] - running)
            if room <= 0:
                continue
        if name in fair_queues:  # one task at a time (claim's one_by_one)
            pick: Any = fair_claim.sqlite_pick(quota)
        else:
            pick = _SQLITE_PICK_UNDER_QUOTAS if quota else _SQLITE_PICK
        rows = conn.execute(pick, {"queue_id": ids[name], "n": room}).all()
        per_queue.append([_Entry(r.id, r.task_id, name, r.schedule_id) for r in rows])
        if not interleave and sum(map(len, per_queue)) >= limit:
            break
    picked = _interleave(per_queue) if interleave else [e for q in per_queue for e in q]
    picked = picked[:limit]
    if not picked:
        return []
    conn.execute(queue_entries.delete().where(queue_entries.c.id.in_([p.id for p in picked])))
    claimed = []
    for entry in picked:  # already in claim order
        attempt = conn.execute(
            sa.text(SQLITE_RUN),
            {"worker": worker, "lease": float(lease_seconds), "task_id": entry.task_id.hex},
        ).scalar_one()
        claimed.append(
            Claim(task_id=entry.task_id, attempt=attempt, worker=worker, queue=entry.queue)
        )
    fire(conn, [(p.task_id, p.schedule_id) for p in picked if p.schedule_id is not None])
    return claimed


class _Entry(NamedTuple):
    id: int
    task_id: uuid.UUID
    queue: str
    schedule_id: int | None


def _interleave(per_queue: Sequence[Sequence[_Entry]]) -> list[_Entry]:
    out: list[_Entry] = []
    for i in range(max((len(q) for q in per_queue), default=0)):
        out.extend(q[i] for q in per_queue if i < len(q))
    return out


class _Picked(NamedTuple):
    task_id: uuid.UUID
    attempt: int
    queue: str
    priority: int
    entry_id: int


def _in_claim_order(
    picked: Sequence[_Picked], names: Sequence[str], worker: str, interleave: bool
) -> list[Claim]:
    """Hand claims out in the order they were picked (RETURNING keeps none)."""
    if len(picked) == 1:  # the usual claim(1): nothing to order
        p = picked[0]
        return [Claim(task_id=p.task_id, attempt=p.attempt, worker=worker, queue=p.queue)]
    rank = {name: i for i, name in enumerate(names)}
    by_queue = sorted(picked, key=lambda p: (rank[p.queue], -p.priority, p.entry_id))
    if interleave:
        turn: dict[str, int] = {}
        keyed = []
        for p in by_queue:
            turn[p.queue] = turn.get(p.queue, -1) + 1
            keyed.append(((turn[p.queue], rank[p.queue]), p))
        by_queue = [p for _, p in sorted(keyed, key=lambda item: item[0])]
    return [
        Claim(task_id=p.task_id, attempt=p.attempt, worker=worker, queue=p.queue) for p in by_queue
    ]


class Claimer:
    """A worker's claims across its queues, keeping the round-robin rotation.

    Strict: queues are tried in the order given, every time. Round robin: the next
    claim starts at the queue after the one the last claim's first task came from, so
    every queue gets its turn even while an earlier one is never empty; a batch claim
    takes one entry from each queue in turn.
    """

    def __init__(
        self,
        db: Database,
        *,
        worker: str,
        queues: Sequence[str],
        order: ClaimOrder = ClaimOrder.STRICT,
        lease_seconds: float,
    ) -> None:
        if not queues:
            raise InvalidInput("a worker needs at least one queue to claim from")
        if len(set(queues)) != len(queues):
            raise InvalidInput(f"queues named more than once: {list(queues)}")
        self._db = db
        self.worker = worker
        self.queues = tuple(queues)
        self.order = order
        self._lease_seconds = lease_seconds
        self._start = 0
        self._capped: dict[str, int] = {}
        self._quotas = False
        self._scheduled: frozenset[str] = frozenset()
        self._fair: dict[str, int] = {}
        self._capped_read_at = -CAPS_REFRESH_SECONDS

    def _capped_queues(self) -> dict[str, int]:
        # PostgreSQL only (SQLite reads caps and quotas inside its claim). A cap set since
        # the last read only makes the lock-free statement skip that queue until the next
        # read; a first quota, claim nothing; a first schedule, skip its entry (the queues
        # with schedules are read with the caps, into ``_scheduled``); a queue turned fair,
        # first in, first out until then.
        if not self._db.is_postgres:
            return {}
        now = time.monotonic()
        if now - self._capped_read_at >= CAPS_REFRESH_SECONDS:
            with_schedules = (
                sa.select(schedules.c.id).where(schedules.c.queue_id == queues.c.id).exists()
            )
            query = sa.select(
                queues.c.name, queues.c.id, queues.c.max_running, with_schedules.label("sched")
            ).where(
                queues.c.name.in_(self.queues),
                sa.or_(queues.c.max_running.is_not(None), with_schedules),
            )
            fair_query = sa.select(queues.c.name, queues.c.id).where(
                queues.c.name.in_(self.queues), queues.c.fair_share.is_not(None)
            )
            with self._db.read() as conn:
                rows = conn.execute(query).all()
                self._quotas = bool(conn.execute(ANY_QUOTA).scalar())
                self._fair = {r.name: r.id for r in conn.execute(fair_query)}
            self._capped = {r.name: r.id for r in rows if r.max_running is not None}
            self._scheduled = frozenset(r.name for r in rows if r.sched)
            self._capped_read_at = now
        return self._capped

    def anything_ready(self, among: Sequence[str] | None = None) -> bool:
        """Whether these queues hold an entry a claim might take now: due, and free or a
        forming gang's. One cheap read, for a worker whose timed re-claim followed no
        hint: an idle fleet's re-claims found nothing, each paying the planning of the
        claim statement (behind pgbouncer nothing is prepared) and of the caps' reads.
        True does not promise a claim (a cap, a quota or a parent may still hold it back);
        False means a claim now would take nothing.
        """
        names = self.ranked(among)
        if not names:
            return False
        params: dict[str, Any] = {f"q{i}": name for i, name in enumerate(names)}
        if self._db.is_postgres:
            with statement(self._db) as x:
                rows = x.execute(_pg_ready_statement(len(names)), params)
            return bool(rows and rows[0][0])
        with self._db.read() as conn:
            return conn.execute(_SQLITE_READY, {"names": names}).first() is not None

    def ranked(self, among: Sequence[str] | None = None) -> list[str]:
        """The queues in the order the next claim will try them (``among`` filters)."""
        rotated = self.queues[self._start :] + self.queues[: self._start]
        return [q for q in rotated if among is None or q in among]

    def claim(self, limit: int = 1, *, among: Sequence[str] | None = None) -> list[Claim]:
        """Claim up to ``limit`` tasks; ``among`` restricts this claim to some queues."""
        robin = self.order is ClaimOrder.ROUND_ROBIN
        ranked = self.ranked(among)
        claims = claim(
            self._db,
            worker=self.worker,
            queues_ranked=ranked,
            limit=limit,
            interleave=robin,
            lease_seconds=self._lease_seconds,
            capped={q: i for q, i in self._capped_queues().items() if q in ranked},
            quotas=self._quotas,
            scheduled=self._scheduled.intersection(ranked),
            fair_queues=self._fair,
        )
        if robin and claims:
            # The first claim of a batch came from the first queue in rotation that had
            # an entry; the next claim starts after it.
            self._start = (self.queues.index(claims[0].queue) + 1) % len(self.queues)
        return claims
