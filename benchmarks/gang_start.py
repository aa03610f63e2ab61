"""Gang start latency: enqueue -> every rank of an N-node task running its code.

For SQLite and PostgreSQL, with 3 idle ``clearq agent --skip-env`` processes serving one
queue: a task whose first line writes the time is enqueued with ``nodes=2`` and
``nodes=3``; measured, enqueue -> the task is ``running`` (the last rank joined, on the
database's clock) and enqueue -> the last rank's first line. Baseline, same run and same
agents: the same task with ``nodes=1`` (an ordinary claim).

    python benchmarks/gang_start.py [--samples 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common import bench_database, open_store, table

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store

CLEARQ = Path(sys.executable).with_name("clearq")
AGENTS = 3
FIRST_LINE = (
    "import os, sys, time\n"
    "open(sys.argv[1] + '-' + os.environ.get('RANK', '0'), 'w').write(f'{time.time()}')\n"
)
WAIT_SECONDS = 120


@contextmanager
def agents(url: str, home: Path) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=url, CLEARQ_HOME=str(home))
    procs = [
        subprocess.Popen(
            [str(CLEARQ), "agent", "-q", "q", "--skip-env", "--name", f"bench{i}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(AGENTS)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=60)


def sample(store: Store, folder: Path, nodes: int, i: int) -> tuple[float, float]:
    mark = folder / f"n{nodes}-{i}"
    script = Script(source=FIRST_LINE, entry_point="first.py", arguments=(str(mark),))
    task_id = store.tasks.create(TaskSpec(project="bench", name="gang", script=script)).id
    enqueued = time.time()
    store.queues.enqueue(task_id, "q", nodes=nodes)
    deadline = time.monotonic() + WAIT_SECONDS
    files = [Path(f"{mark}-{r}") for r in range(nodes)]
    while not all(f.exists() and f.read_text() for f in files):
        if time.monotonic() > deadline:
            raise SystemExit(f"a {nodes}-node task did not start: {store.tasks.get(task_id)}")
        time.sleep(0.01)
    last = max(float(f.read_text()) for f in files)
    while (task := store.tasks.get(task_id)).status is not TaskStatus.COMPLETED:
        if time.monotonic() > deadline:
            raise SystemExit(f"the task did not complete: {task.status_reason}")
        time.sleep(0.05)
    assert task.started_at is not None
    return task.started_at.timestamp() - enqueued, last - enqueued


def measure(url: str, samples: int) -> dict[int, list[tuple[float, float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = open_store(url)
        store.queues.create("q")
        found: dict[int, list[tuple[float, float]]] = {1: [], 2: [], 3: []}
        with agents(url, folder / "home"):
            sample(store, folder, 1, -1)  # warm-up: the agents are up and idle
            for i in range(samples):
                for nodes in (1, 2, 3):
                    found[nodes].append(sample(store, folder, nodes, i))
        store.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"SQLite": measure(f"sqlite:///{tmp}/bench.db", args.samples)}
    with bench_database("gangs") as url:
        runs["PostgreSQL"] = measure(url, args.samples)
    for store_name, found in runs.items():
        for nodes, values in found.items():
            label = f"{store_name}, nodes={nodes}" + (" (baseline)" if nodes == 1 else "")
            running = sorted(v[0] for v in values)
            code = sorted(v[1] for v in values)
            rows.append([label, *spread(running), *spread(code)])
    print(f"{args.samples} samples each, {AGENTS} idle agents; load: {os.getloadavg()[0]:.2f}")
    heads = ["seconds", "running min", "med", "max", "last rank's code min", "med", "max"]
    print(table(heads, rows))


def spread(values: list[float]) -> list[float]:
    return [values[0], values[len(values) // 2], values[-1]]


if __name__ == "__main__":
    main()
