"""The agent's decisions, on the in-memory store: what it records for each way a run ends.

The executor is a fake that ends each run as told; the store is ``clearq.testing``'s
twin, which passes the same contract as the real one (``tests/contract``). What a real
process, a real venv and a real database add is tested in ``tests/acceptance``.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.errors import StoreError
from clearq.models import Claim, TaskSpec, TaskStatus
from clearq.runtime import agent as agent_module
from clearq.runtime.agent import (
    DUE_SLACK_SECONDS,
    LISTENING_WAIT_SECONDS,
    REAP_MAX_SECONDS,
    Agent,
    AgentOptions,
    reap_interval,
)
from clearq.runtime.executor import Control, Outcome
from clearq.runtime.exits import OnceExit
from clearq.scheduler.notify import ENQUEUE_CHANNEL, Notice, PollingListener
from clearq.testing import MemoryStore

Run = Callable[[Claim, Control], Outcome]


class FakeExecutor:
    """Ends every run the way ``run`` says, and remembers what it was asked to run."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.ran: list[Claim] = []

    def run(self, claim: Claim, control: Control, gpus: tuple[str, ...] | None) -> Outcome:
        self.ran.append(claim)
        return self._run(claim, control)


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    settings = Settings(home=tmp_path / "home", lease_seconds=0.3)
    twin = MemoryStore(settings=settings)
    twin.queues.create("q")
    return twin


def _queued(store: MemoryStore, **spec: object) -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="p", name="t", **spec)).id  # type: ignore[arg-type]
    store.queues.enqueue(task_id, "q")
    return task_id


def _once(store: MemoryStore, run: Run, **options: object) -> tuple[int, FakeExecutor]:
    executor = FakeExecutor(run)
    agent = Agent(store, executor, AgentOptions(queues=("q",), once=True, **options))  # type: ignore[arg-type]
    return agent.run(), executor


def test_a_completed_run_is_recorded_and_once_exits_zero(store: MemoryStore) -> None:
    task_id = _queued(store)
    code, executor = _once(store, lambda c, _: Outcome(TaskStatus.COMPLETED, 0))
    assert code == OnceExit.COMPLETED
    assert [c.task_id for c in executor.ran] == [task_id]
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED
    assert store.workers.list() == []  # unregistered on the way out


def test_an_executor_that_raises_fails_the_task_and_the_agent_lives(store: MemoryStore) -> None:
    task_id = _queued(store)

    def boom(claim: Claim, control: Control) -> Outcome:
        raise RuntimeError("disk on fire")

    code, _ = _once(store, boom)
    task = store.tasks.get(task_id)
    assert code == OnceExit.FAILED
    assert task.status is TaskStatus.FAILED
    assert task.status_reason == "agent error: RuntimeError: disk on fire"


def test_a_requeue_goes_back_unless_an_infrastructure_failure_spent_the_attempts(
    store: MemoryStore,
) -> None:
    again = _queued(store)
    code, _ = _once(store, lambda c, _: Outcome(None, reason="draining", requeue=True))
    assert code == OnceExit.REQUEUED
    assert store.tasks.get(again).status is TaskStatus.QUEUED
    store.queues.dequeue(again)
    spent = _queued(store, max_attempts=1)
    code, _ = _once(
        store, lambda c, _: Outcome(None, reason="no network", requeue=True, infra=True)
    )
    assert code == OnceExit.FAILED
    assert "attempts are spent" in store.tasks.get(spent).status_reason


def test_a_stop_request_reaches_the_run_with_its_reason(store: MemoryStore) -> None:
    task_id = _queued(store)
    started = threading.Event()

    def until_stopped(claim: Claim, control: Control) -> Outcome:
        started.set()
        assert control.wake.wait(30), "the stop never reached the run"
        return Outcome(TaskStatus.STOPPED, None, control.stop_reason or "")

    def ask() -> None:
        assert started.wait(30)
        store.leases.request_stop(task_id, reason="budget spent")

    asker = threading.Thread(target=ask)
    asker.start()
    code, _ = _once(store, until_stopped)
    asker.join()
    assert code == OnceExit.STOPPED
    task = store.tasks.get(task_id)
    assert (task.status, task.status_reason) == (TaskStatus.STOPPED, "stop requested: budget spent")


def test_a_queue_asking_more_gpus_than_the_agent_has_is_left_alone(store: MemoryStore) -> None:
    store.queues.create("big", gpus=2)
    task_id = store.tasks.create(TaskSpec(project="p", name="big")).id
    store.queues.enqueue(task_id, "big")
    executor = FakeExecutor(lambda c, _: Outcome(TaskStatus.COMPLETED, 0))
    options = AgentOptions(queues=("big",), gpus=("0",), dynamic_gpus=True, idle_exit=0.2)
    assert Agent(store, executor, options).run() == 0  # type: ignore[arg-type]
    assert executor.ran == []
    assert store.tasks.get(task_id).status is TaskStatus.QUEUED


class _Notified(MemoryStore):
    """The twin, as a store whose idle agents are woken by hints (PostgreSQL's case)."""

    @property
    def notifies(self) -> bool:
        return True


class _ScriptedListener:
    """A connected listener that hands out the given hints, one batch a wait; an empty
    batch waits out a short timeout, as a real listener that hears nothing does."""

    connected = True

    def __init__(self, *batches: list[Notice]) -> None:
        self._batches = list(batches)
        self.timeouts: list[float] = []

    def wait(self, timeout: float) -> list[Notice]:
        self.timeouts.append(timeout)
        batch = self._batches.pop(0) if self._batches else []
        if not batch and timeout < 1.0:
            time.sleep(timeout)
        return batch

    def wake(self) -> None:
        """Nothing blocks."""

    def close(self) -> None:
        """Nothing to release."""


def test_an_idle_agent_re_claims_when_a_retrys_delay_ends_not_at_its_next_round(
    tmp_path: Path,
) -> None:
    twin = _Notified(settings=Settings(home=tmp_path / "home"))
    twin.queues.create("q")
    agent = Agent(
        twin,
        FakeExecutor(lambda c, k: Outcome(TaskStatus.COMPLETED, 0)),
        AgentOptions(queues=("q",)),
    )  # type: ignore[arg-type]
    listener = _ScriptedListener(
        [
            Notice(channel=ENQUEUE_CHANNEL, payload="1@0.300"),
            Notice(channel=ENQUEUE_CHANNEL, payload="1"),
        ],
        [],
        [Notice(channel=ENQUEUE_CHANNEL, payload="1@bad")],
        [],
    )
    for _ in range(4):
        agent._wait(listener, time.monotonic())
    first, until_due, after_due, idle = listener.timeouts
    assert first == LISTENING_WAIT_SECONDS
    assert 0.0 < until_due <= 0.3 + DUE_SLACK_SECONDS  # woken for the delayed entry
    # The wait ended at the entry's time (the claim after it takes the entry); a hint
    # without a readable delay changes nothing, so the agent is back to its long wait.
    assert after_due == LISTENING_WAIT_SECONDS
    assert idle == LISTENING_WAIT_SECONDS


class _Blocking(PollingListener):
    """The polling sleep, as a connected listener that hears nothing: a wait lasts its
    whole timeout unless woken."""

    connected = True  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def wait(self, timeout: float) -> list[Notice]:
        self.timeouts.append(timeout)
        return super().wait(timeout)


class _Quiet(_Notified):
    """A notified store whose agents wait on one `_Blocking` listener."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.listener = _Blocking()

    def listen(self, channels: object = (), *, on_change: object = None) -> _Blocking:  # type: ignore[override]
        return self.listener


def _quiet_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: object
) -> tuple[Agent, _Quiet, threading.Thread]:
    """An agent on `_Quiet` whose re-claim is an hour away, started in a thread."""
    monkeypatch.setattr(agent_module, "LISTENING_WAIT_SECONDS", 3600.0)
    twin = _Quiet(settings=Settings(home=tmp_path / "home"))
    twin.queues.create("q")
    agent, _, thread = _started(twin, **options)
    return agent, twin, thread


def _started(twin: MemoryStore, **options: object) -> tuple[Agent, FakeExecutor, threading.Thread]:
    """An agent of queue ``q`` on ``twin`` whose runs all complete, started in a thread."""
    executor = FakeExecutor(lambda c, k: Outcome(TaskStatus.COMPLETED, 0))
    agent = Agent(twin, executor, AgentOptions(queues=("q",), **options))  # type: ignore[arg-type]
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    return agent, executor, thread


def test_a_stop_wakes_an_agent_idle_on_its_listener(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent, twin, thread = _quiet_agent(tmp_path, monkeypatch)
    deadline = time.monotonic() + 30
    while not twin.listener.timeouts:  # serving: waiting on its listener
        assert time.monotonic() < deadline, "the agent never started serving"
        time.sleep(0.01)
    agent.request_stop()  # as SIGTERM's handler does
    thread.join(timeout=60)  # the hour-long wait would still be going on
    assert not thread.is_alive()
    assert twin.workers.list() == []  # it went the whole way out


def test_an_idle_exit_ends_the_agent_at_its_time_not_at_its_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, twin, thread = _quiet_agent(tmp_path, monkeypatch, idle_exit=0.5)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert twin.listener.timeouts
    assert all(t <= 0.5 for t in twin.listener.timeouts)


def test_an_idle_agents_one_write_is_its_sample_with_its_heartbeat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = _Quiet(settings=Settings(home=tmp_path / "home", lease_seconds=0.3))
    beats: list[object] = []
    samples: list[tuple[str, tuple[str, ...]]] = []
    real_record = twin.workers.record_metrics

    def heartbeat(*args: object, **kw: object) -> object:
        beats.append(args)
        raise AssertionError("an idle agent has no lease to renew")

    def record(worker_id: str, metrics: object, *, seen: Sequence[str] = ()) -> None:
        samples.append((worker_id, tuple(seen)))
        real_record(worker_id, metrics, seen=seen)  # type: ignore[arg-type]

    monkeypatch.setattr(twin.leases, "heartbeat", heartbeat)
    monkeypatch.setattr(twin.workers, "record_metrics", record)
    monkeypatch.setattr(agent_module, "LISTENING_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(agent_module, "METRICS_SECONDS", 0.05)  # at most a beat's interval
    twin.queues.create("q")
    agent, _, thread = _started(twin, services=2)
    deadline = time.monotonic() + 30
    while len(samples) < 3:  # every third of the 0.3 s lease
        assert time.monotonic() < deadline, "the idle agent wrote no samples"
        time.sleep(0.02)
    agent.request_stop()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert beats == []
    rows = (f"{agent.worker}:1", f"{agent.worker}:2")
    assert all(s == (agent.worker, rows) for s in samples[:3])  # both rows, marked seen


def test_a_fleet_shares_the_reaper_passes_and_a_lone_agent_reaps_every_half_lease() -> None:
    rng = random.Random(7)
    lease = 60.0

    def mean_interval(agents: int) -> float:
        return statistics.mean(reap_interval(lease, agents, rng) for _ in range(2000))

    lone = [reap_interval(lease, 1, rng) for _ in range(2000)]
    assert min(lone) >= lease / 4
    assert max(lone) <= lease * 3 / 4
    assert statistics.mean(lone) == pytest.approx(lease / 2, rel=0.05)
    for agents in (2, 20, 500, 5000):
        fleet_rate = agents / mean_interval(agents)  # passes a second, the fleet's
        assert fleet_rate <= agents / (lease / 2) * 1.05  # never more than each every half
        assert fleet_rate >= 1 / (lease / 4) * 0.95  # the fleet: every quarter lease or more
    assert max(reap_interval(lease, 10**6, rng) for _ in range(2000)) <= 1.5 * REAP_MAX_SECONDS
    # capped: the few agents left when most of a fleet has gone still reap within minutes
    assert mean_interval(20_000) == pytest.approx(REAP_MAX_SECONDS, rel=0.05)


class _CountingClaimer:
    """A claimer that counts its claims and its looks."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.claims = 0
        self.looks = 0

    def claim(self, limit: int = 1, *, among: Sequence[str] | None = None) -> list[Claim]:
        self.claims += 1
        got: list[Claim] = self._inner.claim(limit, among=among)
        return got

    def anything_ready(self, among: Sequence[str] | None = None) -> bool:
        self.looks += 1
        return bool(self._inner.anything_ready(among))


def test_a_re_claim_that_heard_no_hint_looks_first_and_claims_what_it_sees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "LISTENING_WAIT_SECONDS", 0.05)
    twin = _Quiet(settings=Settings(home=tmp_path / "home"))
    twin.queues.create("q")
    counting: list[_CountingClaimer] = []
    real_claimer = twin.claimer

    def claimer(*args: Any, **kw: Any) -> _CountingClaimer:
        counting.append(_CountingClaimer(real_claimer(*args, **kw)))
        return counting[-1]

    monkeypatch.setattr(twin, "claimer", claimer)
    agent, executor, thread = _started(twin)
    try:
        deadline = time.monotonic() + 30
        while not counting or counting[0].looks < 10:  # ten timed re-claims
            assert time.monotonic() < deadline, "the agent never re-claimed"
            time.sleep(0.01)
        [seen] = counting
        assert seen.claims == 1  # its first claim; then only looks, no claim of nothing
        task_id = _queued(twin)  # no hint reaches this listener: the next look sees it
        while executor.ran == []:
            assert time.monotonic() < deadline, "the task was never claimed"
            time.sleep(0.01)
        assert [c.task_id for c in executor.ran] == [task_id]
    finally:
        agent.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()


def test_an_idle_agent_whose_sample_cannot_be_stored_still_beats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = _Quiet(settings=Settings(home=tmp_path / "home", lease_seconds=0.3))
    beats: list[object] = []
    real_heartbeat = twin.leases.heartbeat

    def refused(worker_id: str, metrics: object, *, seen: Sequence[str] = ()) -> None:
        raise StoreError("the sample's row was refused")

    def heartbeat(worker: Any, fences: Sequence[Any] = ()) -> Any:
        beats.append(worker)
        return real_heartbeat(worker, fences)

    monkeypatch.setattr(twin.workers, "record_metrics", refused)
    monkeypatch.setattr(twin.leases, "heartbeat", heartbeat)
    monkeypatch.setattr(agent_module, "LISTENING_WAIT_SECONDS", 3600.0)
    monkeypatch.setattr(agent_module, "METRICS_SECONDS", 0.05)  # every beat tries a sample
    twin.queues.create("q")
    agent, _, thread = _started(twin)
    try:
        deadline = time.monotonic() + 30
        while len(beats) < 3:
            assert time.monotonic() < deadline, "the idle agent stopped beating"
            time.sleep(0.02)
    finally:
        agent.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert all(b == [agent.worker] for b in beats[:3])
