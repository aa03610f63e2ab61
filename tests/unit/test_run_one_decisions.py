"""``clearq task run ID``'s decisions (``runtime.runone.TaskRunner``), on the in-memory store.

The claim of one named task, what each way its run ends leaves in the store and the
exit code that says it, a preemption from outside, a stop request passed on by the
heartbeat, and a lease taken away. The executor is a fake that ends the run as told;
the store is ``clearq.testing``'s twin (``tests/contract`` holds it to the real store's
``claim_task``). The real command is tested in ``tests/acceptance``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.errors import InvalidInput
from clearq.models import Claim, TaskSpec, TaskStatus
from clearq.runtime.executor import Control, Outcome
from clearq.runtime.exits import OnceExit
from clearq.runtime.runone import TaskRunner
from clearq.testing import MemoryStore

Run = Callable[[Claim, Control], Outcome]


class FakeExecutor:
    """Ends the run the way ``run`` says."""

    def __init__(self, run: Run) -> None:
        self._run = run

    def run(self, claim: Claim, control: Control, gpus: tuple[str, ...] | None) -> Outcome:
        return self._run(claim, control)


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    twin = MemoryStore(settings=Settings(home=tmp_path / "home", lease_seconds=0.6))
    twin.queues.create("q")
    return twin


def _queued(store: MemoryStore, **spec: Any) -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="p", name="t", **spec)).id
    store.queues.enqueue(task_id, "q")
    return task_id


def _runner(store: MemoryStore, run: Run) -> TaskRunner:
    return TaskRunner(store, FakeExecutor(run), worker="here:run-1")  # type: ignore[arg-type]


def _until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_a_completed_run_is_recorded_and_exits_zero(store: MemoryStore) -> None:
    task_id = _queued(store)
    end = _runner(store, lambda c, _: Outcome(TaskStatus.COMPLETED, 0)).run(task_id)
    assert (end.exit_code, end.recorded) == (OnceExit.COMPLETED, True)
    task = store.tasks.get(task_id)
    assert (task.status, task.worker, task.attempt) == (TaskStatus.COMPLETED, "here:run-1", 1)
    assert store.workers.list() == []  # its worker row went with it


def test_a_task_that_is_not_queued_is_refused_before_anything_runs(store: MemoryStore) -> None:
    draft = store.tasks.create(TaskSpec(project="p", name="t")).id
    ran: list[Claim] = []

    def run(claim: Claim, control: Control) -> Outcome:
        ran.append(claim)
        return Outcome(TaskStatus.COMPLETED, 0)

    with pytest.raises(InvalidInput, match="not queued: enqueue it first"):
        _runner(store, run).run(draft)
    assert ran == []
    assert store.workers.list(include_gone=True) == []


def test_a_failed_run_exits_three_and_an_executor_crash_fails_the_task(
    store: MemoryStore,
) -> None:
    failing = _queued(store)
    end = _runner(store, lambda c, _: Outcome(TaskStatus.FAILED, 2, "exit code 2")).run(failing)
    assert end.exit_code == OnceExit.FAILED
    assert store.tasks.get(failing).status_reason == "exit code 2"

    def boom(claim: Claim, control: Control) -> Outcome:
        raise RuntimeError("no disk left")

    crashing = _queued(store)
    assert _runner(store, boom).run(crashing).exit_code == OnceExit.FAILED
    assert store.tasks.get(crashing).status_reason == "runner error: RuntimeError: no disk left"


def test_a_preemption_from_outside_requeues_without_spending_an_attempt(
    store: MemoryStore,
) -> None:
    task_id = _queued(store, max_attempts=1)
    runner: TaskRunner

    def killed_by_slurm(claim: Claim, control: Control) -> Outcome:
        runner.preempt("slurm preempted the job")
        assert control.requeue_reason == "slurm preempted the job"
        return Outcome(TaskStatus.FAILED, 143, "killed by SIGTERM")  # the job's signal

    runner = _runner(store, killed_by_slurm)
    end = runner.run(task_id)
    assert end.exit_code == OnceExit.REQUEUED
    task = store.tasks.get(task_id)
    assert task.status is TaskStatus.QUEUED  # back in line, its one attempt unspent
    assert store.claim_task("again", task_id).attempt == 2


def test_a_stop_request_reaches_the_run_through_the_heartbeat(store: MemoryStore) -> None:
    task_id = _queued(store)

    def until_stopped(claim: Claim, control: Control) -> Outcome:
        store.leases.request_stop(claim.task_id, reason="enough")
        _until(lambda: control.stop_reason is not None)
        return Outcome(TaskStatus.STOPPED, -15, control.stop_reason or "")

    end = _runner(store, until_stopped).run(task_id)
    assert end.exit_code == OnceExit.STOPPED
    task = store.tasks.get(task_id)
    assert (task.status, task.status_reason) == (TaskStatus.STOPPED, "stop requested: enough")


def test_a_lease_taken_away_is_lost_and_records_nothing(store: MemoryStore) -> None:
    task_id = _queued(store)

    def taken_over(claim: Claim, control: Control) -> Outcome:
        store.leases.request_stop(claim.task_id, reason="ended from the page", force=True)
        _until(lambda: control.lost)
        return Outcome(None, reason="lease lost")

    end = _runner(store, taken_over).run(task_id)
    assert (end.exit_code, end.recorded) == (OnceExit.LOST, False)
    task = store.tasks.get(task_id)
    assert (task.status, task.status_reason) == (
        TaskStatus.STOPPED,
        "stop requested: ended from the page (forced)",
    )
