"""Shared fixtures: a fresh store per test, on SQLite and on a real PostgreSQL.

PostgreSQL is found by ``tests.pgserver`` (``CLEARQ_TEST_POSTGRES_URL``, else a local
container, else a throwaway ``initdb`` cluster). Each test gets its own database: on
PostgreSQL a copy of a template migrated once per process, emptied and handed on from test
to test (``tests.pgpool``); on SQLite a copy of a file migrated once per process.
Where no server can be found the PostgreSQL tests skip with the reason; with
``CLEARQ_REQUIRE_POSTGRES=1`` (CI sets it) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.scheduler import Database, Store, upgrade
from clearq.scheduler.engine import SQLITE_FILE_MODE
from tests.pgpool import DatabasePool
from tests.pgserver import PgServer, find_server, unique_database_name

REQUIRE_POSTGRES = os.environ.get("CLEARQ_REQUIRE_POSTGRES", "") not in ("", "0", "false")
DIALECTS = ("sqlite", "postgres")


def _unavailable(reason: str) -> None:
    if REQUIRE_POSTGRES:
        pytest.fail(f"PostgreSQL is required (CLEARQ_REQUIRE_POSTGRES) but: {reason}")
    pytest.skip(f"no PostgreSQL server: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server the tests may create databases on."""
    found = find_server()
    if found.server is None:
        _unavailable(found.reason)
    assert found.server is not None
    with found.server as server:
        yield server


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> Iterator[str]:
    """Name of a database migrated to head, to clone test databases from."""
    name = unique_database_name("clearq_tpl")
    url = pg_server.create_database(name)
    db = Database(url)
    upgrade(db)
    db.dispose()
    yield name
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def pg_pool(pg_server: PgServer, pg_template: str) -> Iterator[DatabasePool]:
    """This process's test databases, emptied and renamed between tests (tests/pgpool.py)."""
    pool = DatabasePool(pg_server, pg_template)
    yield pool
    pool.close()


@pytest.fixture
def pg_url(pg_server: PgServer, pg_pool: DatabasePool) -> Iterator[str]:
    """URL of a migrated PostgreSQL database with no rows, of this test's own.

    Its name is new; a database the test made and left in another state than a fresh
    copy's (beyond its rows) is dropped afterwards, not handed on.
    """
    name = pg_pool.take()
    yield pg_server.database_url(name)
    pg_pool.give_back(name)


@pytest.fixture
def pg_fresh_url(pg_server: PgServer, pg_template: str) -> Iterator[str]:
    """URL of a new copy of the template, never used by another test (no statistics, no
    dead rows), dropped afterwards; most tests take `pg_url`, which is cheaper."""
    name = unique_database_name()
    url = pg_server.create_database(name, template=pg_template)
    yield url
    pg_server.drop_database(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per process, copied for each test (migrating
    a new file took each test 0.4-0.7 s)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "clearq.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db)
    db.dispose()
    with contextlib.closing(sqlite3.connect(path)) as conn:  # everything in the file itself
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """URL of a fresh, migrated SQLite file of this test's own (owner only, as clearq
    makes it)."""
    path = tmp_path / "clearq.db"
    shutil.copyfile(sqlite_template, path)
    path.chmod(SQLITE_FILE_MODE)
    return f"sqlite:///{path}"


@pytest.fixture(params=DIALECTS)
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


def on_one_database(dialect: str) -> pytest.MarkDecorator:
    """Run a test, or as ``pytestmark`` a module, on one database instead of both.

    For acceptance tests whose subject sits above the store (the SDK's framework capture,
    the ClearML layer, a gang's ranks reaching each other, Docker mode, the Slurm glue,
    building a task's environment, the HPO and pipeline controllers, the page in a
    browser): the store paths they go through are held to both databases by the contract
    tests, the integration tests and the agent's own acceptance tests (tests/acceptance/
    test_agent.py, test_tasks.py, test_schedules.py, test_quotas.py, ...), so the second
    database only doubled their cost (each starts interpreters that import torch or
    TensorFlow, containers, Slurm jobs, venv builds or several agents). A module's tests
    alternate between the two, so that each database still runs some of them.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown database {dialect!r}: one of {', '.join(DIALECTS)}")
    return pytest.mark.parametrize("store_url", [dialect], indirect=True)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings isolated from the user's own (home in the test's temp folder)."""
    return Settings(home=tmp_path / "home")


@pytest.fixture
def store(store_url: str, settings: Settings) -> Iterator[Store]:
    """A Store on a fresh database, on each dialect."""
    with Store(store_url, settings=settings) as s:
        yield s


_FAST_FOLDERS = ("unit",)

# With pytest-xdist (`pytest -n 4 --dist loadgroup`), tests that share
# one machine-wide thing run in one worker, one after another: the single Slurm cluster
# (its job counts and partitions), the fault suite (its own throwaway cluster, timed
# faults) and the Docker engine (an agent in Docker mode removes dead agents' containers
# host-wide, and image builds are the heaviest work here), and the README's snippets.
_SERIAL_GROUPS = {
    "test_slurm.py": "slurm",
    "test_gangs.py": "gangs",
    "test_faults.py": "faults",
    "test_agent_docker.py": "docker",
    "test_gangs_docker.py": "docker",
    "test_docker.py": "docker",
    "test_docker_extras.py": "docker",
    "test_agent_death.py": "docker",
    # The README's snippets run in order on one newcomer's machine (a queue made by one
    # is used by the next).
    "test_readme.py": "readme",
}


# tryfirst: pytest-xdist's worker reads the xdist_group marks in its own hook of this name,
# which would otherwise run before this one (later plugins first) and see none of them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the newcomer's fast subset ``fast``: ``pytest -m fast`` (README, Tests).

    It is the unit tests and the store's contract on the in-memory twin: no database
    server, no process started, well under a minute.
    """
    root = Path(__file__).parent
    for item in items:
        folder = item.path.relative_to(root).parts[0] if item.path.is_relative_to(root) else ""
        callspec = getattr(item, "callspec", None)
        on_memory = callspec is not None and callspec.params.get("any_store") == "memory"
        if folder in _FAST_FOLDERS or (folder == "contract" and on_memory):
            item.add_marker(pytest.mark.fast)
        group = _SERIAL_GROUPS.get(item.path.name)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
