"""The claim of a fair-share queue: one task, the best owner's first entry.

What a fair queue's turn order is lives in ``clearq.scheduler.fair``; this module is the
claim's statement for it, one task per statement (``claim.claim`` calls it in rank order
with the other queues, one task at a time in its transaction).

On PostgreSQL the claim exits early instead of reading every owner's head: it finds the
queue's top eligible priority first (one probe of the claim-order index), then walks the
owners in their fair order (fewest running, least usage: ``fair_usage`` with the running
tasks counted once, a sort of one row per owner, no index probe) and probes each one's
first eligible entry at that priority through the fair-order index, in that order, until
it has a free one. Owners tied on (running, usage) are taken together and their entries
first in, first out (an incremental sort: a tie group is read whole, then the next one
only if every entry of this one was locked by concurrent claimers). The candidate is
locked with ``SKIP LOCKED``; when concurrent claimers hold every candidate, the queue's
first unlocked entry is taken instead, so a busy fair queue never looks empty. The cost
does not grow with the queue's length, nor, in the usual case, with its owners' count.

SQLite's writer is alone: its statement reads each owner's first entry by a correlated
subquery and takes the best.
"""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clearq.models import Claim
from clearq.scheduler import fair
from clearq.scheduler.quotas import NO_QUOTAS, PG_OVER_QUOTA, PG_QUOTA_USE, QUOTA_USE, over_quota
from clearq.scheduler.schedules import fire
from clearq.scheduler.schema import queue_entries
from clearq.scheduler.take import PG_TAKE_AND_RUN, driver_sql

TRIES = 32
"""How many candidates (owners' first entries, in fair order) a PostgreSQL claim tries to
lock before it takes the queue's first free entry instead; it bounds the sort the planner
sees, so that it keeps the early exit (an incremental sort under a limit)."""

# ``owners``: one row per owner the queue knows, with its running tasks and usage;
# ``cand``: in the owners' fair order, each one's first eligible entry at the top priority
# (its first HEAD entries there read through the fair-order index, their dependencies
# checked on those rows only); the candidates sorted (the owners' order is kept through
# the nested loop, so the sort is incremental and a LIMIT above it stops early) and
# locked one by one until one is free; else the queue's first free entry. Either within
# the queue's cap.
_PG_FAIR_CLAIM = """
WITH{quota_use}
{queue}
top AS MATERIALIZED (
    SELECT e.priority FROM fq q, queue_entries e
    WHERE e.queue_id = :queue_id AND {entry_ok}
    ORDER BY e.priority DESC, e.id
    LIMIT 1
),
owners AS MATERIALIZED (
    SELECT o.owner, COALESCE(r.n, 0) AS running, o.score IS NOT NULL AS scored, o.score
    FROM fair_usage o LEFT JOIN fair_running r ON r.owner = o.owner
    WHERE o.queue_id = :queue_id
),
cand AS (
    SELECT f.id, o.running, o.scored, o.score
    FROM (SELECT * FROM owners ORDER BY running, scored, score OFFSET 0) o
    CROSS JOIN top t
    CROSS JOIN fq q
    CROSS JOIN LATERAL (
        SELECT e.id FROM (
            SELECT e.id, e.task_id, e.waiting FROM queue_entries e
            WHERE e.queue_id = :queue_id AND e.owner = o.owner AND e.priority = t.priority
              AND {ready}
            ORDER BY e.id
            LIMIT {head}
        ) e
        WHERE {checks}
        ORDER BY e.id
        LIMIT 1
    ) f
),
picked AS MATERIALIZED (
    SELECT * FROM (
        SELECT e.id, e.task_id, e.priority, e.schedule_id, q.name AS queue_name
        FROM (
            SELECT * FROM cand c ORDER BY c.running, c.scored, c.score, c.id LIMIT {tries}
        ) c
        CROSS JOIN fq q
        CROSS JOIN LATERAL (
            SELECT e.id, e.task_id, e.priority, e.schedule_id FROM queue_entries e
            WHERE e.id = c.id
            FOR UPDATE OF e SKIP LOCKED
        ) e
        WHERE {room}
        LIMIT 1
    ) best
    UNION ALL
    SELECT * FROM (
        SELECT e.id, e.task_id, e.priority, e.schedule_id, q.name AS queue_name
        FROM fq q
        CROSS JOIN LATERAL (
            SELECT e.id, e.task_id, e.priority, e.schedule_id FROM queue_entries e
            WHERE e.queue_id = q.id AND {entry_ok}
            ORDER BY e.priority DESC, e.id
            LIMIT 1
            FOR UPDATE OF e SKIP LOCKED
        ) e
        WHERE {room}
    ) first_free
    LIMIT 1
),
{take_and_run}"""
_PG_FAIR_ROOM = (
    "(q.max_running IS NULL OR (SELECT count(*) FROM tasks rt "
    "WHERE rt.queue_id = q.id AND rt.status = 'running') < q.max_running)"
)


def claim_pg(
    conn: Connection,
    worker: str,
    queue_id: int,
    lease_seconds: float,
    capped: bool,
    quota: bool,
) -> list[Claim]:
    """Claim one task of fair-share queue ``queue_id`` (PostgreSQL), in ``conn``'s
    transaction. ``capped``: its cap's lock is held; ``quota``: the quota lock is."""
    params = {"queue_id": queue_id, "worker": worker, "lease": float(lease_seconds)}
    rows = conn.exec_driver_sql(_pg_statement(capped, quota), params).all()
    fire(conn, [(r.id, r.schedule_id) for r in rows if r.schedule_id is not None])
    return [Claim(task_id=r.id, attempt=r.attempt, worker=worker, queue=r.queue_name) for r in rows]


@functools.cache
def _pg_statement(capped: bool, quota: bool) -> str:
    # Without the cap's lock a capped queue is left alone (as the lock-free statement
    # does); without the quota lock nothing is claimed while a quota exists.
    room = _PG_FAIR_ROOM if capped else "q.max_running IS NULL"
    room += "" if quota else " AND " + NO_QUOTAS
    extra = PG_OVER_QUOTA if quota else ""
    return driver_sql(
        _PG_FAIR_CLAIM.format(
            quota_use=PG_QUOTA_USE if quota else "",
            queue=fair.pg_queue(),
            ready=fair.ready(True),
            checks=f"{fair.DEPENDENCIES_DONE}{extra}",
            head=fair.HEAD,
            tries=TRIES,
            room=room,
            entry_ok=fair.eligible(True, extra),
            take_and_run=PG_TAKE_AND_RUN,
        )
    )


@functools.cache
def sqlite_pick(quota: bool) -> sa.TextualSelect:
    """The statement that picks a fair-share queue's next entry on SQLite (parameters
    ``queue_id``, ``n``); the writer is alone and its queue's room is counted already."""
    extra = ""
    if quota:
        extra = "\n          AND " + over_quota(f"({QUOTA_USE})", "e.task_id", "q.gpus")
    entry_ok = fair.eligible(False, extra)
    return sa.text(
        f"WITH {fair.sqlite_candidates(entry_ok)}\n"
        "SELECT e.id, e.task_id, e.schedule_id FROM cand c JOIN queue_entries e ON e.id = c.id\n"
        f"ORDER BY {fair.SQLITE_FAIR_ORDER} LIMIT :n"
    ).columns(queue_entries.c.id, queue_entries.c.task_id, queue_entries.c.schedule_id)
