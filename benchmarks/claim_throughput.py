"""Claim + complete throughput of the clearq store, against baselines measured in the same run.

Part 1 (one task per claim), for 1, 2, 4 and 8 worker processes draining one shared,
pre-filled queue:

- store:   ``Store.claimer(worker, [queue]).claim(1)``, then
           ``store.leases.finish(claim.fence, TaskStatus.COMPLETED)`` for the task.
- ceiling: a minimal psycopg loop on the same schema, autocommit: the same SKIP LOCKED
           claim as one statement (lock the first entry, delete it, set the task running
           with worker/attempt/lease), then one fenced completing UPDATE. No pool, no
           explicit BEGIN/COMMIT, no read-back of the finished task.

Printed: tasks/s of each and store/ceiling. Target: >= 0.8 at 4 workers.

Part 2 (batch mode, 10 per claim), same worker counts as part 1's first and third:

- store:    ``claim(10)``, then ``finish`` each of the 10 (ten transactions).
- ceiling:  the hand-written claim with LIMIT 10, then ten completing UPDATEs.
- pgqueuer: its own consumer, ``QueueManager.run(batch_size=10, mode=drain)`` with a
            no-op entrypoint, over a psycopg async connection, on its own freshly
            installed schema in its own database (default durability: logged tables).
            Per job pgqueuer does 1/10 of a dequeue statement (UPDATE ... SET
            status='picked' over a SKIP LOCKED pick of 10), an asyncio task per job with
            a heartbeat context, and 1/10 of a buffered ack statement (its
            JobStatusLogBuffer flushes every 10 results or 0.1 s: one statement deletes
            the jobs from the queue table and inserts them into its log table). Its
            statement-level trigger also sends a NOTIFY for each dequeue and ack.
            A job counts as done when the ack statement holding it returns.

  So the comparison is not like for like: clearq commits every completion on its own
  (and reads the finished task back), pgqueuer acknowledges ten per statement; that is
  each library's ordinary way to consume. Printed: jobs/s and store/pgqueuer.

Throughput is measured over the common window: from the moment the last worker started
(all start together on a barrier) to the first worker's last completion; the count is
the completions inside that window. Every run starts on a freshly filled, vacuumed queue.

Run: ``python benchmarks/claim_throughput.py [--quick] [--tasks N] [--workers 1,2,4,8]``
with ``CLEARQ_BENCH_POSTGRES_URL`` naming the server (a database is created and
dropped). Needs ``pgqueuer`` (``pip install -e '.[bench]'``); without it part 2 prints
why and skips pgqueuer.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import timedelta
from typing import Any

import psycopg
from common import (
    CEILING_CLAIM,
    CEILING_COMPLETE,
    WorkerResult,
    Window,
    banner,
    bench_database,
    common_window,
    ensure_queues,
    fill_queue,
    machine_note,
    open_store,
    reset_tasks,
    run_processes,
    store_dsn,
    table,
)

from clearq.models import TaskStatus

QUEUE = "bench"
PGQ_ENTRYPOINT = "bench"
LEASE_SECONDS = 600.0


# --------------------------------------------------------------------------- workers


def store_worker(barrier: Any, url: str, worker: str, batch: int) -> WorkerResult:
    """Drain the queue through the store: claim ``batch``, finish each, until empty."""
    store = open_store(url)
    claimer = store.claimer(worker, [QUEUE])
    store.queues.get(QUEUE)  # opens the pooled connection before the clock starts
    barrier.wait()
    result = WorkerResult(start=time.monotonic())
    while claims := claimer.claim(batch):
        for claim in claims:
            store.leases.finish(claim.fence, TaskStatus.COMPLETED)
            result.done.append(time.monotonic())
    store.close()
    return result


def ceiling_worker(barrier: Any, dsn: str, worker: str, batch: int) -> WorkerResult:
    """Drain the queue with two hand-written autocommit statements per task."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        qid = conn.execute("SELECT id FROM queues WHERE name = %s", (QUEUE,)).fetchone()[0]
        claim = {"qid": qid, "n": batch, "worker": worker, "lease": LEASE_SECONDS}
        barrier.wait()
        result = WorkerResult(start=time.monotonic())
        while rows := conn.execute(CEILING_CLAIM, claim).fetchall():
            for task_id, attempt in rows:
                conn.execute(CEILING_COMPLETE, {"id": task_id, "attempt": attempt, "worker": worker})
                result.done.append(time.monotonic())
    return result


def pgqueuer_worker(barrier: Any, dsn: str, batch: int) -> WorkerResult:
    """Drain pgqueuer's queue with its own QueueManager (asyncio, in this process)."""
    return asyncio.run(_pgqueuer_consume(barrier, dsn, batch))


async def _pgqueuer_consume(barrier: Any, dsn: str, batch: int) -> WorkerResult:
    from pgqueuer import PsycopgDriver, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    done: list[float] = []

    class TimedQueries(Queries):
        """pgqueuer's queries, noting when each batched ack statement has returned."""

        async def log_jobs(self, job_status: Any) -> None:
            await super().log_jobs(job_status)
            now = time.monotonic()
            done.extend([now] * len(job_status))

    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    try:
        qm = QueueManager(TimedQueries(PsycopgDriver(conn)))

        @qm.entrypoint(PGQ_ENTRYPOINT)
        async def _noop(job: Any) -> None:
            return None

        await qm.verify_structure()
        barrier.wait()
        start = time.monotonic()
        await qm.run(
            batch_size=batch,
            mode=QueueExecutionMode.drain,
            dequeue_timeout=timedelta(seconds=1),
        )
    finally:
        await conn.close()
    return WorkerResult(start=start, done=done)


# --------------------------------------------------------------------------- runs


def run_store(url: str, n_tasks: int, workers: int, batch: int) -> Window:
    """Fill the queue, drain it with ``workers`` store processes; check all completed."""
    store = open_store(url)
    reset_tasks(store)
    fill_queue(store, QUEUE, n_tasks)
    results = run_processes(
        store_worker, [(url, f"bench:w{i}", batch) for i in range(workers)]
    )
    _check_all_completed(store, n_tasks)
    store.close()
    return common_window(results)


def run_ceiling(url: str, n_tasks: int, workers: int, batch: int) -> Window:
    """Fill the queue, drain it with ``workers`` hand-written psycopg processes."""
    store = open_store(url)
    reset_tasks(store)
    fill_queue(store, QUEUE, n_tasks)
    dsn = store_dsn(store)
    results = run_processes(
        ceiling_worker, [(dsn, f"bench:c{i}", batch) for i in range(workers)]
    )
    _check_all_completed(store, n_tasks)
    store.close()
    return common_window(results)


def _check_all_completed(store: Any, n_tasks: int) -> None:
    with psycopg.connect(store_dsn(store)) as conn:
        done, left = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'),"
            " (SELECT count(*) FROM queue_entries) FROM tasks"
        ).fetchone()
    if done != n_tasks or left != 0:
        raise RuntimeError(f"expected {n_tasks} completed and 0 queued, got {done} and {left}")


async def _pgqueuer_prepare(dsn: str, n_tasks: int, install: bool) -> None:
    from pgqueuer import Queries

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        queries = Queries.from_psycopg_connection(conn)
        if install:
            await queries.install()
        await queries.clear_queue()
        await queries.clear_queue_log()
        await queries.clear_statistics_log()
        await queries.enqueue(
            [PGQ_ENTRYPOINT] * n_tasks, [None] * n_tasks, [0] * n_tasks
        )
        await conn.execute("VACUUM ANALYZE")


async def _pgqueuer_check(dsn: str, n_tasks: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM pgqueuer),"
            " (SELECT count(*) FROM pgqueuer_log WHERE status = 'successful')"
        )
        left, ok = await cur.fetchone()  # type: ignore[misc]
    if left != 0 or ok != n_tasks:
        raise RuntimeError(f"pgqueuer: expected 0 left and {n_tasks} successful, got {left}, {ok}")


def run_pgqueuer(dsn: str, n_tasks: int, workers: int, batch: int, install: bool) -> Window:
    """Install (once), fill, drain with ``workers`` pgqueuer processes."""
    asyncio.run(_pgqueuer_prepare(dsn, n_tasks, install))
    results = run_processes(pgqueuer_worker, [(dsn, batch) for _ in range(workers)])
    asyncio.run(_pgqueuer_check(dsn, n_tasks))
    return common_window(results)


def pgqueuer_missing() -> str | None:
    """Why pgqueuer cannot run here, or None."""
    try:
        import pgqueuer
    except ImportError as e:
        return f"pgqueuer is not installed ({e}); pip install -e '.[bench]'"
    return None if hasattr(pgqueuer, "QueueManager") else "this pgqueuer has no QueueManager"


# --------------------------------------------------------------------------- main


def ratio(a: float, b: float) -> float:
    """a / b, nan when b is zero."""
    return a / b if b else float("nan")


def part_single(url: str, n_tasks: int, counts: list[int]) -> None:
    """Store vs ceiling, one task per claim, for each worker count."""
    banner(f"claim(1) + finish, {n_tasks} tasks per run, one shared queue")
    rows = []
    for k in counts:
        store = run_store(url, n_tasks, k, 1)
        ceiling = run_ceiling(url, n_tasks, k, 1)
        rows.append(
            [k, store.rate, ceiling.rate, ratio(store.rate, ceiling.rate),
             f"{store.count}/{ceiling.count}"]
        )
        print(f"  {k} worker(s): store {store.rate:,.0f}/s, ceiling {ceiling.rate:,.0f}/s",
              flush=True)
    print(table(["workers", "store/s", "ceiling/s", "store/ceiling", "in window"], rows))
    at4 = [r for r in rows if r[0] == 4]
    if at4:
        verdict = "MET" if at4[0][3] >= 0.8 else "MISSED"
        print(f"target store/ceiling >= 0.80 at 4 workers: {at4[0][3]:.2f} -> {verdict}")


def part_batch(url: str, n_tasks: int, counts: list[int]) -> None:
    """Store vs ceiling vs pgqueuer, ten per claim."""
    banner(f"batch mode: 10 per claim, {n_tasks} tasks per run")
    why_not = pgqueuer_missing()
    if why_not:
        print(f"pgqueuer skipped: {why_not}")
    rows = []
    with bench_database("pgq") as pgq_url:
        for i, k in enumerate(counts):
            store = run_store(url, n_tasks, k, 10)
            ceiling = run_ceiling(url, n_tasks, k, 10)
            pgq = (
                run_pgqueuer(pgq_url, n_tasks, k, 10, install=i == 0)
                if why_not is None
                else Window(0, 0.0, 0)
            )
            rows.append(
                [k, store.rate, ceiling.rate, pgq.rate,
                 ratio(store.rate, ceiling.rate), ratio(store.rate, pgq.rate)]
            )
            print(f"  {k} worker(s): store {store.rate:,.0f}/s, ceiling {ceiling.rate:,.0f}/s,"
                  f" pgqueuer {pgq.rate:,.0f}/s", flush=True)
    print(table(
        ["workers", "store/s", "ceiling/s", "pgqueuer/s", "store/ceiling", "store/pgqueuer"],
        rows,
    ))


def main() -> None:
    """Parse arguments, run both parts in one fresh database, drop it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 tasks per run")
    parser.add_argument("--tasks", type=int, help="tasks per run (default 20,000)")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts, comma separated")
    parser.add_argument("--skip-batch", action="store_true", help="only part 1")
    args = parser.parse_args()
    n_tasks = args.tasks or (3_000 if args.quick else 20_000)
    counts = [int(x) for x in args.workers.split(",")]
    print(machine_note())
    with bench_database("throughput") as url:
        with open_store(url) as store:  # creates the schema
            ensure_queues(store, QUEUE)
        part_single(url, n_tasks, counts)
        if not args.skip_batch:
            part_batch(url, n_tasks, [k for k in (1, 4) if k in counts] or counts[:1])


if __name__ == "__main__":
    main()
