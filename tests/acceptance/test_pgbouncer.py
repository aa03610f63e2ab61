"""pgbouncer in transaction mode in front of PostgreSQL: a supported deployment.

The SDK, the store and an agent run through Debian's pgbouncer with
``CLEARQ_DATABASE_PGBOUNCER=1`` (nothing prepared: psycopg would otherwise prepare a
statement after five runs, and the sixth claim would fail with
DuplicatePreparedStatement on another server connection) and LISTEN on a direct
session connection (``CLEARQ_LISTEN_URL``). Without pgbouncer these tests skip with
the reason; with ``CLEARQ_REQUIRE_PGBOUNCER=1`` (CI) they fail instead.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler import notify as notify_module
from clearq.sdk.task import Task, use_store
from tests.acceptance.conftest import Agents, Cli
from tests.acceptance.test_agent import job, logs_of, wait_for, wait_for_log
from tests.gitrepo import published
from tests.pgbouncer import Pgbouncer, PgbouncerUnavailable, running_pgbouncer
from tests.pgserver import PgServer, listen_backends
from tests.ui.helpers import UiProcess, fetch

pytestmark = pytest.mark.postgres

REQUIRE = os.environ.get("CLEARQ_REQUIRE_PGBOUNCER", "") not in ("", "0", "false")
CLAIMS = 12
"""Claims and finishes in a row: well past the 6th, where preparation would start."""


@pytest.fixture(scope="session")
def pgbouncer(pg_server: PgServer) -> Iterator[Pgbouncer]:
    """Debian's pgbouncer in transaction mode in front of the test server."""
    try:
        with running_pgbouncer(pg_server.url) as bouncer:
            yield bouncer
    except PgbouncerUnavailable as e:
        if REQUIRE:
            pytest.fail(f"pgbouncer is required (CLEARQ_REQUIRE_PGBOUNCER) but: {e}")
        pytest.skip(f"no pgbouncer: {e}")


@pytest.fixture
def bounced_url(pgbouncer: Pgbouncer, pg_url: str) -> str:
    """This test's fresh database, through pgbouncer."""
    return pgbouncer.url_for(pg_url)


@pytest.fixture
def bounced_store(bounced_url: str, pg_url: str, tmp_path: Path) -> Iterator[Store]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=bounced_url,
        database_pgbouncer=True,
        listen_url=pg_url,
    )
    with Store(bounced_url, settings=settings) as store:
        yield store


@pytest.fixture
def bounced_cli(bounced_url: str, pg_url: str, tmp_path: Path) -> Cli:
    cli = Cli.for_database(bounced_url, tmp_path / "home")
    return Cli(env={**cli.env, "CLEARQ_DATABASE_PGBOUNCER": "1", "CLEARQ_LISTEN_URL": pg_url})


@pytest.fixture
def bounced_agents(bounced_cli: Cli, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(bounced_cli, tmp_path)
    yield running
    running.stop_all()


def test_claims_and_finishes_past_the_sixth_work_through_pgbouncer(bounced_store: Store) -> None:
    store = bounced_store
    store.queues.create("q")
    ids = []
    for i in range(CLAIMS):
        task_id = store.tasks.create(TaskSpec(project="p", name=f"t{i}")).id
        store.queues.enqueue(task_id, "q")
        ids.append(task_id)
    claimer = store.claimer("w", ["q"])
    for _ in range(CLAIMS):
        claim = claimer.claim(1)[0]
        store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    assert {store.tasks.get(i).status for i in ids} == {TaskStatus.COMPLETED}


def test_an_agent_runs_tasks_and_their_logs_through_pgbouncer(
    bounced_store: Store, bounced_agents: Agents, tmp_path: Path
) -> None:
    store = bounced_store
    repo = _repo(tmp_path)
    store.queues.create("q")
    ids = [job(store, repo, f"job{i}", "q") for i in range(7)]
    bounced_agents.run("-q", "q", "--idle-exit", "2")
    for task_id in ids:
        task = store.tasks.get(task_id)
        assert (task.status, task.exit_code) == (TaskStatus.COMPLETED, 0)
        assert f"{task.name} starts\n{task.name} ends\n" in logs_of(store, task_id)
        assert [(s.title, s.last) for s in store.outputs.summary(task_id)] == [("phase", 1.0)]


def test_a_stop_request_reaches_the_agent_through_the_direct_listen_url(
    bounced_store: Store, bounced_cli: Cli, bounced_agents: Agents, tmp_path: Path
) -> None:
    store = bounced_store
    assert store.notifies  # LISTEN goes past pgbouncer, to CLEARQ_LISTEN_URL
    store.queues.create("q")
    task_id = job(store, _repo(tmp_path), "long", "q", sleep=120)
    agent = bounced_agents.start("-q", "q", "--idle-exit", "3", "--stop-grace", "2")
    wait_for_log(store, task_id, "long starts")
    assert "stop requested" in bounced_cli.run("task", "abort", str(task_id)).stdout
    wait_for(store, task_id, [TaskStatus.STOPPED])
    assert store.tasks.get(task_id).status_reason == "stop requested"
    assert agent.wait(timeout=60) == 0


def test_agents_of_one_machine_share_one_listen_connection(
    bounced_store: Store, bounced_cli: Cli, bounced_agents: Agents, pg_url: str, tmp_path: Path
) -> None:
    store = bounced_store
    store.queues.create("q")
    repo = _repo(tmp_path)
    ids = [job(store, repo, f"long{i}", "q", sleep=300) for i in range(3)]
    agents = {
        f"a{i}": bounced_agents.start("-q", "q", "--name", f"a{i}", "--stop-grace", "2")
        for i in range(3)
    }
    for task_id in ids:  # each agent listens before it claims: all three listen now
        wait_for(store, task_id, [TaskStatus.RUNNING])
    assert len(listen_backends(pg_url)) == 1
    stopped, killed, _ = ids
    assert "stop requested" in bounced_cli.run("task", "abort", str(stopped)).stdout
    wait_for(store, stopped, [TaskStatus.STOPPED])
    worker = store.tasks.get(killed).worker
    assert worker is not None
    agents[worker.rsplit(":", 1)[-1]].kill()  # maybe the one that listens for all
    late = job(store, repo, "late", "q")
    wait_for(store, late, [TaskStatus.COMPLETED])
    deadline = time.monotonic() + 60
    while len(listen_backends(pg_url)) != 1:
        assert time.monotonic() < deadline, "not one LISTEN after an agent died"
        time.sleep(0.2)


def test_a_pipeline_runs_through_pgbouncer(
    bounced_store: Store, bounced_agents: Agents, tmp_path: Path
) -> None:
    from tests.acceptance.test_pipeline import STEP, diamond

    store = bounced_store
    store.queues.create("default")
    repository = published(tmp_path, {"step.py": STEP}, message="step")
    script = Script(
        repository=str(repository.origin), commit=repository.commit, entry_point="step.py"
    )
    use_store(store)
    try:
        base = Task.get_task(
            task_id=store.tasks.create(TaskSpec(project="pipes", name="step", script=script)).id
        )
        pipe = diamond(base, tmp_path / "marks.jsonl").start()
        for name in ("one", "two"):
            bounced_agents.start("-q", "default", "--name", name, "--idle-exit", "5")
        assert pipe.wait(timeout=240) == dict.fromkeys("abcd", TaskStatus.COMPLETED)
        steps = pipe.steps()
        assert steps["c"].load_artifact("result")["a"] == steps["a"].id
    finally:
        use_store(None)


def test_the_pages_task_list_reads_through_pgbouncer(
    bounced_store: Store, bounced_cli: Cli, tmp_path: Path
) -> None:
    ids = [bounced_store.tasks.create(TaskSpec(project="p", name=f"t{i}")).id for i in range(7)]
    ui = UiProcess(bounced_cli, tmp_path / "ui.log")
    try:
        ui.wait_ready()
        for _ in range(CLAIMS):  # past the 6th run of each statement
            reply = fetch("GET", f"{ui.url}/api/tasks?project=p")
            assert reply.status == 200, reply.body
            assert all(str(i) in reply.body for i in ids)
        for path in ("/tasks?project=p", f"/tasks/{ids[0]}", "/workers", "/queues"):
            page = fetch("GET", ui.url + path)
            assert page.status == 200, (path, page.body)
        assert "t0" in fetch("GET", f"{ui.url}/tasks/{ids[0]}").body
    finally:
        ui.stop()


def test_without_a_listen_url_the_store_polls_and_says_so_once(
    bounced_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(notify_module, "_said_polling", False)
    settings = Settings(home=tmp_path / "h", database_url=bounced_url, database_pgbouncer=True)
    with Store(bounced_url, settings=settings) as store, caplog.at_level(logging.WARNING):
        assert not store.notifies
        for _ in range(2):
            listener = store.listen()
            assert listener.wait(0.01) == []
            listener.close()
    said = [r.getMessage() for r in caplog.records if "CLEARQ_LISTEN_URL" in r.getMessage()]
    assert len(said) == 1
    assert "poll" in said[0]


def _repo(tmp_path: Path) -> tuple[Path, str]:
    from tests.acceptance.test_agent import JOB

    repository = published(tmp_path, {"job.py": JOB}, message="job")
    return repository.origin, repository.commit
