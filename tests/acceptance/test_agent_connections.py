"""An agent's PostgreSQL connections: at most 2 while idle, at most 3 however busy.

DESIGN (Scale): the database's connection budget is a fleet's ceiling. An agent's threads
(claim loop, heartbeat and reaper, metrics, task slots, the attempt channels its tasks
write through) share one pool that keeps one connection while quiet and at most two
while busy (``clearq.scheduler.pool``), beside its LISTEN session. The agent's backends
are told apart in ``pg_stat_activity`` by the ``application_name`` libpq takes from
``PGAPPNAME``; tasks hold none of their own.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from clearq.config import Settings
from clearq.models import Script, TaskSpec
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli

pytestmark = pytest.mark.postgres

TASK = """
import time
from pathlib import Path
from clearq import Task

task = Task.init()
folder = Path(task.connect({"folder": ""})["folder"])
(folder / f"ready-{task.id}").touch()
i = 0
while not (folder / "stop").exists():
    task.get_logger().report_scalar("tick", "n", float(i), i)
    print("tick", i, flush=True)
    i += 1
    time.sleep(0.1)
"""
TASKS = 4
SAMPLES = 30
WAIT_SECONDS = 120


class Backends:
    """Counts the backends of one application on the test's database."""

    def __init__(self, url: str, application: str) -> None:
        self._conn = psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True)
        self._database = url.rsplit("/", 1)[1]
        self.application = application

    def count(self, *, listening: bool = False) -> int:
        where = " AND query ILIKE 'LISTEN%%'" if listening else ""
        row = self._conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = %s" + where,
            (self._database, self.application),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def settle_at_most(self, limit: int) -> None:
        """Wait until the count is within ``limit`` (a start's busy spell may pass first)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while (found := self.count()) > limit:
            assert time.monotonic() < deadline, f"the agent still holds {found} connections"
            time.sleep(0.2)

    def peak(self) -> int:
        found = 0
        for _ in range(SAMPLES):
            found = max(found, self.count())
            time.sleep(0.1)
        return found

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
def pg_store(pg_url: str, tmp_path: Path) -> Iterator[Store]:
    with Store(pg_url, settings=Settings(home=tmp_path / "home")) as store:
        yield store


@pytest.fixture
def pg_agents(pg_url: str, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(Cli.for_database(pg_url, tmp_path / "home"), tmp_path)
    yield running
    running.stop_all()


@pytest.fixture
def backends(pg_url: str) -> Iterator[Backends]:
    counter = Backends(pg_url, f"clearq-agent-{uuid.uuid4().hex[:12]}")
    yield counter
    counter.close()


def wait_for(what: str, check: object) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def enqueue_ticking_task(store: Store, folder: Path, name: str) -> uuid.UUID:
    spec = TaskSpec(
        project="conn",
        name=name,
        script=Script(source=TASK, entry_point="task.py"),
        parameters={"General/folder": str(folder)},
    )
    task_id = store.tasks.create(spec).id
    store.queues.enqueue(task_id, "conn")
    return task_id


def test_an_idle_agent_holds_two_connections_and_a_busy_one_three(
    pg_store: Store, pg_agents: Agents, backends: Backends, tmp_path: Path
) -> None:
    store = pg_store
    store.queues.create("conn")
    agent = pg_agents.start(
        "-q", "conn", "--services-mode", "8", env={"PGAPPNAME": backends.application}
    )
    wait_for("the agent to register", lambda: store.workers.list())
    wait_for("its LISTEN session", lambda: backends.count(listening=True) == 1)

    backends.settle_at_most(2)
    assert backends.peak() <= 2, "an idle agent: one pooled connection and its LISTEN"

    folder = tmp_path / "marks"
    folder.mkdir()
    ids = [enqueue_ticking_task(store, folder, f"t{i}") for i in range(TASKS)]
    wait_for(f"{TASKS} tasks to run", lambda: len(list(folder.glob("ready-*"))) == TASKS)
    assert backends.peak() <= 3, f"{TASKS} tasks writing through the agent's channels"
    assert backends.count(listening=True) == 1

    (folder / "stop").touch()
    wait_for("the tasks to end", lambda: all(store.tasks.get(t).status == "completed" for t in ids))
    assert all(store.outputs.scalars(t) for t in ids)  # their writes went through
    backends.settle_at_most(2)
    assert agent.poll() is None
