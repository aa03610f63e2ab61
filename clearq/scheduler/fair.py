"""Fair share within a queue: whose entry the next claim of a fair-share queue takes.

A queue created with ``fair_share`` (``user`` or ``project``) orders its waiting entries by
priority first, as every queue does; among entries of equal priority the owner (the
task's user, or its project) with the fewest tasks running out of the queue goes first,
then the one with the least recent usage, then first in, first out. Usage is Slurm's
fair-share usage: the GPU-seconds of each finished run (run seconds times the queue's
GPUs per task, or task-seconds in a queue without GPUs), counting half after the queue's
half-life, a quarter after two, and so on.

Nothing here scans history at claim time. ``fair_usage`` holds one row per owner of the
queue: its score is ln(sum of charge * 2^(t / half-life)) over its runs (t: when each
ended, on the database's clock), so that comparing two scores compares the two usages
decayed to any common moment, and ending a run adds to one row in one statement
(``statements.CHARGE``, in the run's finish). Each entry records its owner
(``queue_entries.owner``, indexed with the claim order), so the claim finds an owner's
first eligible entry with one index probe, counts the queue's running tasks once, and
walks the owners in order until one has an entry (``clearq.scheduler.fair_claim``).

A claim from a fair-share queue takes one task per statement (a batch takes them one at a
time in its transaction). Reaped runs (a lost worker) are not charged.
"""

from __future__ import annotations

from clearq.scheduler.statements import clock

# The conditions every claim puts on an entry ``e`` (its queue ``q``): not held by an
# outside launcher, past its delay, and no parent keeping it waiting (``waiting``: kept by
# the database, migration 0020).
DEPENDENCIES_DONE = "NOT e.waiting"


def ready(postgres: bool) -> str:
    """The conditions on an entry ``e``'s own columns: no outside hold, past its delay."""
    now = clock(postgres, "0")
    return f"e.held_by IS NULL AND (e.not_before IS NULL OR e.not_before <= {now})"


def eligible(postgres: bool, extra: str = "") -> str:
    """Every condition the claim puts on an entry ``e``, with ``extra`` ANDed."""
    return f"{ready(postgres)} AND {DEPENDENCIES_DONE}{extra}"


_OWNER_OF_RUNNING = (
    "CASE fq.fair_share WHEN 'user' THEN COALESCE(rt.created_by, '') ELSE rt.project END"
)
_QUEUE = """fq AS{mat} (
    SELECT id, name, gpus, fair_share, max_running FROM queues WHERE id = :queue_id
),
fair_running AS{mat} (
    SELECT {owner} AS owner, count(*) AS n
    FROM tasks rt, fq
    WHERE rt.status = 'running' AND rt.queue_id = fq.id
    GROUP BY 1
),"""

HEAD = 8
"""How many of an owner's first entries are tried for one that is eligible: an owner
whose first eight all wait for parents waits for the queue's first free entry."""


def pg_queue() -> str:
    """The common table expressions ``fq`` (the queue ``:queue_id``) and ``fair_running``
    (its running tasks per owner) of a fair claim on PostgreSQL."""
    return _QUEUE.format(mat=" MATERIALIZED", owner=_OWNER_OF_RUNNING)


def sqlite_candidates(entry_ok: str) -> str:
    """The candidates of a fair claim of queue ``:queue_id`` on SQLite: ``fq``,
    ``fair_running`` and ``cand``, each owner's first entry satisfying ``entry_ok`` (with
    its running tasks and usage) by a correlated subquery (SQLite walks the fair-order
    index), and the first entry with no owner recorded."""
    queue = _QUEUE.format(mat="", owner=_OWNER_OF_RUNNING)
    return f"""{queue}
cand AS (
    SELECT (
        SELECT e.id FROM queue_entries e, fq q
        WHERE e.queue_id = q.id AND e.owner = o.owner AND {entry_ok}
        ORDER BY e.priority DESC, e.id LIMIT 1
    ) AS id, COALESCE(r.n, 0) AS running, o.score
    FROM fair_usage o LEFT JOIN fair_running r ON r.owner = o.owner
    WHERE o.queue_id = :queue_id
    UNION ALL
    SELECT (
        SELECT e.id FROM queue_entries e, fq q
        WHERE e.queue_id = q.id AND e.owner IS NULL AND {entry_ok}
        ORDER BY e.priority DESC, e.id LIMIT 1
    ), 0, NULL
)"""


SQLITE_FAIR_ORDER = "e.priority DESC, c.running, c.score IS NOT NULL, c.score, e.id"
"""The candidates' order over SQLite's candidates joined to their entries ``e``:
priority, fewest running, least usage (none first), first in."""
