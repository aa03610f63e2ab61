"""PostgreSQL connections per agent: idle, running 1 task, ``--services-mode 8`` running 8.

This counts the backends in ``pg_stat_activity`` on a throwaway database that belong to
one real ``clearq agent --skip-env`` (everything but the benchmark's own connections,
which carry ``application_name=clearq-bench``) while it idles, runs 1 task, and as
``--services-mode 8`` runs 8 tasks at once. Each task reports a scalar every 0.2 s
through its attempt's channel (tasks hold no connection of their own since issue 13)
until the benchmark lets it end. It also counts the sessions the server started while
the 8 tasks ran (``pg_stat_database.sessions``): connections opened and closed again.

Baseline in the same run: the same phases with the agent running an older clearq,
``git archive``'d from this repository (``--baseline``, default the last commit with
two SQLAlchemy pools per store: a transactional one and an autocommit one, 2 + 4 each).
Each tree is measured by this script run again under that tree's clearq (``--tree-run``,
printing JSON), on a database of its own: the two may differ in schema revision.

    python benchmarks/agent_connections.py [--repeat 3] [--baseline REF]

Idle is sampled once the agent has been idle past the pool's ``IDLE_CLOSE_SECONDS``
(a busy spell's extra connection is closed by then); the peak of the samples of each
phase is reported; three repeats give min/median/max.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg
from common import baseline_tree, bench_database, libpq_dsn, open_store, table

from clearq.models import FINAL_STATUSES, Script, TaskSpec
from clearq.scheduler import Store

IDLE_CLOSE_SECONDS = 10.0
"""``clearq.scheduler.pool.IDLE_CLOSE_SECONDS`` (not importable from the baseline tree)."""

CLEARQ = Path(sys.executable).with_name("clearq")
REPO = Path(__file__).resolve().parents[1]
BASELINE = "d3c6cf8"
"""main before the one pool per store (two pools, 2 + 4 connections each)."""
BENCH_APP = "clearq-bench"
TASK = """
import time
from pathlib import Path
from clearq import Task

task = Task.init()
folder = Path(task.connect({"folder": ""})["folder"])
(folder / f"ready-{task.id}").touch()
i = 0
while not (folder / "stop").exists():
    task.get_logger().report_scalar("tick", "n", float(i), i)
    i += 1
    time.sleep(0.2)
"""
IDLE_SAMPLES = 20
BUSY_SAMPLES = 100
SAMPLE_SECONDS = 0.1
WAIT_SECONDS = 120


class Sampler:
    """One connection of the benchmark's own that counts the agent's backends."""

    def __init__(self, url: str) -> None:
        self._database = url.rsplit("/", 1)[1]
        self._conn = psycopg.connect(libpq_dsn(url), autocommit=True, application_name=BENCH_APP)

    def backends(self, *, listening: bool = False) -> int:
        """Connections to the database now but the benchmark's (or only LISTEN sessions)."""
        where = " AND query ILIKE 'LISTEN%%'" if listening else ""
        row = self._conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name IS DISTINCT FROM %s" + where,
            (self._database, BENCH_APP),
        ).fetchone()
        return int(row[0]) if row else 0

    def sessions(self) -> int:
        """Sessions the server has started on the database so far."""
        row = self._conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (self._database,)
        ).fetchone()
        return int(row[0]) if row else 0

    def peak(self, samples: int) -> int:
        found = 0
        for _ in range(samples):
            found = max(found, self.backends())
            time.sleep(SAMPLE_SECONDS)
        return found

    def close(self) -> None:
        self._conn.close()


def wait_until(what: str, check: Callable[[], object]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def ended(store: Store, task_id: uuid.UUID) -> bool:
    return store.tasks.get(task_id).status in FINAL_STATUSES


def run_phase(
    store: Store, url: str, tree: Path, count: int, agent_args: Sequence[str]
) -> dict[str, int]:
    """Idle peak, LISTEN sessions, peak with ``count`` tasks and sessions opened meanwhile."""
    sampler = Sampler(url)
    folder = Path(tempfile.mkdtemp(prefix="conn-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(
        CLEARQ_DATABASE_URL=url,
        CLEARQ_HOME=tempfile.mkdtemp(prefix="conn-home-"),
        PYTHONPATH=str(tree),
    )
    agent = subprocess.Popen(
        [str(CLEARQ), "agent", "--skip-env", "-q", "bench", *agent_args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until("the agent to register", lambda: store.workers.list())
        time.sleep(IDLE_CLOSE_SECONDS + 2.0)  # idle for good, past a start's busy spell
        figures = {"idle": sampler.peak(IDLE_SAMPLES), "listen": sampler.backends(listening=True)}
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
        before = sampler.sessions()
        figures["busy"] = sampler.peak(BUSY_SAMPLES)
        figures["opened"] = sampler.sessions() - before
        (folder / "stop").touch()
        wait_until("the tasks to end", lambda: all(ended(store, t) for t in ids))
        agent.terminate()
        agent.wait(timeout=WAIT_SECONDS)
    finally:
        agent.kill()
        agent.wait()
        sampler.close()
    return figures


def measure_tree(url: str, tree: Path) -> dict[str, int]:
    """The figures of an agent running the clearq in ``tree``."""
    store = open_store(f"{url}?application_name={BENCH_APP}")
    try:
        if not any(q.name == "bench" for q in store.queues.list()):
            store.queues.create("bench")
        one = run_phase(store, url, tree, 1, [])
        eight = run_phase(store, url, tree, 8, ["--services-mode", "8"])
    finally:
        store.close()
    return {
        "idle": one["idle"],
        "  of which LISTEN": one["listen"],
        "1 task": one["busy"],
        "services 8, idle": eight["idle"],
        "services 8, 8 tasks": eight["busy"],
        "  sessions opened in 10 s of it": eight["opened"],
    }


def tree_run() -> None:
    """One tree's figures as JSON, with whatever clearq this process imports."""
    with bench_database("conn") as url:
        print(json.dumps(measure_tree(url, Path(os.environ["PYTHONPATH"]))))


def measure_in(tree: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, __file__, "--tree-run"],
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{done.stderr}")
    figures: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return figures


def measure(baseline: Path) -> dict[str, int]:
    after, before = measure_in(REPO), measure_in(baseline)
    figures = {f"now: {k}": v for k, v in after.items()}
    figures.update({f"baseline: {k}": v for k, v in before.items()})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", default=BASELINE, help="git ref of the baseline clearq")
    parser.add_argument("--tree-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tree_run:
        tree_run()
        return
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    tree = baseline_tree(args.baseline, prefix="conn-baseline-")
    runs = [measure(tree) for _ in range(args.repeat)]
    rows = []
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        rows.append([key, str(values[0]), str(values[len(values) // 2]), str(values[-1])])
    print(table(["agent", "min", "median", "max"], rows))
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    worst = max(r["now: services 8, 8 tasks"] for r in runs)
    print(
        f"500 agents at up to {worst} connections each: {500 * worst} server connections "
        f"directly; max_connections=100 fits {100 // max(worst, 1)} such agents. One of "
        "each agent's is its LISTEN session, which transaction pooling cannot share"
    )


if __name__ == "__main__":
    main()
