"""Tests of tests/pgpool.py (the suite's reused PostgreSQL databases) on a real server."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from clearq.scheduler import Store
from clearq.scheduler.engine import Database
from clearq.scheduler.migrate import upgrade
from tests.pgpool import DatabasePool
from tests.pgserver import PgServer, unique_database_name

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def template(pg_server: PgServer) -> Iterator[str]:
    """A template of this module's own (the session's pool and template are the suite's)."""
    name = unique_database_name("clearq_tpl")
    db = Database(pg_server.create_database(name))
    upgrade(db)
    db.dispose()
    yield name
    pg_server.drop_database(name)


@pytest.fixture
def pool(pg_server: PgServer, template: str) -> Iterator[DatabasePool]:
    pool = DatabasePool(pg_server, template)
    yield pool
    pool.close()


def _databases(server: PgServer) -> set[str]:
    with server.connect() as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_a_database_handed_back_comes_again_empty_under_a_new_name(
    pool: DatabasePool, pg_server: PgServer
) -> None:
    first = pool.take()
    with Store(pg_server.database_url(first)) as store:
        store.queues.create("a")
        store.queues.create("b")
    pool.give_back(first)

    second = pool.take()
    assert second != first
    assert first not in _databases(pg_server)
    with Store(pg_server.database_url(second)) as store:
        assert store.queues.list() == []
        store.queues.create("c")
        [queue] = store.queues.list()
    assert queue.id == 1  # sequences start again
    assert (pool.reused, pool.dropped) == (1, 0)
    pool.give_back(second)


def test_a_connection_the_test_left_open_is_cut_and_cannot_reach_the_next_test(
    pool: DatabasePool, pg_server: PgServer
) -> None:
    name = pool.take()
    left_open = pg_server.connect(name)
    pool.give_back(name)
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        pg_server.connect(name).close()
    assert pool.reused == 1


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE tasks SET (autovacuum_enabled = off)",
        "CREATE TABLE extra (i int)",
        "CREATE INDEX extra_ix ON queues (description)",
        "DROP TRIGGER schedule_triggers_on_update ON tasks",
        "UPDATE alembic_version SET version_num = '0001'",
    ],
)
def test_a_database_the_test_changed_beyond_its_rows_is_dropped(
    pool: DatabasePool, pg_server: PgServer, change: str
) -> None:
    name = pool.take()
    with pg_server.connect(name) as conn:
        conn.execute(change)
    pool.give_back(name)
    assert (pool.reused, pool.dropped) == (0, 1)
    fresh = pool.take()
    with Store(pg_server.database_url(fresh)) as store:
        assert store.queues.list() == []
    assert not {name} & _databases(pg_server)
