"""Claim latency of a fair-share queue with 100 users and 100,000 queued tasks.

Beside it, in the same run and on the same database, the baseline: the same ``claim(1)``
on a queue without fair share holding as many entries. One process, one worker; each
sample is one ``claimer.claim(1)`` call timed with ``perf_counter`` (the whole store call).
Each claimed task is completed right after its sample, outside the timing (so its run is
charged to its user, as in production, and the running set stays small). The two cases
take turns in rounds of 25 claims, so that both see the same machine and cache.

Loading (bulk INSERT ... SELECT over generate_series, every column copied from a template
task): ``--tasks`` (100,000) queued tasks in each queue, made by ``--users`` (100) users
in turn (u0, u1, ... as ``created_by``); the fair queue's entries carry their owners and
every user has a usage row with a random past usage (0 to 10 GPU-hours), as after a week
of use. Then VACUUM ANALYZE.

Printed: median and p90 per case, and the ratio fair/baseline. Target: the store's claim
target (benchmarks/README.md, claim_latency.py: a claim's cost does not grow with the
queue's length); run it with ``--tasks 2000`` beside the default to compare.

Run: ``python benchmarks/fair_share.py [--tasks N] [--users N] [--claims N]`` with
``CLEARQ_BENCH_POSTGRES_URL`` naming the server (a database is created and dropped).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import psycopg
from common import (
    banner,
    bench_database,
    machine_note,
    median,
    open_store,
    percentile,
    store_dsn,
    table,
    task_copy_columns,
    template_task,
)

from clearq.models import DEFAULT_FAIR_HALF_LIFE, FairShare, TaskStatus
from clearq.scheduler import Store

ROUND = 25
WARMUP = 20


def load(store: Store, queue: str, n: int, users: int, *, fair: bool) -> None:
    """``n`` queued tasks of ``users`` users in ``queue``, with their entries (and owners)."""
    template = template_task(store)
    qid = store.queues.get(queue).id
    cols, exprs = task_copy_columns(
        {
            "id": "gen_random_uuid()",
            "name": f"'{queue}-' || g",
            "status": "'queued'",
            "queue_id": str(qid),
            "queued_at": "now()",
            "created_by": f"'u' || (g %% {users})",
        }
    )
    owner = "t.created_by" if fair else "NULL"
    with psycopg.connect(store_dsn(store), autocommit=True) as conn:
        conn.execute(
            f"WITH new AS (INSERT INTO tasks ({cols}) SELECT {exprs} FROM tasks t, "
            "generate_series(1, %(n)s) g WHERE t.id = %(template)s RETURNING id, name, created_by)"
            f" INSERT INTO queue_entries (queue_id, task_id, priority, enqueued_at, owner)"
            f" SELECT %(qid)s, t.id, 0, now(), {owner} FROM new t"
            " ORDER BY split_part(t.name, '-', 2)::bigint",
            {"n": n, "template": template, "qid": qid},
        )
        if fair:
            conn.execute(
                "INSERT INTO fair_usage (queue_id, owner, score) SELECT %(qid)s, 'u' || u,"
                " ln(1 + random() * 36000) + extract(epoch FROM now()) * ln(2) / %(h)s"
                " FROM generate_series(0, %(users)s - 1) u",
                {"qid": qid, "users": users, "h": DEFAULT_FAIR_HALF_LIFE},
            )
        conn.execute("VACUUM ANALYZE tasks")
        conn.execute("VACUUM ANALYZE queue_entries")
        conn.execute("VACUUM ANALYZE fair_usage")


def sampler(store: Store, queue: str) -> Callable[[], float]:
    """One timed claim(1) from ``queue``; the claimed task is completed untimed."""
    claimer = store.claimer(f"bench:{queue}", [queue])

    def one() -> float:
        start = time.perf_counter()
        got = claimer.claim(1)
        took = time.perf_counter() - start
        if not got:
            raise RuntimeError(f"queue {queue} ran dry: load more tasks")
        store.leases.finish(got[0].fence, TaskStatus.COMPLETED, exit_code=0)
        return took

    return one


def main() -> None:
    """Load both queues, take turns measuring them, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="queued tasks per queue")
    parser.add_argument("--users", type=int, default=100, help="users owning them")
    parser.add_argument("--claims", type=int, default=200, help="timed claims per case")
    args = parser.parse_args()
    print(machine_note())
    with bench_database("fair") as url:
        store = open_store(url)
        store.queues.create("fair", fair_share=FairShare.USER)
        store.queues.create("plain")
        start = time.monotonic()
        load(store, "fair", args.tasks, args.users, fair=True)
        load(store, "plain", args.tasks, args.users, fair=False)
        print(f"loaded 2 x {args.tasks:,} tasks in {time.monotonic() - start:.0f} s", flush=True)
        cases = {
            "baseline (FIFO queue)": sampler(store, "plain"),
            "fair share": sampler(store, "fair"),
        }
        for one in cases.values():
            for _ in range(WARMUP):
                one()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        while len(samples["fair share"]) < args.claims:
            for name, one in cases.items():
                samples[name].extend(one() for _ in range(ROUND))
        served = {t.user for t in store.tasks.list(status=TaskStatus.COMPLETED, limit=10_000)}
        store.close()
    banner(
        f"claim(1) latency, {args.tasks:,} queued, {args.users} users, "
        f"{len(samples['fair share'])} claims each, milliseconds"
    )
    base = median(samples["baseline (FIFO queue)"])
    rows = [
        [name, median(v) * 1000, percentile(v, 90) * 1000, median(v) / base]
        for name, v in samples.items()
    ]
    print(table(["case", "median", "p90", "x baseline"], rows))
    print(f"users served (both queues): {len(served)}")


if __name__ == "__main__":
    main()
