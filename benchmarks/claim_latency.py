"""Single-claim latency with a short and a very long queue: does a claim stay O(1)?

One process, one worker: each sample is one ``claimer.claim(1)`` call timed with
``perf_counter`` (the whole store call: pool checkout, the statement, the commit, the
Claim objects). The queue is drained (no re-enqueue), so each claim also has to step
over the index entries its predecessors deleted, as a busy queue does. 20 claims warm
up first and are not counted; then ``--claims`` (200) samples.

Queued entries: 1,000 versus 1,000,000 (``--quick``: 100,000). ``tasks`` holds the same
rows in both (1,000,000 + a few, bulk-loaded once with INSERT ... SELECT over
generate_series, every column copied from a template task the store made), so only the
queue length changes: the 1,000 case is a big history with a short queue, as in
production. Entries are loaded straight into ``queue_entries`` (FIFO = series order),
then VACUUM ANALYZE.

Cases, each at both sizes:

- single:       ``claimer(w, ["c"])``, all entries in ``c``.
- strict 3q:    ``claimer(w, ["a", "b", "c"])``, strict priority, ``a`` and ``b`` empty.
- round robin:  ``claimer(w, ["c", "d", "e"], order=ROUND_ROBIN)``, entries spread evenly.
- ceiling:      the hand-written single-queue claim (psycopg, autocommit, one
                statement) on the same data: the database's share of a claim.

Printed: median (and p90) per case and size, and the ratio long/short. Target: < 2.
``--explain`` also prints EXPLAIN (ANALYZE, BUFFERS) of the store's own claim statement
(captured from a real call) on the long queue, rolled back.

Run: ``python benchmarks/claim_latency.py [--quick] [--explain]`` with
``CLEARQ_BENCH_POSTGRES_URL`` naming the server (a database is created and dropped).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import psycopg
from common import (
    CEILING_CLAIM,
    banner,
    bench_database,
    ensure_queues,
    machine_note,
    median,
    open_store,
    percentile,
    store_dsn,
    table,
    task_copy_columns,
    template_task,
)
from sqlalchemy import event

from clearq.models import ClaimOrder
from clearq.scheduler import Store

QUEUES = ("a", "b", "c", "d", "e")
WARMUP = 20
CASES = ("single", "strict 3q (2 empty)", "round robin 3q", "ceiling (psycopg)")


# --------------------------------------------------------------------------- loading


def load_tasks(store: Store, n: int) -> None:
    """Bulk-load ``n`` queued tasks (no entries yet) and a table numbering them 1..n."""
    template = template_task(store)
    qid = store.queues.get("c").id
    cols, exprs = task_copy_columns(
        {
            "id": "b.id",
            "name": "'lat-' || b.g",
            "status": "'queued'",
            "queue_id": str(qid),
            "queued_at": "now()",
        }
    )
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bench_ids AS"
            " SELECT g, gen_random_uuid() AS id FROM generate_series(1, %s) g",
            (n,),
        )
        conn.execute("ALTER TABLE bench_ids ADD PRIMARY KEY (g)")
        conn.execute(
            f"INSERT INTO tasks ({cols}) SELECT {exprs} FROM bench_ids b, tasks t WHERE t.id = %s",
            (template,),
        )
        conn.execute("VACUUM ANALYZE tasks")


def load_entries(store: Store, n: int, queues: tuple[str, ...]) -> None:
    """Replace every queue entry with ``n`` entries spread round robin over ``queues``."""
    ids = [store.queues.get(q).id for q in queues]
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        conn.execute("TRUNCATE queue_entries")
        conn.execute(
            "INSERT INTO queue_entries (queue_id, task_id, priority, enqueued_at)"
            " SELECT (%s::int[])[1 + g %% %s], id, 0, now() FROM bench_ids"
            " WHERE g <= %s ORDER BY g",
            (ids, len(ids), n),
        )
        conn.execute("VACUUM ANALYZE queue_entries")
        conn.execute("VACUUM ANALYZE tasks")


# --------------------------------------------------------------------------- timing


def time_calls(call: Callable[[], Any], samples: int) -> list[float]:
    """Warm up, then the duration of each of ``samples`` calls (each must claim one)."""
    for _ in range(WARMUP):
        call()
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        got = call()
        out.append(time.perf_counter() - start)
        if not got:
            raise RuntimeError("the queue ran dry: load more entries than warmup + samples")
    return out


def time_store(store: Store, queues: list[str], order: ClaimOrder, samples: int) -> list[float]:
    """Latency of ``claim(1)`` by a fresh claimer over ``queues``."""
    claimer = store.claimer("bench:lat", queues, order=order)
    return time_calls(lambda: claimer.claim(1), samples)


def time_ceiling(store: Store, samples: int) -> list[float]:
    """Latency of the hand-written claim statement on queue ``c``."""
    qid = store.queues.get("c").id
    params = {"qid": qid, "n": 1, "worker": "bench:ceiling", "lease": 600.0}
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        return time_calls(lambda: conn.execute(CEILING_CLAIM, params).fetchall(), samples)


def measure(store: Store, n: int, samples: int) -> dict[str, list[float]]:
    """Every case at queue length ``n``; entries are reloaded before each."""
    out: dict[str, list[float]] = {}
    load_entries(store, n, ("c",))
    out[CASES[0]] = time_store(store, ["c"], ClaimOrder.STRICT, samples)
    load_entries(store, n, ("c",))
    out[CASES[1]] = time_store(store, ["a", "b", "c"], ClaimOrder.STRICT, samples)
    load_entries(store, n, ("c", "d", "e"))
    out[CASES[2]] = time_store(store, ["c", "d", "e"], ClaimOrder.ROUND_ROBIN, samples)
    load_entries(store, n, ("c",))
    out[CASES[3]] = time_ceiling(store, samples)
    return out


def explain_claim(store: Store, queues: list[str], order: ClaimOrder) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement a real claim sends, rolled back."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    event.listen(store.db.engine, "before_cursor_execute", capture)
    try:
        store.claimer("bench:explain", queues, order=order).claim(1)
    finally:
        event.remove(store.db.engine, "before_cursor_execute", capture)
    statement, params = next((s, p) for s, p in captured if "SKIP LOCKED" in s)
    with psycopg.connect(store_dsn(store)) as conn:
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params).fetchall()
        conn.rollback()
    return "\n".join(r[0] for r in rows)


# --------------------------------------------------------------------------- main


def main() -> None:
    """Load once, measure both sizes, print the table (and plans with --explain)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 instead of 1,000,000")
    parser.add_argument("--claims", type=int, default=200, help="timed claims per case")
    parser.add_argument("--explain", action="store_true", help="print the claim's plans")
    args = parser.parse_args()
    small, big = 1_000, 100_000 if args.quick else 1_000_000
    if small < 3 * (WARMUP + args.claims):
        small = 3 * (WARMUP + args.claims)
    print(machine_note())
    with bench_database("latency") as url:
        store = open_store(url)
        ensure_queues(store, *QUEUES)
        start = time.monotonic()
        load_tasks(store, big)
        print(f"loaded {big:,} tasks in {time.monotonic() - start:.0f} s", flush=True)
        results = {n: measure(store, n, args.claims) for n in (small, big)}
        banner(f"claim(1) latency, {args.claims} claims each, milliseconds")
        rows = []
        for case in CASES:
            a, b = results[small][case], results[big][case]
            ratio = median(b) / median(a)
            rows.append(
                [
                    case,
                    median(a) * 1e3,
                    percentile(a, 90) * 1e3,
                    median(b) * 1e3,
                    percentile(b, 90) * 1e3,
                    ratio,
                    "ok" if ratio < 2 else "MISSED",
                ]
            )
        print(
            table(
                [
                    "case",
                    f"{small:,} p50",
                    "p90",
                    f"{big:,} p50",
                    "p90",
                    "ratio p50",
                    "target < 2",
                ],
                rows,
            )
        )
        if args.explain:
            for queues, order, layout in (
                (["c"], ClaimOrder.STRICT, ("c",)),
                (["a", "b", "c"], ClaimOrder.STRICT, ("c",)),
                (["c", "d", "e"], ClaimOrder.ROUND_ROBIN, ("c", "d", "e")),
            ):
                load_entries(store, big, layout)
                banner(f"EXPLAIN ANALYZE, {big:,} entries, {order.value} over {queues}")
                print(explain_claim(store, queues, order))
        store.close()
    print(f"\n{machine_note()}")


if __name__ == "__main__":
    main()
