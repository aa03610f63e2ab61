"""``clearq agent`` as a user runs it: real processes, real git, a real store.

These tests use ``--skip-env`` (the agent's own Python) so that they prove the agent's
mechanics quickly; ``test_agent_envs.py`` runs tasks in real, cached environments.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa

from clearq.errors import LeaseLost
from clearq.models import Fence, Script, TaskSpec, TaskStatus
from clearq.runtime.exits import OnceExit
from clearq.scheduler import Store
from clearq.scheduler.schema import task_scalars
from tests.acceptance.conftest import Agents, Cli, read_marks
from tests.gitrepo import published

JOB = """
import json, os, sys, time
from clearq import Task

task = Task.init()
params = task.connect({"sleep": 0.0, "marks": "", "fail": 0})
mark = {
    "name": task.name,
    "attempt": int(os.environ["CLEARQ_ATTEMPT"]),
    "pid": os.getpid(),
    "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "start": time.time(),
}
print(f"{task.name} starts", flush=True)
time.sleep(params["sleep"])
mark["end"] = time.time()
if params["marks"]:
    with open(params["marks"], "a") as f:
        f.write(json.dumps(mark) + "\\n")
task.get_logger().report_scalar("phase", "end", mark["attempt"], 0)
task.flush()
print(f"{task.name} ends", flush=True)
sys.exit(params["fail"])
"""

WAIT_SECONDS = 60


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    """A bare origin holding job.py; returns (origin, commit)."""
    repository = published(tmp_path, {"job.py": JOB}, message="job")
    return repository.origin, repository.commit


def job(
    store: Store,
    repo: tuple[Path, str],
    name: str,
    queue: str | None = None,
    *,
    marks: Path | None = None,
    sleep: float = 0.0,
    fail: int = 0,
    **script: object,
) -> uuid.UUID:
    """Create (and enqueue) a task running job.py from the repo."""
    origin, commit = repo
    fields: dict[str, object] = {"entry_point": "job.py", **script}
    code = Script(repository=str(origin), commit=commit, **fields)  # type: ignore[arg-type]
    parameters = {
        "General/sleep": str(sleep),
        "General/marks": str(marks or ""),
        "General/fail": str(fail),
    }
    task_id = store.tasks.create(
        TaskSpec(project="agent", name=name, script=code, parameters=parameters)
    ).id
    if queue is not None:
        store.queues.enqueue(task_id, queue)
    return task_id


def wait_for(store: Store, task_id: uuid.UUID, statuses: Sequence[TaskStatus]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while (status := store.tasks.get(task_id).status) not in statuses:
        assert time.monotonic() < deadline, f"task {task_id} is still {status}"
        time.sleep(0.1)


def wait_for_log(store: Store, task_id: uuid.UUID, text: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while text not in logs_of(store, task_id):
        assert time.monotonic() < deadline, f"task {task_id} never logged {text!r}"
        time.sleep(0.1)


def started_order(store: Store, ids: Sequence[uuid.UUID]) -> list[str]:
    """Task names in the order their runs started."""
    tasks = [store.tasks.get(i) for i in ids]
    assert all(t.started_at is not None for t in tasks)
    return [t.name for t in sorted(tasks, key=lambda t: (t.started_at, t.name))]


def logs_of(store: Store, task_id: uuid.UUID) -> str:
    return "".join(line.text for line in store.outputs.logs(task_id))


def test_strict_order_drains_the_first_queue_first(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    for q in ("a", "b"):
        store.queues.create(q)
    ids = [job(store, repo, n, n[0]) for n in ("a1", "b1", "a2", "b2")]
    agents.run("-q", "a", "-q", "b", "--order", "strict", "--idle-exit", "1")
    assert started_order(store, ids) == ["a1", "a2", "b1", "b2"]
    assert all(store.tasks.get(i).status is TaskStatus.COMPLETED for i in ids)


def test_round_robin_takes_turns(store: Store, repo: tuple[Path, str], agents: Agents) -> None:
    for q in ("a", "b"):
        store.queues.create(q)
    ids = [job(store, repo, n, n[0]) for n in ("a1", "a2", "b1", "b2")]
    agents.run("-q", "a", "-q", "b", "--order", "round-robin", "--idle-exit", "1")
    assert started_order(store, ids) == ["a1", "b1", "a2", "b2"]


def test_a_run_reports_its_logs_scalars_and_runtime(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "reporter", "q")
    out = agents.run("-q", "q", "--once")
    assert f"task {task_id} completed" in out
    task = store.tasks.get(task_id)
    assert (task.status, task.exit_code, task.attempt) == (TaskStatus.COMPLETED, 0, 1)
    log = logs_of(store, task_id)
    assert "reporter starts\nreporter ends\n" in log
    assert "attempt 1 of task" in log  # the agent's own line
    assert [(s.title, s.series, s.last) for s in store.outputs.summary(task_id)] == [
        ("phase", "end", 1.0)
    ]
    assert task.runtime["env"]["key"] == "system"
    assert task.runtime["worker"] == task.worker


def test_once_runs_a_task_longer_than_the_grace_to_its_end(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "longer than grace", "q", sleep=3)
    out = agents.run("-q", "q", "--once", "--grace", "0.5")
    assert f"task {task_id} completed" in out
    task = store.tasks.get(task_id)
    assert (task.status, task.attempt) == (TaskStatus.COMPLETED, 1)
    assert "longer than grace ends" in logs_of(store, task_id)


@pytest.mark.parametrize(
    ("fail", "code", "status"),
    [(3, OnceExit.FAILED, TaskStatus.FAILED), (0, OnceExit.COMPLETED, TaskStatus.COMPLETED)],
)
def test_once_exits_with_how_its_task_ended(
    store: Store,
    repo: tuple[Path, str],
    agents: Agents,
    fail: int,
    code: OnceExit,
    status: TaskStatus,
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "ends", "q", fail=fail)
    agents.run("-q", "q", "--once", code=code)
    assert store.tasks.get(task_id).status is status


def test_once_without_a_task_says_so_in_its_exit_status(store: Store, agents: Agents) -> None:
    store.queues.create("q")
    out = agents.run("-q", "q", "--once", "--idle-exit", "0.5", code=OnceExit.NO_TASK)
    assert "idle for 0.5 s: exiting" in out


def test_sigterm_to_a_once_agent_requeues_its_task(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "long", "q", sleep=120)
    agent = agents.start("-q", "q", "--once", "--grace", "0.5", "--stop-grace", "2")
    wait_for_log(store, task_id, "long starts")
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=WAIT_SECONDS) == OnceExit.REQUEUED
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED


def test_abort_stops_a_running_task(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "long", "q", sleep=120)
    agent = agents.start("-q", "q", "--idle-exit", "3", "--stop-grace", "2")
    wait_for_log(store, task_id, "long starts")
    assert "stop requested" in cli.run("task", "abort", str(task_id)).stdout
    wait_for(store, task_id, [TaskStatus.STOPPED])
    task = store.tasks.get(task_id)
    assert task.status_reason == "stop requested"
    assert agent.wait(timeout=WAIT_SECONDS) == 0  # the agent went on, then idled out


def test_a_task_past_its_maximum_run_time_is_stopped(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "slow", sleep=120)
    store.tasks.edit(task_id, max_run_seconds=1.5)
    store.queues.enqueue(task_id, "q")
    agents.run("-q", "q", "--once", "--stop-grace", "2", code=OnceExit.STOPPED)
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.STOPPED
    assert task.status_reason == "ran longer than its maximum of 1.5 s"


def test_sigterm_requeues_the_running_task_at_the_front(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    running = job(store, repo, "long", "q", sleep=120)
    agent = agents.start("-q", "q", "--grace", "0.5", "--stop-grace", "2")
    wait_for(store, running, [TaskStatus.RUNNING])
    waiting = job(store, repo, "next", "q")
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=WAIT_SECONDS) == 0
    task = store.tasks.get(running)
    assert task.status is TaskStatus.QUEUED
    assert task.finished_at is None
    assert [e.task_id for e in store.queues.entries("q")] == [running, waiting]
    assert store.workers.list() == []


def test_a_killed_agents_task_is_completed_once_by_another(
    store: Store, repo: tuple[Path, str], agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks.jsonl"
    # Long enough that the orphan still runs when the second agent's reaper (which on
    # SQLite watches the renewals stand still for a lease first) takes its attempt away.
    task_id = job(store, repo, "survivor", "q", marks=marks, sleep=8)
    short = {"CLEARQ_LEASE_SECONDS": "1.5"}
    first = agents.start("-q", "q", "--name", "first", env=short)
    wait_for_log(store, task_id, "survivor starts")
    old = store.tasks.get(task_id)
    first.kill()  # SIGKILL: no chance to requeue or finish anything
    first.wait()
    out = agents.run("-q", "q", "--name", "second", "--once", env=short)
    assert f"task {task_id} completed" in out
    task = store.tasks.get(task_id)
    assert (task.status, task.attempt, task.worker) == (TaskStatus.COMPLETED, 2, task.worker)
    assert task.worker is not None
    assert task.worker.endswith(":second")
    # The first attempt's process died with its agent: only the second one ended.
    assert [m["attempt"] for m in read_marks(marks)] == [2]
    with store.db.read() as conn:
        ends = (
            conn.execute(
                sa.select(task_scalars.c.attempt).where(
                    task_scalars.c.task_id == task_id,
                    task_scalars.c.title == "phase",  # the agent's monitor samples aside
                )
            )
            .scalars()
            .all()
        )
    assert ends == [2]
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED
    with pytest.raises(LeaseLost):  # the first agent's fence, were it to write now
        store.outputs.append_logs(
            Fence(task_id=task_id, attempt=old.attempt, worker=old.worker), [("stdout", "late")]
        )


def test_services_mode_runs_tasks_at_once_as_sub_workers(
    store: Store, repo: tuple[Path, str], agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("services")
    marks = tmp_path / "marks.jsonl"
    ids = [job(store, repo, f"s{i}", "services", marks=marks, sleep=2) for i in range(3)]
    agents.run("-q", "services", "--services-mode", "3", "--idle-exit", "1")
    runs = read_marks(marks)
    assert len(runs) == 3
    assert max(r["start"] for r in runs) < min(r["end"] for r in runs)  # type: ignore[type-var]
    workers = {store.tasks.get(i).worker for i in ids}
    assert len(workers) == 3


def test_dynamic_gpus_never_hand_one_device_to_two_tasks(
    store: Store, repo: tuple[Path, str], agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("two", gpus=2)
    store.queues.create("one", gpus=1)
    marks = tmp_path / "marks.jsonl"
    for i in range(2):
        job(store, repo, f"two{i}", "two", marks=marks, sleep=1)
    for i in range(3):
        job(store, repo, f"one{i}", "one", marks=marks, sleep=1)
    agents.run(
        "-q",
        "two",
        "-q",
        "one",
        "--gpus",
        "0,1,2",
        "--unchecked-gpus",  # this machine may have no GPU: the devices are only names here
        "--dynamic-gpus",
        "--services-mode",
        "3",
        "--idle-exit",
        "1",
    )
    runs = read_marks(marks)
    assert len(runs) == 5
    for run in runs:
        devices = str(run["gpus"]).split(",")
        assert len(devices) == (2 if str(run["name"]).startswith("two") else 1)
    for a in runs:
        for b in runs:
            overlap = a["start"] < b["end"] and b["start"] < a["end"]  # type: ignore[operator]
            if a is not b and overlap:
                assert not set(str(a["gpus"]).split(",")) & set(str(b["gpus"]).split(","))


def test_bad_tasks_fail_with_their_reason_and_the_agent_goes_on(
    store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    bad_diff = job(
        store, repo, "bad diff", "q", diff="--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n"
    )
    no_entry = job(store, repo, "no entry", "q", entry_point="missing.py")
    commit = repo[1]
    unreachable = store.tasks.create(
        TaskSpec(
            project="agent",
            name="unreachable",
            script=Script(
                repository="https://127.0.0.1:9/nobody/nothing.git",
                commit=commit,
                entry_point="job.py",
            ),
        )
    ).id
    store.queues.enqueue(unreachable, "q")
    failing = job(store, repo, "exits 3", "q", fail=3)
    good = job(store, repo, "good", "q")
    agents.run("-q", "q", "--idle-exit", "1")
    reasons = {
        i: store.tasks.get(i).status_reason for i in (bad_diff, no_entry, unreachable, failing)
    }
    assert all(store.tasks.get(i).status is TaskStatus.FAILED for i in reasons)
    assert reasons[bad_diff].startswith("workspace failed: workspace diff failed")
    assert "missing.py" in reasons[no_entry]
    assert reasons[unreachable].startswith("workspace failed: workspace clone failed")
    assert reasons[failing] == "exited with code 3"
    assert store.tasks.get(good).status is TaskStatus.COMPLETED
    assert "workspace diff failed" in logs_of(store, bad_diff)


def test_workers_and_logs_commands(
    cli: Cli, store: Store, repo: tuple[Path, str], agents: Agents
) -> None:
    store.queues.create("q")
    task_id = job(store, repo, "watched", "q", sleep=6)
    agent = agents.start("-q", "q", "--name", "w1", "--idle-exit", "2")
    wait_for(store, task_id, [TaskStatus.RUNNING])
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        [worker] = cli.json("workers")
        if worker["metrics"] is not None:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert worker["id"].endswith(":w1")
    assert worker["queues"] == ["q"]
    assert worker["tasks"] == [str(task_id)]
    assert worker["metrics"]["metrics"]["memory_total"] > 0
    followed = cli.run("task", "logs", str(task_id), "--follow").stdout
    assert "watched starts\n" in followed
    assert "watched ends\n" in followed
    # The task's own process tree, sampled while it ran (every 5 s).
    monitor = store.outputs.scalars(task_id, title="monitor")
    assert {p.series for p in monitor} == {"cpu_percent", "memory_mb"}
    assert all(p.value > 0 for p in monitor if p.series == "memory_mb")
    assert agent.wait(timeout=WAIT_SECONDS) == 0
    assert cli.json("workers") == []
