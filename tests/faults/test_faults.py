"""Faults a fleet of real agents must ride out, each history checked by one checker.

Each test starts real ``clearq agent`` processes (on a throwaway PostgreSQL cluster of
the suite's own, reached through a loopback proxy that can blackhole the path, or on an
SQLite file), gives them short tasks, injects one fault with real signals and real
server commands, waits for the work to end, stops the fleet and checks the history
(``tests/faults/history.py``): nothing lost, stale or stuck, no orphan process. Leases
are short (5 s) so the suite stays within a few minutes.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence

import psutil
import pytest

from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.faults.conftest import PgFleet, open_store, record
from tests.faults.fleet import (
    LEASE_SECONDS,
    Fleet,
    all_done,
    completed_more_than,
    count,
    poll,
    some_running,
)
from tests.faults.history import Mark, Verdict, check, read_marks

LOST_LINE = re.compile(r"lost the database at ")


def _end(
    store: Store,
    fleet: Fleet,
    fault: str,
    ids: Sequence[uuid.UUID],
    *,
    recovery_s: float | None,
    survivors: Sequence[int] | None = None,
) -> Verdict:
    """Wait for the work to end, stop the fleet, check the history and record it."""
    poll(store, all_done(ids))
    expected = list(range(len(fleet.agents))) if survivors is None else list(survivors)
    exited = {i: (p.returncode, fleet.log(i)[-2000:]) for i, p in enumerate(fleet.agents)}
    assert fleet.alive() == expected, f"an agent exited during the fault: {exited}"
    fleet.stop()
    for i in expected:
        assert fleet.agents[i].returncode == 0, fleet.log(i)
    verdict = check(
        store, fault, ids, fleet.marks, [p.pid for p in fleet.agents], recovery_s=recovery_s
    )
    record(verdict)
    assert (verdict.lost, verdict.stale, verdict.stuck, verdict.orphans) == (0, 0, 0, 0), (
        verdict.problems
    )
    return verdict


def _reported_once(fleet: Fleet) -> None:
    """Each agent logged the outage at most once, and its end once if it logged it."""
    for i in range(len(fleet.agents)):
        log = fleet.log(i)
        lost = len(LOST_LINE.findall(log))
        assert lost <= 1, log
        assert log.count("the database is back at") == lost, log


# ---- PostgreSQL ------------------------------------------------------------------------


CUT_OFF_SLEEP = 10.0
"""A task long enough to be cut off: an agent gives it up 3.75 s after its last renewal,
and the fault may begin seconds after both ran, on a busy machine (with 6 s, a task that
began 2.3 s before the fault could end first, and was not run again)."""


@pytest.mark.postgres
def test_pg_restart_immediate(pg_fleet: PgFleet) -> None:
    with open_store(pg_fleet.direct_url, pg_fleet.home) as store:
        pg_fleet.start(3)
        pg_fleet.wait_serving()  # both serve first: then each claims a task
        ids = pg_fleet.enqueue(store, 6, sleep=2.5)
        poll(store, some_running(ids, 2))
        done = count(store, ids, TaskStatus.COMPLETED)
        pg_fleet.cluster.restart_immediate()
        recovery = poll(store, completed_more_than(ids, done))
        _end(store, pg_fleet, "pg restart -m immediate", ids, recovery_s=recovery)
        _reported_once(pg_fleet)


@pytest.mark.postgres
def test_pg_terminate_backend(pg_fleet: PgFleet) -> None:
    with open_store(pg_fleet.direct_url, pg_fleet.home) as store:
        pg_fleet.start(3)
        pg_fleet.wait_serving()  # both serve first: then each claims a task
        ids = pg_fleet.enqueue(store, 6, sleep=2.5)
        poll(store, some_running(ids, 2))
        done = count(store, ids, TaskStatus.COMPLETED)
        store.close()  # the test's own connections are killed too: start afresh after
        assert pg_fleet.cluster.terminate_backends(pg_fleet.database) > 0
        recovery = poll(store, completed_more_than(ids, done))
        _end(store, pg_fleet, "pg_terminate_backend", ids, recovery_s=recovery)
        _reported_once(pg_fleet)


@pytest.mark.postgres
def test_outage_shorter_than_the_lease(pg_fleet: PgFleet) -> None:
    lease = 10.0  # the server's stop and start fit well inside, even on a busy machine
    with open_store(pg_fleet.direct_url, pg_fleet.home, lease) as store:
        pg_fleet.start(2, env={"CLEARQ_LEASE_SECONDS": str(lease)})
        pg_fleet.wait_serving()  # both serve first: then each claims a task
        ids = pg_fleet.enqueue(store, 4, sleep=4.0)
        poll(store, some_running(ids, 2))
        done = count(store, ids, TaskStatus.COMPLETED)
        store.close()
        pg_fleet.cluster.stop()
        time.sleep(1.0)
        pg_fleet.cluster.start_again()
        recovery = poll(store, completed_more_than(ids, done))
        verdict = _end(store, pg_fleet, "outage < lease", ids, recovery_s=recovery)
        assert verdict.requeues == 0, "a task was requeued for an outage shorter than its lease"
        assert verdict.duplicated == 0
        _reported_once(pg_fleet)


@pytest.mark.postgres
def test_outage_longer_than_the_lease(pg_fleet: PgFleet) -> None:
    with open_store(pg_fleet.direct_url, pg_fleet.home) as store:
        pg_fleet.start(2)
        pg_fleet.wait_serving()  # both serve first: then each claims a task
        ids = pg_fleet.enqueue(store, 4, sleep=CUT_OFF_SLEEP)  # both first runs are cut off
        poll(store, some_running(ids, 2))
        store.close()
        pg_fleet.cluster.stop()
        time.sleep(2 * LEASE_SECONDS)
        pg_fleet.cluster.start_again()
        recovery = poll(store, completed_more_than(ids, 0))
        verdict = _end(store, pg_fleet, "outage > lease", ids, recovery_s=recovery)
        logs = "\n".join(pg_fleet.log(i) for i in range(2))
        assert verdict.requeues >= 2, f"the cut-off attempts were not run again:\n{logs}"
        assert verdict.overlaps == 0, "an attempt outlived its lease beside its successor"
        stopped = "its lease could not be renewed"
        assert sum(stopped in pg_fleet.log(i) for i in range(2)) == 2
        _reported_once(pg_fleet)


@pytest.mark.postgres
def test_blackholed_connection(pg_fleet: PgFleet) -> None:
    with open_store(pg_fleet.direct_url, pg_fleet.home) as store:
        pg_fleet.start(2)
        pg_fleet.wait_serving()  # both serve first: then each claims a task
        ids = pg_fleet.enqueue(store, 4, sleep=CUT_OFF_SLEEP)  # both first runs are cut off
        poll(store, some_running(ids, 2))
        pg_fleet.proxy.pause()  # sockets stay open; nothing moves either way
        time.sleep(2 * LEASE_SECONDS)
        pg_fleet.proxy.resume()
        recovery = poll(store, completed_more_than(ids, 0))
        verdict = _end(store, pg_fleet, "blackholed connection", ids, recovery_s=recovery)
        assert verdict.requeues >= 2
        assert verdict.overlaps == 0, "an attempt outlived its lease beside its successor"


@pytest.mark.postgres
def test_sigstop_of_an_agent(pg_fleet: PgFleet) -> None:
    with open_store(pg_fleet.direct_url, pg_fleet.home) as store:
        victim, _ = pg_fleet.start(2)
        pg_fleet.wait_serving()  # both serve first: then each claims a task
        # Long enough that the frozen attempt cannot end on its own before its give-up.
        ids = pg_fleet.enqueue(store, 4, sleep=8.0)
        poll(store, some_running(ids, 2))
        victim_task = _task_of(store, ids, "a0")
        # Frozen once its task's process and that one's child run: frozen inside its
        # clone, it would hold the host's mirror lock, and the other agent's clone waits
        # for it (up to the mirror lock's timeout, tests/integration/test_mirror_lock.py),
        # not this test's subject.
        poll(store, lambda s, t=victim_task: _kinds(read_marks(pg_fleet.marks, t)) >= {"child"})
        victim.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        frozen = {m.pid for m in read_marks(pg_fleet.marks, victim_task)}
        # The watchdog ends the attempt's processes while their agent is still frozen.
        poll(store, lambda s: not any(_running(pid) for pid in frozen))
        assert victim.poll() is None
        poll(store, lambda s, t=victim_task: s.tasks.get(t).attempt > 1)
        victim.send_signal(signal.SIGCONT)
        poll(store, lambda s, t=victim_task: s.tasks.get(t).status is TaskStatus.COMPLETED)
        recovery = time.monotonic() - started
        verdict = _end(store, pg_fleet, "SIGSTOP of an agent", ids, recovery_s=recovery)
        assert verdict.requeues >= 1
        assert verdict.overlaps == 0, "the frozen agent's attempt ran beside its successor"
        assert verdict.duplicated == 0, "the frozen agent's attempt ran to its end"


@pytest.mark.postgres
def test_an_agent_started_before_its_database(pg_fleet: PgFleet) -> None:
    with open_store(pg_fleet.direct_url, pg_fleet.home) as store:
        ids = pg_fleet.enqueue(store, 2, sleep=0.5)
        store.close()
        pg_fleet.cluster.stop()
        try:
            (agent,) = pg_fleet.start(1)
            deadline = time.monotonic() + 90
            while "the database is unreachable at" not in pg_fleet.log(0):
                assert agent.poll() is None, pg_fleet.log(0)
                assert time.monotonic() < deadline, pg_fleet.log(0)
                time.sleep(0.1)
        finally:
            pg_fleet.cluster.start_again()
        back = time.monotonic()
        pg_fleet.wait_serving()
        poll(store, all_done(ids))
        verdict = _end(
            store,
            pg_fleet,
            "agent started before its database",
            ids,
            recovery_s=time.monotonic() - back,
        )
        assert verdict.requeues == 0
        log = pg_fleet.log(0)
        assert log.count("the database is unreachable at") == 1, log
        assert "the database is reachable at" in log, log


# ---- SQLite ----------------------------------------------------------------------------


def test_sigkill_of_an_agent(sqlite_fleet: Fleet) -> None:
    with open_store(sqlite_fleet.url, sqlite_fleet.home) as store:
        victim, _ = sqlite_fleet.start(2)
        sqlite_fleet.wait_serving()  # both serve first: then each claims a task
        ids = sqlite_fleet.enqueue(store, 4, sleep=3.0)
        poll(store, some_running(ids, 2))
        victim_task = _task_of(store, ids, "a0")
        # Killed once its task's process runs: an agent killed inside `git clone` takes
        # the clone with it, but its half-made mirror may fail the next clone (not this
        # test's fault to find).
        poll(store, lambda s, t=victim_task: bool(read_marks(sqlite_fleet.marks, t)))
        victim.kill()
        victim.wait()
        killed = time.monotonic()
        poll(store, lambda s, t=victim_task: s.tasks.get(t).status is TaskStatus.COMPLETED)
        recovery = time.monotonic() - killed
        verdict = _end(
            store, sqlite_fleet, "SIGKILL of an agent", ids, recovery_s=recovery, survivors=[1]
        )
        assert store.tasks.get(victim_task).attempt == 2
        assert verdict.requeues >= 1


def test_sqlite_lock_holder(sqlite_fleet: Fleet) -> None:
    lease = 30.0  # longer than the lock is held: nothing may be given up for it
    db_file = sqlite_fleet.url.removeprefix("sqlite:///")
    with open_store(sqlite_fleet.url, sqlite_fleet.home, lease) as store:
        sqlite_fleet.start(8, env={"CLEARQ_LEASE_SECONDS": str(lease)})
        sqlite_fleet.wait_serving()  # both serve first: then each claims a task
        ids = sqlite_fleet.enqueue(store, 16, sleep=0.5)
        poll(store, some_running(ids, 2))
        holder = sqlite3.connect(db_file, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        time.sleep(15)
        holder.execute("ROLLBACK")
        holder.close()
        released = time.monotonic()
        done = count(store, ids, TaskStatus.COMPLETED)
        recovery = 0.0 if done == len(ids) else poll(store, completed_more_than(ids, done))
        verdict = _end(store, sqlite_fleet, "SQLite lock holder 15 s", ids, recovery_s=recovery)
        assert verdict.requeues == 0, "a task was claimed twice"
        assert time.monotonic() - released < 60


def test_sqlite_clock_skew(sqlite_fleet: Fleet) -> None:
    # Every lease, as a process whose wall clock runs 300 s ahead sees it (SQLite's
    # 'now' is the caller's clock): expired. libfaketime 0.9.10 cannot run the agent
    # itself skewed (Python's sleeps fail with EINVAL or hang under it), so a skewed
    # writer keeps every running task's stored deadline 300 s in the past instead.
    db_file = sqlite_fleet.url.removeprefix("sqlite:///")
    stop = threading.Event()

    def skew() -> None:
        conn = sqlite3.connect(db_file, isolation_level=None, timeout=30)
        while not stop.wait(0.2):
            conn.execute(
                "UPDATE tasks SET lease_expires_at = "
                "strftime('%Y-%m-%d %H:%M:%f000', 'now', '-300 seconds') "
                "WHERE status = 'running'"
            )
        conn.close()

    with open_store(sqlite_fleet.url, sqlite_fleet.home) as store:
        ids = sqlite_fleet.enqueue(store, 6, sleep=3.0)
        skewed = threading.Thread(target=skew, daemon=True)
        skewed.start()
        try:
            sqlite_fleet.start(3)
            verdict = _end(store, sqlite_fleet, "SQLite clock 300 s ahead", ids, recovery_s=None)
        finally:
            stop.set()
            skewed.join()
        assert verdict.requeues == 0, "a live task was reaped for a clock that disagrees"


def _kinds(marks: Sequence[Mark]) -> set[str]:
    return {m.kind for m in marks}


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _task_of(store: Store, ids: Sequence[uuid.UUID], name: str) -> uuid.UUID:
    """The task agent ``name`` runs now."""
    for task_id in ids:
        task = store.tasks.get(task_id)
        if task.status is TaskStatus.RUNNING and (task.worker or "").endswith(f":{name}"):
            return task_id
    raise AssertionError(f"agent {name} runs no task")
