"""What an agent adds between enqueue and a task's own code, and what it costs idle.

For SQLite and PostgreSQL: a running ``clearq agent`` serves a queue; the task is a
script in a git repository (a local bare repo as origin) whose first line writes the
time. After warm-up runs (the env built, the repository mirrored), each sample enqueues
the task once more (a fresh clone of it) and measures enqueue -> that first line.
Baseline, same run: starting the same interpreter on a one-line script (Popen -> first
line), the floor of running Python at all.

Then the agent's own CPU (its process only, read from /proc) while idle, and while a
task runs (streaming logs, renewing leases, sampling the machine), as % of one core.

Targets: enqueue -> code under 0.5 s on both databases; idle under 1% of a core.
Reference: a ClearML agent polls its queues every 5 s at best, then copies a cached venv.

    python benchmarks/agent_overhead.py [--samples 10] [--idle-seconds 10]
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

from common import bench_database, median, open_store, percentile, process_cpu, table

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store

CLEARQ = Path(sys.executable).with_name("clearq")
FIRST_LINE = "import sys, time; open(sys.argv[1], 'a').write(f'{time.time()}\\n')\n"
SLEEPER = FIRST_LINE + "time.sleep(float(sys.argv[2]))\n"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def make_repo(root: Path) -> tuple[Path, str]:
    origin, work = root / "origin.git", root / "work"
    git(root, "init", "-q", "--bare", str(origin))
    git(root, "clone", "-q", str(origin), str(work))
    (work / "job.py").write_text(SLEEPER)
    git(work, "add", ".")
    git(work, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "job")
    git(work, "push", "-q", "origin", "HEAD")
    return origin, git(work, "rev-parse", "HEAD")


def enqueue_job(store: Store, repo: tuple[Path, str], marks: Path, sleep: float) -> object:
    origin, commit = repo
    script = Script(
        repository=str(origin),
        commit=commit,
        entry_point="job.py",
        arguments=(str(marks), str(sleep)),
    )
    task = store.tasks.create(TaskSpec(project="bench", name="job", script=script))
    store.queues.enqueue(task.id, "bench")
    return task.id


def lines(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def wait_done(store: Store, task_id: object) -> None:
    deadline = time.monotonic() + 300
    while store.tasks.get(task_id).status not in (  # type: ignore[arg-type]
        TaskStatus.COMPLETED,
        TaskStatus.FAILED,
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"task {task_id} did not end")
        time.sleep(0.05)
    status = store.tasks.get(task_id)  # type: ignore[arg-type]
    if status.status is not TaskStatus.COMPLETED:
        raise SystemExit(f"task failed: {status.status_reason}")


@contextmanager
def agent(url: str, home: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=url, CLEARQ_HOME=str(home))
    proc = subprocess.Popen(
        [str(CLEARQ), "agent", "-q", "bench", "--allow-local-repositories"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def enqueue_to_code(store: Store, repo: tuple[Path, str], marks: Path, samples: int) -> list[float]:
    for _ in range(2):  # warm-up: env built, repository mirrored
        wait_done(store, enqueue_job(store, repo, marks, 0))
    latencies = []
    for _ in range(samples):
        seen = len(lines(marks))
        start = time.time()
        task_id = enqueue_job(store, repo, marks, 0)
        while len(lines(marks)) == seen:
            time.sleep(0.002)
        latencies.append(lines(marks)[-1] - start)
        wait_done(store, task_id)
    return latencies


def python_floor(marks: Path, samples: int) -> list[float]:
    script = marks.with_name("floor.py")
    script.write_text(FIRST_LINE)
    out = []
    for _ in range(samples):
        seen = len(lines(marks))
        start = time.time()
        subprocess.run([sys.executable, str(script), str(marks)], check=True)
        assert len(lines(marks)) == seen + 1
        out.append(lines(marks)[-1] - start)
    return out


def agent_cpu(
    proc: subprocess.Popen[bytes], seconds: float, store: Store, repo: tuple[Path, str], marks: Path
) -> tuple[float, float]:
    def used() -> float:
        cpu = process_cpu(proc.pid)
        assert cpu is not None
        return cpu

    time.sleep(2)  # let the last run's writes settle
    before = used()
    time.sleep(seconds)
    idle = (used() - before) / seconds * 100
    task_id = enqueue_job(store, repo, marks, seconds + 2)
    seen = len(lines(marks))
    while len(lines(marks)) == seen:
        time.sleep(0.01)
    before = used()
    time.sleep(seconds)
    busy = (used() - before) / seconds * 100
    wait_done(store, task_id)
    return idle, busy


def measure(url: str, root: Path, args: argparse.Namespace) -> dict[str, float]:
    store = open_store(url)
    store.queues.create("bench")
    repo = make_repo(root)
    marks = root / "marks.txt"
    with agent(url, root / "home") as proc:
        latencies = enqueue_to_code(store, repo, marks, args.samples)
        idle, busy = agent_cpu(proc, args.idle_seconds, store, repo, marks)
    store.close()
    return {
        "p50": median(latencies) * 1000,
        "p90": percentile(latencies, 90) * 1000,
        "idle": idle,
        "busy": busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        floor = python_floor(root / "floor-marks.txt", args.samples)
        sqlite_root = root / "sqlite"
        sqlite_root.mkdir()
        results["sqlite"] = measure(f"sqlite:///{sqlite_root / 'clearq.db'}", sqlite_root, args)
        pg_root = root / "postgres"
        pg_root.mkdir()
        with bench_database("agent") as url:
            results["postgres"] = measure(url, pg_root, args)
    floor_ms = median(floor) * 1000
    rows = [
        [
            name,
            f"{r['p50']:.0f}",
            f"{r['p90']:.0f}",
            f"{r['p50'] / floor_ms:.1f}",
            f"{r['idle']:.2f}",
            f"{r['busy']:.2f}",
        ]
        for name, r in results.items()
    ]
    rows.append(
        ["python floor", f"{floor_ms:.0f}", f"{percentile(floor, 90) * 1000:.0f}", "1.0", "", ""]
    )
    print(f"enqueue -> the task's first line, {args.samples} samples (ms); agent CPU (% of a core)")
    print(table(["store", "p50 ms", "p90 ms", "x floor", "idle %", "busy %"], rows))
    worst = max(r["p90"] for r in results.values())
    idle = max(r["idle"] for r in results.values())
    verdict = "meets" if worst < 500 and idle < 1 else "MISSES"
    print(f"worst p90 {worst:.0f} ms (target < 500), idle {idle:.2f}% (target < 1%): {verdict}")


if __name__ == "__main__":
    main()
