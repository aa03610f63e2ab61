"""An operator's drain and pause, and claim windows, as the agent obeys them.

The agent runs on the in-memory store with a fake executor (as in
``test_agent_decisions.py``); the real processes and databases are in
``tests/acceptance/test_workers_control.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.errors import InvalidInput, NotFound, StoreUnavailable
from clearq.models import Claim, TaskSpec, TaskStatus, WorkerCommand
from clearq.runtime.agent import Agent, AgentOptions
from clearq.runtime.claimgate import ClaimGate, Gate
from clearq.runtime.executor import Control, Outcome
from clearq.scheduler.claim_windows import ClaimWindows
from clearq.scheduler.workers import pick_workers
from clearq.testing import MemoryStore

WAIT = 60.0


class BlockingExecutor:
    """Each run waits for ``release`` (the first one signals ``started``)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.ran: list[uuid.UUID] = []

    def run(self, claim: Claim, control: Control, gpus: tuple[str, ...] | None) -> Outcome:
        self.ran.append(claim.task_id)
        self.started.set()
        assert self.release.wait(WAIT), "the test never released the run"
        return Outcome(TaskStatus.COMPLETED, 0)


class CountingReads:
    """Counts how often the agent read its command (a proof it went round its loop)."""

    def __init__(self, store: MemoryStore) -> None:
        self.count = 0
        self._read = store.workers.command

        def counted(ids: list[str]) -> WorkerCommand | None:
            self.count += 1
            return self._read(ids)

        store.workers.command = counted  # type: ignore[method-assign]

    def wait_for_more(self, than: int) -> None:
        deadline = time.monotonic() + WAIT
        while self.count <= than:
            assert time.monotonic() < deadline, "the agent stopped reading its command"
            time.sleep(0.05)


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    twin = MemoryStore(settings=Settings(home=tmp_path / "home", lease_seconds=5))
    twin.queues.create("q")
    return twin


def _queued(store: MemoryStore, name: str = "t") -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="p", name=name)).id
    store.queues.enqueue(task_id, "q")
    return task_id


class Running:
    """An agent serving in a thread; ``code`` once it has returned."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.agent.run()

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.02)

    def join(self) -> int | None:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the agent did not exit"
        return self.code


@pytest.fixture
def serve(store: MemoryStore) -> Iterator[Callable[..., tuple[Running, BlockingExecutor]]]:
    started: list[Running] = []

    def start(**options: object) -> tuple[Running, BlockingExecutor]:
        executor = BlockingExecutor()
        agent = Agent(store, executor, AgentOptions(queues=("q",), name="a", **options))  # type: ignore[arg-type]
        started.append(Running(agent))
        return started[-1], executor

    yield start
    for running in started:
        running.agent.request_stop()
        running.agent.request_stop()
        running.thread.join(WAIT)


def test_a_drain_lets_the_running_task_finish_claims_nothing_more_and_exits_zero(
    store: MemoryStore, serve: Callable[..., tuple[Running, BlockingExecutor]]
) -> None:
    first, second = _queued(store, "first"), _queued(store, "second")
    running, executor = serve()
    assert executor.started.wait(WAIT)
    assert store.workers.set_command("a", WorkerCommand.DRAIN) == [running.agent.worker]
    executor.release.set()  # the drain was asked while it ran: read before the next claim
    assert running.join() == 0
    assert executor.ran == [first]
    assert store.tasks.get(first).status is TaskStatus.COMPLETED
    assert store.tasks.get(second).status is TaskStatus.QUEUED
    assert store.workers.list() == []


def test_a_paused_agent_claims_nothing_until_resumed(
    store: MemoryStore, serve: Callable[..., tuple[Running, BlockingExecutor]]
) -> None:
    reads = CountingReads(store)
    running, executor = serve()
    running.wait_until(lambda: bool(store.workers.list()), "registered")
    store.workers.set_command(running.agent.worker, WorkerCommand.PAUSE)
    running.wait_until(lambda: running.agent._gate.gate is Gate.PAUSED, "paused")
    task_id = _queued(store)
    reads.wait_for_more(than=reads.count + 1)  # round its loop, still paused
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED
    assert store.workers.get(running.agent.worker).command is WorkerCommand.PAUSE
    store.workers.set_command("a", None)
    assert executor.started.wait(WAIT)
    assert executor.ran == [task_id]
    executor.release.set()


def test_outside_its_windows_an_agent_claims_nothing(
    store: MemoryStore, serve: Callable[..., tuple[Running, BlockingExecutor]]
) -> None:
    reads = CountingReads(store)
    never = ClaimWindows.parse([], ["00:00-24:00"])
    running, _ = serve(windows=never)
    running.wait_until(lambda: running.agent._gate.gate is Gate.CLOSED, "closed")
    task_id = _queued(store)
    reads.wait_for_more(than=reads.count + 1)
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_reads_when_due_or_woken_and_says_each_change_once() -> None:
    answers: list[WorkerCommand | None] = [None]
    said: list[str] = []
    reads: list[int] = []
    clock = FakeClock()

    def read() -> WorkerCommand | None:
        reads.append(1)
        return answers[-1]

    gate = ClaimGate(read, say=said.append, poll_seconds=10, clock=clock)
    assert gate.check() is Gate.OPEN
    assert len(reads) == 1
    answers.append(WorkerCommand.PAUSE)
    assert gate.check() is Gate.OPEN
    assert len(reads) == 1
    clock.now = 10
    assert gate.check() is Gate.PAUSED
    assert len(reads) == 2
    assert gate.check() is Gate.PAUSED
    assert len(reads) == 2
    answers.append(WorkerCommand.DRAIN)
    gate.wake()
    assert gate.check() is Gate.DRAINING
    assert len(reads) == 3
    answers.append(None)
    gate.wake()
    assert gate.check() is Gate.OPEN
    assert [s.split(" ")[0] for s in said] == ["paused", "draining", "resumed"]


def test_a_gate_that_cannot_read_keeps_its_answer_and_reads_again() -> None:
    clock = FakeClock()
    fail = [False]

    def read() -> WorkerCommand | None:
        if fail[0]:
            raise StoreUnavailable("gone")
        return WorkerCommand.PAUSE

    gate = ClaimGate(read, say=lambda _: None, poll_seconds=1, clock=clock)
    assert gate.check() is Gate.PAUSED
    fail[0] = True
    gate.wake()
    with pytest.raises(StoreUnavailable):
        gate.check()
    assert gate.gate is Gate.PAUSED
    fail[0] = False
    assert gate.check() is Gate.PAUSED  # still due: read again


def test_the_gate_closes_and_opens_with_its_windows() -> None:
    moments = [datetime(2026, 12, 1, 12, 0, tzinfo=UTC)]
    said: list[str] = []
    windows = ClaimWindows.parse(["mon-fri 20:00-08:00 UTC"])
    gate = ClaimGate(lambda: None, say=said.append, windows=windows, now=lambda: moments[-1])
    assert gate.check() is Gate.CLOSED
    moments.append(datetime(2026, 12, 1, 21, 0, tzinfo=UTC))
    assert gate.check() is Gate.OPEN
    assert said == [
        "outside its claim windows (uptime mon-fri 20:00-08:00 UTC): claiming nothing",
        "inside its claim windows (uptime mon-fri 20:00-08:00 UTC): claiming again",
    ]


def test_a_name_stands_for_an_agent_its_sub_workers_or_a_host() -> None:
    ids = ["h1:a", "h1:b:1", "h1:b:2", "h2:c", "h2:a"]
    assert pick_workers("h1:b", ids) == ["h1:b:1", "h1:b:2"]
    assert pick_workers("h1:b:2", ids) == ["h1:b:2"]
    assert pick_workers("h2", ids) == ["h2:a", "h2:c"]
    assert pick_workers("b", ids) == ["h1:b:1", "h1:b:2"]
    assert pick_workers("c", ids) == ["h2:c"]
    with pytest.raises(InvalidInput, match="several hosts: give one of h1:a, h2:a"):
        pick_workers("a", ids)
    with pytest.raises(NotFound, match="no worker 'zz' is registered"):
        pick_workers("zz", ids)
