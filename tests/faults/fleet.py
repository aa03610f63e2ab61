"""Real ``clearq agent`` processes on one database, the tasks they run, and their end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests import forkserver
from tests.gitrepo import published

CLEARQ = Path(sys.executable).with_name("clearq")
LEASE_SECONDS = 5.0
"""Short leases keep the suite quick: an agent gives a task up 3.75 s after its last renewal."""
WAIT_SECONDS = 90.0

JOB = """
import json, os, subprocess, sys, time
from clearq import Task

task = Task.init()
params = task.connect({"sleep": 0.0, "marks": ""})
attempt = int(os.environ["CLEARQ_ATTEMPT"])
path = os.path.join(params["marks"], os.environ["CLEARQ_TASK_ID"] + ".jsonl")

def mark(kind):
    line = {"attempt": attempt, "pid": os.getpid(), "kind": kind, "t": time.monotonic()}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\\n")

mark("start")
print(f"attempt {attempt} starts", flush=True)
# A child of the task's own, marking too: it must end with the attempt, as the task does.
child = subprocess.Popen([sys.executable, "-c", CHILD, path, str(attempt)])
until = time.monotonic() + float(params["sleep"])
while time.monotonic() < until:
    time.sleep(0.2)
    mark("alive")
child.kill()
child.wait()
task.get_logger().report_scalar("phase", "end", attempt, 0)
task.flush()
mark("end")
"""

CHILD = """
import json, os, sys, time
path, attempt = sys.argv[1], int(sys.argv[2])
while True:
    line = {"attempt": attempt, "pid": os.getpid(), "kind": "child", "t": time.monotonic()}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\\n")
    time.sleep(0.2)
"""

JOB = JOB.replace("CHILD,", f"{CHILD!r},", 1)


class Fleet:
    """Agents serving queue ``q`` of one database, started and stopped by a test."""

    def __init__(self, url: str, home: Path, *, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.home = home
        self.marks = home / "marks"
        self.marks.mkdir(parents=True, exist_ok=True)
        self.logs = home / "agent-logs"
        self.logs.mkdir(exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        base.update(
            CLEARQ_DATABASE_URL=url,
            CLEARQ_HOME=str(home / "clearq"),
            CLEARQ_ALLOW_LOCAL_REPOSITORIES="1",
            CLEARQ_LEASE_SECONDS=str(LEASE_SECONDS),
            CLEARQ_DB_CONNECT_TIMEOUT_SECONDS="2",
            CLEARQ_DB_KEEPALIVE_SECONDS="2",
            CLEARQ_DB_TCP_USER_TIMEOUT_SECONDS="5",
            # A frozen agent's open transaction must not hide its tasks from the reaper.
            CLEARQ_DB_IDLE_IN_TRANSACTION_SECONDS="2",
            **(env or {}),
        )
        self.env = base
        self.agents: list[subprocess.Popen[bytes]] = []
        self._repo = published(home, {"job.py": JOB}, message="fault job")

    def start(
        self, count: int, *, env: dict[str, str] | None = None
    ) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` agents (with ``env`` on top of the fleet's settings)."""
        started = []
        for _ in range(count):
            index = len(self.agents)
            with (self.logs / f"agent-{index}.log").open("wb") as log:
                proc = forkserver.spawn(
                    [str(CLEARQ), "agent", "--skip-env", "-q", "q", *_flags(index)],
                    env={**self.env, **(env or {})},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.agents.append(proc)
            started.append(proc)
        return started

    def wait_serving(self, timeout: float = WAIT_SECONDS) -> None:
        """Wait until every agent started says it serves (faults hit running agents)."""
        deadline = time.monotonic() + timeout
        for i in range(len(self.agents)):
            while "clearq agent: serving " not in self.log(i):
                assert self.agents[i].poll() is None, self.log(i)
                assert time.monotonic() < deadline, f"agent {i} never served: {self.log(i)}"
                time.sleep(0.1)

    def log(self, index: int) -> str:
        """What agent ``index`` printed."""
        return (self.logs / f"agent-{index}.log").read_text(errors="replace")

    def enqueue(
        self, store: Store, count: int, *, sleep: float, max_attempts: int = 6
    ) -> list[uuid.UUID]:
        """``count`` tasks of ``sleep`` seconds each in queue ``q``."""
        code = Script(
            repository=str(self._repo.origin), commit=self._repo.commit, entry_point="job.py"
        )
        ids = []
        for i in range(count):
            spec = TaskSpec(
                project="faults",
                name=f"job{i}",
                script=code,
                parameters={"General/sleep": str(sleep), "General/marks": str(self.marks)},
                max_attempts=max_attempts,
            )
            task_id = store.tasks.create(spec).id
            store.queues.enqueue(task_id, "q")
            ids.append(task_id)
        return ids

    def alive(self) -> list[int]:
        """Indexes of the agents still running."""
        return [i for i, p in enumerate(self.agents) if p.poll() is None]

    def stop(self) -> None:
        """SIGTERM every agent (SIGCONT first, for a stopped one), SIGKILL what lingers."""
        for proc in self.agents:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.agents:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _flags(index: int) -> list[str]:
    return ["--name", f"a{index}", "--grace", "2", "--stop-grace", "1"]


def poll(store: Store, what: Callable[[Store], bool], *, timeout: float = WAIT_SECONDS) -> float:
    """Wait until ``what(store)`` (store errors count as not yet); seconds it took."""
    started = time.monotonic()
    while True:
        try:
            if what(store):
                return time.monotonic() - started
        except Exception:  # the database may be down on purpose: ask again
            pass
        assert time.monotonic() - started < timeout, f"not within {timeout:g} s: {what.__doc__}"
        time.sleep(0.1)


def count(store: Store, ids: Sequence[uuid.UUID], status: TaskStatus) -> int:
    """How many of ``ids`` are ``status``."""
    return sum(store.tasks.get(t).status is status for t in ids)


def all_done(ids: Sequence[uuid.UUID]) -> Callable[[Store], bool]:
    def done(store: Store) -> bool:
        """every task ended"""
        return all(
            store.tasks.get(t).status
            not in (TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.CREATED)
            for t in ids
        )

    return done


def some_running(ids: Sequence[uuid.UUID], at_least: int = 1) -> Callable[[Store], bool]:
    def running(store: Store) -> bool:
        """tasks are running"""
        return count(store, ids, TaskStatus.RUNNING) >= at_least

    return running


def completed_more_than(ids: Sequence[uuid.UUID], before: int) -> Callable[[Store], bool]:
    def more(store: Store) -> bool:
        """the fleet completed a task again"""
        return count(store, ids, TaskStatus.COMPLETED) > before

    return more
