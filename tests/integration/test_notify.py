"""Wake-up hints: NOTIFY on PostgreSQL at commit, polling on SQLite."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from clearq.config import Settings
from clearq.errors import IllegalTransition
from clearq.models import QuotaKind, TaskStatus, WorkerCommand
from clearq.scheduler import ENQUEUE_CHANNEL, STOP_CHANNEL, WORKER_CHANNEL, Store
from clearq.scheduler.fenced import ready_in
from clearq.scheduler.notify import PollingListener
from clearq.scheduler.relay import RelayListener
from tests.integration.helpers import new_task, queued


@pytest.fixture
def pg_store(pg_url: str, settings: Settings) -> Iterator[Store]:
    with Store(pg_url, settings=settings) as store:
        yield store


@pytest.mark.postgres
def test_enqueue_and_stop_wake_a_listener(pg_store: Store) -> None:
    queue = pg_store.queues.create("q")
    listener = pg_store.listen()
    try:
        assert isinstance(listener, RelayListener)  # this machine's one LISTEN
        assert listener.connected
        assert listener.wait(0.05) == []
        task_id = queued(pg_store, "q")
        notices = listener.wait(5)
        assert [(n.channel, n.payload) for n in notices] == [(ENQUEUE_CHANNEL, str(queue.id))]
        pg_store.claimer("w", ["q"]).claim()
        pg_store.leases.request_stop(task_id)
        notices = listener.wait(5)
        assert [(n.channel, n.payload) for n in notices] == [(STOP_CHANNEL, str(task_id))]
    finally:
        listener.close()


@pytest.mark.postgres
def test_a_retry_hint_says_when_its_delay_ends(pg_store: Store) -> None:
    # An idle agent re-claims rarely while it listens: a retry's hint carries its delay,
    # so the agent claims it when the delay ends (clearq.runtime.agent's _wait).
    queue = pg_store.queues.create("q")
    task_id = new_task(pg_store, "flaky", max_retries=1, retry_delay_seconds=7.5)
    pg_store.queues.enqueue(task_id, "q")
    [claim] = pg_store.claimer("w", ["q"]).claim()
    listener = pg_store.listen()
    try:
        pg_store.leases.finish(claim.fence, TaskStatus.FAILED, exit_code=1)
        notices = listener.wait(5)
        assert [(n.channel, n.payload) for n in notices] == [(ENQUEUE_CHANNEL, f"{queue.id}@7.500")]
        assert ready_in(notices[0].payload) == 7.5
        assert ready_in(str(queue.id)) is None
        assert ready_in(f"{queue.id}@soon") is None
    finally:
        listener.close()


@pytest.mark.postgres
def test_an_operators_drain_or_pause_wakes_a_listener(pg_store: Store) -> None:
    pg_store.workers.register("h:a:1", host="h", pid=1, queues=["q"])
    pg_store.workers.register("h:a:2", host="h", pid=1, queues=["q"])
    listener = pg_store.listen()
    try:
        pg_store.workers.set_command("h:a", WorkerCommand.DRAIN)
        notices = listener.wait(5)
        notices += listener.wait(0.2) if len(notices) < 2 else []
        assert sorted((n.channel, n.payload) for n in notices) == [
            (WORKER_CHANNEL, "h:a:1"),
            (WORKER_CHANNEL, "h:a:2"),
        ]
    finally:
        listener.close()


@pytest.mark.postgres
def test_a_raised_cap_or_a_changed_quota_wakes_a_listener(pg_store: Store) -> None:
    # Idle agents re-claim rarely while they listen: what frees work must say so.
    queue = pg_store.queues.create("q")
    listener = pg_store.listen()
    try:
        pg_store.queues.set_max_running("q", 2)
        assert [(n.channel, n.payload) for n in listener.wait(5)] == [
            (ENQUEUE_CHANNEL, str(queue.id))
        ]
        pg_store.quotas.set(QuotaKind.USER, "ann", max_running=1)
        pg_store.quotas.clear(QuotaKind.USER, "ann")
        notices = listener.wait(5)
        notices += listener.wait(5) if len(notices) < 2 else []
        assert [n.channel for n in notices] == [ENQUEUE_CHANNEL, ENQUEUE_CHANNEL]
    finally:
        listener.close()


@pytest.mark.postgres
def test_nothing_is_sent_when_the_transaction_fails(pg_store: Store) -> None:
    pg_store.queues.create("q")
    listener = pg_store.listen()
    try:
        task_id = new_task(pg_store)
        pg_store.queues.enqueue(task_id, "q")
        assert len(listener.wait(5)) == 1
        with pytest.raises(IllegalTransition):
            pg_store.queues.enqueue(task_id, "q")
        assert listener.wait(0.2) == []
    finally:
        listener.close()


def test_sqlite_listener_polls(sqlite_url: str, settings: Settings) -> None:
    with Store(sqlite_url, settings=settings) as store:
        listener = store.listen()
        assert isinstance(listener, PollingListener)
        started = time.monotonic()
        assert listener.wait(0.05) == []
        assert time.monotonic() - started >= 0.05
