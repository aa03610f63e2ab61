"""PostgreSQL connections per agent: idle, running 1 task, ``--services-mode 8`` running 8.

Since issue 13 a task under an agent holds no database connection of its own: it reports
through its attempt's channel, and its agent writes with its own pool. This counts the
backends in ``pg_stat_activity`` on a throwaway database (the benchmark's own connection
left out) while a real ``clearq agent --skip-env`` idles, then runs 1 task, then (as
``--services-mode 8``) 8 tasks at once. Each task reports a scalar every 0.2 s (so its
writes go through the channel while the count is sampled) until the benchmark lets it end.

Baseline in the same run: the same 8 tasks on a ``--services-mode 8 --allow-controllers``
agent, each opening the store as a controller does (``Task.get_tasks()``), which is what
every task cost before the channel (its own SQLAlchemy pool to the database).

    python benchmarks/agent_connections.py [--repeat 3]

The peak of 20 samples per phase is reported; three repeats give min/median/max.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import psycopg
from common import bench_database, libpq_dsn, open_store, table

from clearq.models import FINAL_STATUSES, Script, TaskSpec
from clearq.scheduler import Store

CLEARQ = Path(sys.executable).with_name("clearq")
TASK = """
import os, time
from pathlib import Path
from clearq import Task

task = Task.init()
if os.environ.get("CLEARQ_DATABASE_URL"):
    Task.get_tasks(limit=1)  # a controller: its own store, its own pool
folder = Path(task.connect({"folder": ""})["folder"])
(folder / f"ready-{task.id}").touch()
i = 0
while not (folder / "stop").exists():
    task.get_logger().report_scalar("tick", "n", float(i), i)
    i += 1
    time.sleep(0.2)
"""
SAMPLES = 20
WAIT_SECONDS = 120


def backends(dsn: str, database: str, *, listening: bool = False) -> int:
    """Connections to ``database`` now, not counting this one (or only LISTEN sessions)."""
    where = " AND query ILIKE 'LISTEN%%'" if listening else ""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid()" + where,
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def peak(dsn: str, database: str) -> int:
    found = 0
    for _ in range(SAMPLES):
        found = max(found, backends(dsn, database))
        time.sleep(0.1)
    return found


def wait_until(what: str, check: object) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def ended(store: Store, task_id: uuid.UUID) -> bool:
    return store.tasks.get(task_id).status in FINAL_STATUSES


def run_phase(
    store: Store, url: str, home: Path, count: int, agent_args: Sequence[str]
) -> tuple[int, int, int]:
    """(peak connections idle, peak with ``count`` tasks running, LISTEN sessions)."""
    dsn, database = libpq_dsn(url), url.rsplit("/", 1)[1]
    folder = Path(tempfile.mkdtemp(prefix="conn-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=url, CLEARQ_HOME=str(home))
    agent = subprocess.Popen(
        [str(CLEARQ), "agent", "--skip-env", "-q", "bench", *agent_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until("the agent to register", lambda: store.workers.list())
        time.sleep(1.0)  # its first claim attempt and listener are up
        idle = peak(dsn, database)
        listening = backends(dsn, database, listening=True)
        ids = []
        for i in range(count):
            spec = TaskSpec(
                project="bench",
                name=f"t{i}",
                script=Script(source=TASK, entry_point="task.py"),
                parameters={"General/folder": str(folder)},
            )
            ids.append(store.tasks.create(spec).id)
            store.queues.enqueue(ids[-1], "bench")
        wait_until(f"{count} tasks to run", lambda: len(list(folder.glob("ready-*"))) == count)
        busy = peak(dsn, database)
        (folder / "stop").touch()
        wait_until("the tasks to end", lambda: all(ended(store, t) for t in ids))
        agent.terminate()
        agent.wait(timeout=WAIT_SECONDS)
    finally:
        agent.kill()
        agent.wait()
    return idle, busy, listening


def measure() -> dict[str, int]:
    with bench_database("conn") as url:
        store = open_store(url)
        store.queues.create("bench")
        home = Path(tempfile.mkdtemp(prefix="conn-home-"))
        try:
            idle, one, listening = run_phase(store, url, home, 1, [])
            _, eight, _ = run_phase(store, url, home, 8, ["--services-mode", "8"])
            _, before, _ = run_phase(
                store, url, home, 8, ["--services-mode", "8", "--allow-controllers"]
            )
        finally:
            store.close()
    return {
        "idle": idle,
        "  of which LISTEN": listening,
        "1 task": one,
        "services 8, 8 tasks": eight,
        "baseline: 8 tasks with the URL": before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    runs = [measure() for _ in range(args.repeat)]
    rows = []
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        rows.append([key, str(values[0]), str(values[len(values) // 2]), str(values[-1])])
    print(table(["agent", "min", "median", "max"], rows))
    worst = max(r["services 8, 8 tasks"] for r in runs)
    print(
        f"500 agents at up to {worst} connections each: {500 * worst} server connections "
        f"directly; max_connections=100 fits {100 // max(worst, 1)} such agents. One of "
        "each agent's is its LISTEN session, which transaction pooling cannot share: "
        "through pgbouncer the queries share its server pool, and 500 listeners need "
        "500 session connections, so 500 agents on max_connections=100 must go without "
        "LISTEN (polling) or listen through fewer sessions"
    )


if __name__ == "__main__":
    main()
