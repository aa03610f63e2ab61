"""Deleting many tasks, with and without the index on ``tasks.parent_id`` (migration 0011).

``tasks.parent_id`` references ``tasks`` with ``ON DELETE SET NULL``: for every deleted
row PostgreSQL looks for rows naming it as their parent. Without an index each look-up
scans the table, so deleting n tasks costs about n^2 row visits.

Each run fills a fresh table with ``--tasks`` queued tasks (50,000; every second one the
clone of the one before, so ``parent_id`` is used the way ``clone`` uses it), then times
one ``DELETE`` of all of them: first with the index (clearq's schema), then, as the
baseline, the same after ``DROP INDEX ix_tasks_parent_id``. A baseline that runs past
``--baseline-limit`` seconds (default 300) is cancelled by a statement timeout and
printed as "> limit".

Run: ``python benchmarks/delete_tasks.py [--tasks N] [--runs R] [--baseline-limit S]``
with ``CLEARQ_BENCH_POSTGRES_URL`` naming the server (a database is created and dropped).
"""

from __future__ import annotations

import argparse
import time

import psycopg
from common import (
    TEMPLATE_NAME,
    banner,
    bench_database,
    ensure_queues,
    fill_queue,
    machine_note,
    median,
    open_store,
    store_dsn,
    table,
)

from clearq.scheduler import Store

QUEUE = "delete-bench"


def _fill(store: Store, n: int) -> None:
    fill_queue(store, QUEUE, n)
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        # Every even task a clone of the odd one before it.
        conn.execute("ANALYZE tasks")
        conn.execute(
            """
            UPDATE tasks c SET parent_id = p.id
            FROM (
                SELECT id, split_part(name, '-', 2)::bigint AS n FROM tasks
                WHERE name ~ '^bench-[0-9]+$'
            ) p
            WHERE p.n % 2 = 1 AND c.name = 'bench-' || (p.n + 1)
            """
        )
        conn.execute("VACUUM ANALYZE tasks")


def _timed_delete(dsn: str, limit_s: float) -> float | None:
    """Seconds one DELETE of every bench task took; None when it ran past ``limit_s``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = {round(limit_s * 1000)}")
        start = time.perf_counter()
        try:
            conn.execute("DELETE FROM tasks WHERE name <> %s", (TEMPLATE_NAME,))
        except psycopg.errors.QueryCanceled:
            return None
        return time.perf_counter() - start


def _one_run(n: int, limit_s: float) -> tuple[float | None, float | None]:
    with bench_database("delete") as url:
        store = open_store(url)
        try:
            ensure_queues(store, QUEUE)
            dsn = store_dsn(store)
            _fill(store, n)
            indexed = _timed_delete(dsn, limit_s)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("DROP INDEX ix_tasks_parent_id")
                conn.execute("DELETE FROM queue_entries")
                conn.execute("VACUUM ANALYZE tasks")
            _fill(store, n)
            baseline = _timed_delete(dsn, limit_s)
        finally:
            store.close()
    return indexed, baseline


def _fmt(seconds: float | None, limit_s: float) -> str:
    return f"> {limit_s:.0f}" if seconds is None else f"{seconds:.2f}"


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline-limit", type=float, default=300.0)
    args = parser.parse_args()
    banner(f"delete {args.tasks} tasks ({machine_note()})")
    rows = []
    indexed_all: list[float] = []
    for run in range(1, args.runs + 1):
        indexed, baseline = _one_run(args.tasks, args.baseline_limit)
        if indexed is not None:
            indexed_all.append(indexed)
        rows.append([run, _fmt(indexed, args.baseline_limit), _fmt(baseline, args.baseline_limit)])
        print(table(["run", "with index s", "without index s"], rows[-1:]), flush=True)
    if indexed_all:
        print(
            f"with index: min {min(indexed_all):.2f} s, median {median(indexed_all):.2f} s, "
            f"max {max(indexed_all):.2f} s over {len(indexed_all)} runs"
        )


if __name__ == "__main__":
    main()
