"""The tail every claim shares: the picked entries leave their queue and their tasks run.

Each claim statement (``claim``: the queues' next entries; ``fair_claim``: a fair-share
queue's; ``claim_task``: one named task) picks its entries its own way and ends the same
way: on PostgreSQL by :data:`PG_TAKE_AND_RUN` over a fenced ``picked`` CTE, on SQLite by
:data:`SQLITE_RUN` per task after deleting the entries (the writer is alone).
"""

from __future__ import annotations

from clearq.scheduler.statements import Statement, render

# Delete the picked entries and turn their tasks running, reading the fenced rows.
PG_TAKE_AND_RUN = """taken AS (
    DELETE FROM queue_entries e USING picked p WHERE e.id = p.id
)
UPDATE tasks t
SET status = 'running',
    worker = :worker,
    attempt = t.attempt + 1,
    tries = t.tries + 1,
    started_at = now(),
    updated_at = now(),
    finished_at = NULL,
    exit_code = NULL,
    stop_requested_at = NULL,
    status_reason = '',
    lease_expires_at = now() + make_interval(secs => :lease)
FROM picked p
WHERE t.id = p.task_id
RETURNING t.id, t.attempt, p.queue_name, p.priority, p.id AS entry_id, p.schedule_id
"""

SQLITE_RUN = """
UPDATE tasks
SET status = 'running',
    worker = :worker,
    attempt = attempt + 1,
    tries = tries + 1,
    started_at = strftime('%Y-%m-%d %H:%M:%f000', 'now'),
    updated_at = strftime('%Y-%m-%d %H:%M:%f000', 'now'),
    finished_at = NULL,
    exit_code = NULL,
    stop_requested_at = NULL,
    status_reason = '',
    lease_expires_at = strftime('%Y-%m-%d %H:%M:%f000', julianday('now') + :lease / 86400.0)
WHERE id = :task_id
RETURNING attempt
"""


def driver_sql(sql: str) -> str:
    """A PostgreSQL claim statement (``:name`` parameters) in the driver's own parameter
    style, for ``exec_driver_sql``: the claim is the hottest statement, and the DB-API
    path spares it SQLAlchemy's compilation and parameter processing."""
    return render(Statement("claim", sql), True)
