"""Idle-agent wake-up latency: enqueue -> NOTIFY -> a listening worker has claimed the task.

A listener process does what an idle agent does: it blocks in
``store.listen([ENQUEUE_CHANNEL]).wait(...)`` and, as soon as that returns, calls
``claimer.claim(1)`` (then finishes the task, off the clock, and waits again). The main
process enqueues one task at a time with ``store.queues.enqueue`` (the NOTIFY is sent in
the enqueue transaction), waits until the listener reports the claim, pauses a random
5-25 ms so the listener is back in ``wait``, and enqueues the next.

Stamps cross processes, so both sides use ``time.monotonic()`` (CLOCK_MONOTONIC, one
clock for the whole machine on Linux). Per sample:

- ``commit -> claimed``: the enqueue transaction's COMMIT is sent (stamped by a
  SQLAlchemy ``commit`` event, just before the driver sends it) -> the listener's
  ``claim`` has returned the task. The headline figure: it includes the commit itself
  (WAL flush), the notification, the wake-up and the claim.
- ``call -> claimed``: the enqueue call started -> claim returned (adds the enqueue's
  own statements before the commit).
- ``commit -> woken``: COMMIT sent -> the listener's ``wait`` returned.

Why not from "enqueue returned": on a machine with few cores the woken listener and
its backend take the CPUs as soon as the commit lands, so the enqueuing process gets to
stamp its return late, often after the claim; that stamp understates the latency.

The listener's connection is idle only 5-25 ms between samples, so its claim does not
include the liveness ping the store sends on a connection idle for more than a second
(one more round trip, ~0.1 ms here) that an agent idle for minutes would pay.

Baseline in the same run: a bare psycopg LISTEN/NOTIFY round trip between two processes
(``SELECT pg_notify(...)`` sent in autocommit, so statement and commit go together ->
the listener's ``notifies()`` yields); there is no claim, "claimed" is "received", and
"commit" and "call" are both the moment the statement is sent. Reference only, not
measured: ClearML's agent polls its queues every 5 s, so a task waits uniformly 0-5 s
for a poll (p50 2.5 s, p99 4.95 s) before its claim even starts.

Run: ``python benchmarks/wake_latency.py [--quick] [--samples N]`` with
``CLEARQ_BENCH_POSTGRES_URL`` naming the server (a database is created and dropped).
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

import psycopg
from common import (
    banner,
    bench_database,
    ensure_queues,
    machine_note,
    median,
    open_store,
    percentile,
    run_processes_async,
    store_dsn,
    table,
)
from sqlalchemy import event

from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import ENQUEUE_CHANNEL

QUEUE = "wake"
BARE_CHANNEL = "bench_wake"
CLEARML_POLL_SECONDS = 5.0
WAIT_TIMEOUT = 30.0


# --------------------------------------------------------------------------- listeners


def store_listener(barrier: Any, out: Any, url: str, samples: int) -> None:
    """An idle agent: wait for a hint, claim at once, report, finish the task."""
    store = open_store(url)
    claimer = store.claimer("bench:listener", [QUEUE])
    claimer.claim(1)  # warms the connection and the statement cache
    with store.listen([ENQUEUE_CHANNEL]) as listener:
        barrier.wait()
        got = 0
        while got < samples:
            listener.wait(WAIT_TIMEOUT)
            woken = time.monotonic()
            claims = claimer.claim(1)
            claimed = time.monotonic()
            for claim in claims:
                out.put((str(claim.task_id), woken, claimed))
                store.leases.finish(claim.fence, TaskStatus.COMPLETED)
                got += 1
    store.close()


def bare_listener(barrier: Any, out: Any, dsn: str, samples: int) -> None:
    """LISTEN on a plain psycopg connection; report each notification as it arrives."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"LISTEN {BARE_CHANNEL}")
        barrier.wait()
        got = 0
        while got < samples:
            for note in conn.notifies(timeout=WAIT_TIMEOUT, stop_after=1):
                now = time.monotonic()
                out.put((note.payload, now, now))
                got += 1


# --------------------------------------------------------------------------- senders


def _pause() -> None:
    time.sleep(random.uniform(0.005, 0.025))


def measure_store(url: str, samples: int) -> dict[str, list[float]]:
    """Enqueue ``samples`` drafts one at a time; stamps of each enqueue and its claim."""
    store = open_store(url)
    ensure_queues(store, QUEUE)
    drafts = [
        store.tasks.create(TaskSpec(project="bench", name=f"wake-{i}")).id for i in range(samples)
    ]
    stamps: dict[str, list[float]] = {"from_commit": [], "from_call": [], "woken": []}
    commits: list[float] = []
    event.listen(store.db.engine, "commit", lambda _conn: commits.append(time.monotonic()))
    with run_processes_async(store_listener, (url, samples)) as out:
        for task_id in drafts:
            _pause()
            called = time.monotonic()
            store.queues.enqueue(task_id, QUEUE)
            committed = commits[-1]  # the enqueue's one transaction
            if committed < called:
                raise RuntimeError("the enqueue committed no transaction")
            claimed_id, woken, claimed = out.get(timeout=WAIT_TIMEOUT * 2)
            if claimed_id != str(task_id):
                raise RuntimeError(f"listener claimed {claimed_id}, expected {task_id}")
            stamps["from_commit"].append(claimed - committed)
            stamps["from_call"].append(claimed - called)
            stamps["woken"].append(woken - committed)
    store.close()
    return stamps


def measure_bare(url: str, samples: int) -> dict[str, list[float]]:
    """The same loop with a bare NOTIFY and a bare LISTEN."""
    with open_store(url) as store:
        dsn = store_dsn(store)
    stamps: dict[str, list[float]] = {"from_commit": [], "from_call": [], "woken": []}
    with (
        psycopg.connect(dsn, autocommit=True) as conn,
        run_processes_async(bare_listener, (dsn, samples)) as out,
    ):
        for i in range(samples):
            _pause()
            called = committed = time.monotonic()
            conn.execute("SELECT pg_notify(%s, %s)", (BARE_CHANNEL, str(i)))
            payload, woken, received = out.get(timeout=WAIT_TIMEOUT * 2)
            if payload != str(i):
                raise RuntimeError(f"listener got {payload}, expected {i}")
            stamps["from_commit"].append(received - committed)
            stamps["from_call"].append(received - called)
            stamps["woken"].append(woken - committed)
    return stamps


# --------------------------------------------------------------------------- main


def ms(seconds: float) -> float:
    """Seconds to milliseconds."""
    return seconds * 1000.0


def row(name: str, stamps: dict[str, list[float]]) -> list[Any]:
    """One table row: p50/p99 of each stamp, in ms."""
    cells: list[Any] = [name]
    for key in ("from_commit", "from_call", "woken"):
        values = stamps[key]
        cells += [ms(median(values)), ms(percentile(values, 99))]
    return cells


def main() -> None:
    """Measure the store's wake-up, then the bare baseline, in one fresh database."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="60 samples")
    parser.add_argument("--samples", type=int, help="samples per side (default 300)")
    args = parser.parse_args()
    samples = args.samples or (60 if args.quick else 300)
    print(machine_note())
    with bench_database("wake") as url:
        banner(f"wake-up latency, {samples} samples each, milliseconds")
        bare = measure_bare(url, samples)
        store = measure_store(url, samples)
    poll = CLEARML_POLL_SECONDS
    reference = ["ClearML 5 s poll (reference, not measured)", ms(poll / 2), ms(poll * 0.99)]
    reference += ["", "", "", ""]
    print(
        table(
            [
                "",
                "commit->claimed p50",
                "p99",
                "call->claimed p50",
                "p99",
                "commit->woken p50",
                "p99",
            ],
            [
                row("store: listen().wait + claim(1)", store),
                row("bare psycopg LISTEN/NOTIFY", bare),
                reference,
            ],
        )
    )
    s50, b50 = median(store["from_commit"]), median(bare["from_commit"])
    print(
        f"store commit->claimed p50 / bare NOTIFY sent->received p50: {s50 / b50:.1f}x;"
        f" 5 s poll p50 / store p50: {poll / 2 / s50:,.0f}x"
    )
    print(f"\n{machine_note()}")


if __name__ == "__main__":
    main()
