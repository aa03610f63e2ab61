"""``clearq task run ID`` and preemption without lost work, as a user runs them.

Real ``clearq`` processes on a real store (both dialects): the named task is claimed out
of its queue; a SIGTERM to the runner or to an agent preempts the task, whose abort
callback saves a checkpoint that the next attempt resumes from, without spending an
attempt.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from clearq.models import HistoryMark, Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests import forkserver
from tests.acceptance.conftest import CLEARQ, Agents, Cli

WAIT_SECONDS = 60

# Counts steps; each step appends "attempt step" to the marks file. With a checkpoint
# hook it saves {"step": n} when stopped and resumes after the last saved step. With
# slow_attempts N, attempts after the N-th take no time per step (a run that waits for an
# outside preemption, then finishes at once).
TRAIN = """
import os, sys, time
from clearq import Task

task = Task.init()
params = task.connect(
    {"steps": 5, "step_seconds": 0.0, "marks": "", "hook": 1, "fail": 0, "slow_attempts": 0}
)
attempt = int(os.environ["CLEARQ_ATTEMPT"])
if params["slow_attempts"] and attempt > params["slow_attempts"]:
    params["step_seconds"] = 0.0
saved = task.get_checkpoint()
state = {"step": saved["step"] if saved else 0}
print(f"attempt {attempt} resumes at step {state['step']} (checkpoint {saved})", flush=True)
if params["hook"]:
    task.register_abort_callback(lambda: task.save_checkpoint({"step": state["step"]}))
print("training", flush=True)
while state["step"] < params["steps"]:
    time.sleep(params["step_seconds"])
    with open(params["marks"], "a") as f:
        f.write(f"{attempt} {state['step']}\\n")
    state["step"] += 1
sys.exit(params["fail"])
"""


def train_task(
    store: Store,
    queue: str | None,
    marks: Path,
    *,
    steps: int = 3,
    step_seconds: float = 0.0,
    hook: bool = True,
    fail: int = 0,
    slow_attempts: int = 0,
) -> uuid.UUID:
    parameters = {
        "General/steps": str(steps),
        "General/step_seconds": str(step_seconds),
        "General/marks": str(marks),
        "General/hook": str(int(hook)),
        "General/fail": str(fail),
        "General/slow_attempts": str(slow_attempts),
    }
    spec = TaskSpec(
        project="preempt",
        name="train",
        script=Script(source=TRAIN, entry_point="train.py"),
        parameters=parameters,
    )
    task_id = store.tasks.create(spec).id
    if queue is not None:
        store.queues.enqueue(task_id, queue)
    return task_id


def start_run(cli: Cli, task_id: uuid.UUID, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(CLEARQ), "task", "run", str(task_id), "--skip-env", *extra],
        env=dict(cli.env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_log(store: Store, task_id: uuid.UUID, text: str, attempt: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not any(text in line.text for line in store.outputs.logs(task_id, attempt=attempt)):
        assert time.monotonic() < deadline, f"task {task_id} never logged {text!r}"
        time.sleep(0.1)


def run_to_end(cli: Cli, *args: str) -> forkserver.Result:
    """``clearq task run`` to a completed task (its diagnostics go to stderr, as an agent's)."""
    result = cli.run(*args, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def steps_done(marks: Path) -> list[tuple[int, int]]:
    pairs = (line.split() for line in marks.read_text().splitlines())
    return [(int(a), int(s)) for a, s in pairs]


def test_run_claims_the_named_task_out_of_its_queue(cli: Cli, store: Store, tmp_path: Path) -> None:
    store.queues.create("q")
    first = train_task(store, "q", tmp_path / "first")
    named = train_task(store, "q", tmp_path / "named")
    result = run_to_end(cli, "task", "run", str(named), "--skip-env", "--name", "runner")
    assert f"task {named} completed" in result.stdout
    task = store.tasks.get(named)
    assert task.status is TaskStatus.COMPLETED
    assert task.worker == f"{socket.gethostname()}:runner"
    assert (task.attempt, task.tries) == (1, 1)
    assert [e.task_id for e in store.queues.entries("q")] == [first]
    assert store.tasks.get(first).status is TaskStatus.QUEUED
    assert steps_done(tmp_path / "named") == [(1, 0), (1, 1), (1, 2)]
    assert store.workers.list() == []


def test_run_exits_with_the_tasks_failure_and_refuses_what_is_not_queued(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    store.queues.create("q")
    failing = train_task(store, "q", tmp_path / "marks", fail=7)
    result = cli.run("task", "run", str(failing), "--skip-env", check=False)
    assert result.returncode == 3
    assert f"task {failing} failed: exited with code 7" in result.stdout
    assert store.tasks.get(failing).exit_code == 7
    again = cli.fails("task", "run", str(failing), "--skip-env")
    assert f"task {failing} is failed, not queued: enqueue it first" in again


def test_sigterm_to_the_runner_preempts_and_the_next_attempt_resumes(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = train_task(store, "q", marks, steps=100, step_seconds=0.05)
    runner = start_run(cli, task_id, "--stop-grace", "30")
    wait_for_log(store, task_id, "training", attempt=1)
    wait_for_marks(marks, 3)
    runner.send_signal(signal.SIGTERM)
    out, err = runner.communicate(timeout=WAIT_SECONDS)
    assert runner.returncode == 5, err
    assert "is queued again: preempted: SIGTERM received by `clearq task run`" in out
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.QUEUED
    assert task.tries == 0  # a preemption spends no attempt
    assert task.status_reason.startswith("requeued after attempt 1: preempted: ")
    assert [e.status for e in store.tasks.history(task_id)][-3:] == [
        TaskStatus.RUNNING,
        HistoryMark.PREEMPTED,
        TaskStatus.QUEUED,
    ]
    saved = last_step(marks) + 1  # the step it was on when the callback ran
    finish = run_to_end(cli, "task", "run", str(task_id), "--skip-env")
    assert f"task {task_id} completed" in finish.stdout
    logs = "".join(line.text for line in store.outputs.logs(task_id))
    assert "attempt 1 resumes at step 0 (checkpoint None)" in logs
    resumed = [s for a, s in steps_done(marks) if a == 2]
    assert resumed[0] in (saved - 1, saved)  # the step in progress is redone, none before
    assert resumed[-1] == 99


def wait_for_marks(marks: Path, count: int) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not marks.exists() or len(marks.read_text().splitlines()) < count:
        assert time.monotonic() < deadline, f"fewer than {count} steps in {marks}"
        time.sleep(0.05)


def last_step(marks: Path) -> int:
    return steps_done(marks)[-1][1]


def test_an_agents_drain_preempts_with_a_checkpoint(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    store.queues.create("q")
    marks = tmp_path / "marks"
    task_id = train_task(store, "q", marks, steps=400, step_seconds=0.05)
    agent = agents.start("-q", "q", "--grace", "0", "--stop-grace", "30")
    wait_for_log(store, task_id, "training", attempt=1)
    wait_for_marks(marks, 3)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=WAIT_SECONDS) == 0
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.QUEUED
    assert task.tries == 0
    assert HistoryMark.PREEMPTED in [e.status for e in store.tasks.history(task_id)]
    assert [a.name for a in store.outputs.artifacts(task_id)] == ["checkpoint"]
