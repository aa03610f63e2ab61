"""How fast a task's process goes when its agent dies, and when its attempt is superseded.

For SQLite and PostgreSQL, with a real ``clearq agent`` and a task that writes its pid
and sleeps:

- agent SIGKILL -> the task process gone (Linux's parent-death signal);
- lease lost -> the superseded process gone: the agent is frozen (SIGSTOP) until its
  lease expires and a reaper requeues the task, then thawed (SIGCONT); measured from the
  thaw (its next heartbeat learns the attempt is no longer its own).

Baseline, same run: SIGKILL of a plain child process -> gone (the floor of noticing a
process end by polling). Target: both under a few seconds (the lease's third, 0.5 s
here, plus the heartbeat period, 1 s at most).

    python benchmarks/agent_death.py [--samples 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from agent_overhead import git
from common import bench_database, median, table

from clearq.config import Settings
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store

CLEARQ = Path(sys.executable).with_name("clearq")
HOLD = (
    "import os, sys, time\n"
    "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
    "time.sleep(float(sys.argv[2]))\n"
)
LEASE = "1.5"
DEADLINE = 60.0


def make_repo(root: Path) -> tuple[Path, str]:
    origin, work = root / "origin.git", root / "work"
    git(root, "init", "-q", "--bare", str(origin))
    git(root, "clone", "-q", str(origin), str(work))
    (work / "hold.py").write_text(HOLD)
    git(work, "add", ".")
    git(work, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "hold")
    git(work, "push", "-q", "origin", "HEAD")
    return origin, git(work, "rev-parse", "HEAD")


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def seconds_to_gone(pid: int) -> float:
    start = time.monotonic()
    until(lambda: not running(pid), f"process {pid} to go")
    return time.monotonic() - start


@contextmanager
def agent(url: str, home: Path, queue: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_DATABASE_URL=url, CLEARQ_HOME=str(home), CLEARQ_LEASE_SECONDS=LEASE)
    argv = [str(CLEARQ), "agent", "-q", queue, "--skip-env", "--allow-local-repositories"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()


def start_task(
    store: Store, repo: tuple[Path, str], pidfile: Path, queue: str
) -> tuple[object, int]:
    pidfile.unlink(missing_ok=True)
    script = Script(
        repository=str(repo[0]),
        commit=repo[1],
        entry_point="hold.py",
        arguments=(str(pidfile), "300"),
    )
    task_id = store.tasks.create(TaskSpec(project="bench", name="hold", script=script)).id
    store.queues.enqueue(task_id, queue)
    until(lambda: pidfile.exists() and pidfile.read_text() != "", "the task to start")
    return task_id, int(pidfile.read_text())


def killed_agent(url: str, root: Path, repo: tuple[Path, str], store: Store, n: int) -> float:
    # Each sample has a queue of its own: what a sample leaves behind is never run again.
    queue = f"killed-{n}"
    store.queues.create(queue)
    with agent(url, root / "home", queue) as proc:
        _, pid = start_task(store, repo, root / "pid", queue)
        proc.kill()
        proc.wait()
        return seconds_to_gone(pid)


def lost_lease(url: str, root: Path, repo: tuple[Path, str], store: Store, n: int) -> float:
    queue = f"lost-{n}"
    store.queues.create(queue)
    with agent(url, root / "home", queue) as proc:
        task_id, pid = start_task(store, repo, root / "pid", queue)
        os.kill(proc.pid, signal.SIGSTOP)

        def requeued() -> bool:
            store.leases.reap()
            return store.tasks.get(task_id).status is not TaskStatus.RUNNING

        until(requeued, "the frozen agent's lease to be reaped")
        os.kill(proc.pid, signal.SIGCONT)
        return seconds_to_gone(pid)


def baseline() -> float:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    proc.kill()
    gone = seconds_to_gone(proc.pid)
    proc.wait()
    return gone


def measure(url: str, samples: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {"baseline": [], "agent SIGKILL": [], "lease lost": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = make_repo(root)
        # The benchmark's own reaper on the agents' lease (SQLite: it watches renewals).
        store = Store(url, settings=Settings(database_url=url, lease_seconds=float(LEASE)))
        try:
            for n in range(samples):
                figures["baseline"].append(baseline())
                figures["agent SIGKILL"].append(killed_agent(url, root, repo, store, n))
                figures["lease lost"].append(lost_lease(url, root, repo, store, n))
        finally:
            store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        with bench_database("death") as pg:
            urls["postgresql"] = pg
            for dialect, url in urls.items():
                for what, values in measure(url, args.samples).items():
                    rows.append(
                        [
                            dialect,
                            what,
                            f"{min(values):.2f}",
                            f"{median(values):.2f}",
                            f"{max(values):.2f}",
                        ]
                    )
    print(table(["database", "seconds to gone", "min", "median", "max"], rows))


if __name__ == "__main__":
    main()
