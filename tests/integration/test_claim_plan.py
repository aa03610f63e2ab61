"""The claim's plan does not depend on the planner's statistics (PostgreSQL).

A queue filled faster than autoanalyze (a sweep, a pipeline's fan-out) is claimed with
statistics that describe another queue: before migration 0020 the dependencies' NOT
EXISTS and the retry delay then made the planner sort the whole eligible set on every
claim. Entries that cannot run yet keep out of the claim's path (``waiting``, kept by the
database), and the claim reads the ready entries' claim-order index: checked here with
EXPLAIN on a freshly filled, never analysed queue, and again after ANALYZE.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from clearq.config import Settings
from clearq.models import TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import queue_entries, task_dependencies
from tests.integration.helpers import bulk_queued, new_task, queued

pytestmark = pytest.mark.postgres

FILL = 1500
_TABLES = ("tasks", "queue_entries", "task_dependencies")


@pytest.fixture
def pg_store(pg_fresh_url: str, settings: Settings) -> Iterator[Store]:
    with Store(pg_fresh_url, settings=settings) as store:
        with store.db.write() as conn:
            for table in _TABLES:  # no autovacuum, no autoanalyze: statistics stay stale
                conn.exec_driver_sql(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        yield store


def _analyze(store: Store) -> None:
    with store.db.write() as conn:
        for table in _TABLES:
            conn.exec_driver_sql(f"ANALYZE {table}")


def _fill(store: Store, parent: uuid.UUID, unfinished: uuid.UUID) -> list[uuid.UUID]:
    """A pipeline's fan-out: every child depends on ``parent``; every tenth also on
    ``unfinished``; every third waits out a retry's delay. Returns the ready ones."""
    ids = bulk_queued(store, "q", FILL)
    edges = [{"child_id": c, "parent_id": parent, "continue_on_failure": False} for c in ids]
    edges += [
        {"child_id": c, "parent_id": unfinished, "continue_on_failure": False} for c in ids[::10]
    ]
    delayed = ids[::3]
    with store.db.write() as conn:
        conn.execute(task_dependencies.insert(), edges)
        conn.execute(
            queue_entries.update()
            .where(queue_entries.c.task_id.in_(delayed))
            .values(not_before=sa.text("now() + interval '1 hour'"))
        )
    return [t for t in ids if t not in set(ids[::10]) | set(delayed)]


def _claim_and_explain(store: Store) -> tuple[uuid.UUID, dict[str, Any]]:
    """Claim one task, and EXPLAIN the very statement that claim sent."""
    sent: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if "picked AS MATERIALIZED" in statement:
            sent.append((statement, params))

    sa.event.listen(store.db.engine, "before_cursor_execute", capture)
    try:
        [claim] = store.claimer("w", ["q"]).claim(1)
    finally:
        sa.event.remove(store.db.engine, "before_cursor_execute", capture)
    [(statement, params)] = sent
    with store.db.read() as conn:
        [[plan]] = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).all()
    return claim.task_id, (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def _entry_scans(
    node: dict[str, Any], above: tuple[str, ...] = ()
) -> Iterator[tuple[dict[str, Any], tuple[str, ...]]]:
    """Every scan of ``queue_entries`` with the node types between it and the nearest
    Limit above it."""
    if node.get("Relation Name") == "queue_entries" and node.get("Alias") == "e":
        yield node, above
    path = () if node["Node Type"] == "Limit" else (*above, node["Node Type"])
    for child in node.get("Plans", []):
        yield from _entry_scans(child, path)


def _assert_reads_the_claim_order(plan: dict[str, Any]) -> None:
    [(scan, above)] = list(_entry_scans(plan))
    assert not any("Sort" in t or "Hash" in t for t in above), plan
    assert scan["Node Type"] == "Index Scan", plan
    assert scan["Index Name"] == "ix_queue_entries_ready", plan


def test_the_claim_reads_the_ready_entries_in_order_whatever_the_statistics(
    pg_store: Store,
) -> None:
    store = pg_store
    store.queues.create("q")
    parent = queued(store, "q", "parent")
    [first] = store.claimer("w", ["q"]).claim(1)
    assert first.task_id == parent
    store.leases.finish(first.fence, TaskStatus.COMPLETED, exit_code=0)
    unfinished = new_task(store, "unfinished")  # a draft: never finished
    _analyze(store)  # the statistics of an empty queue, as before a sweep
    ready = _fill(store, parent, unfinished)

    claimed, plan = _claim_and_explain(store)
    _assert_reads_the_claim_order(plan)
    assert claimed == ready[0]

    _analyze(store)
    claimed, plan = _claim_and_explain(store)
    _assert_reads_the_claim_order(plan)
    assert claimed == ready[1]
