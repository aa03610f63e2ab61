"""The store's one PostgreSQL pool: autocommit statements and real transactions side by side.

Every pooled connection is in autocommit (``clearq.scheduler.engine``): ``write_one``'s
statement commits by itself, while ``write`` and ``read`` open a transaction with their
own BEGIN, so their statements are one transaction that commits or rolls back whole.
"""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from clearq.config import Settings
from clearq.errors import StoreUnavailable
from clearq.scheduler import Store
from clearq.scheduler.pool import ElasticPool

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(pg_url: str) -> Store:
    store = Store(pg_url, settings=Settings(database_url=pg_url))
    with store.db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (n integer)")
    yield store  # type: ignore[misc]
    store.close()


def xact(conn: sa.Connection) -> int:
    return int(conn.exec_driver_sql("SELECT pg_current_xact_id()::text::bigint").scalar_one())


def rows(url: str) -> list[int]:
    """What another session sees (committed rows only)."""
    with psycopg.connect(url.replace("+psycopg", "", 1)) as conn:
        return [r[0] for r in conn.execute("SELECT n FROM probe ORDER BY n")]


def test_a_write_is_one_transaction_and_write_one_statements_commit_each(
    pg_store: Store, pg_url: str
) -> None:
    db = pg_store.db
    with db.write() as conn:
        first = xact(conn)
        conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
        assert xact(conn) == first
        assert rows(pg_url) == []  # not yet committed
    assert rows(pg_url) == [1]
    with db.write_one() as conn:
        conn.exec_driver_sql("INSERT INTO probe VALUES (2)")
        assert rows(pg_url) == [1, 2]  # committed by itself
        assert xact(conn) != xact(conn)  # each statement its own transaction


def test_a_failed_write_rolls_back_whole_and_leaves_the_connection_clean(
    pg_store: Store, pg_url: str
) -> None:
    db = pg_store.db

    def fail_half_way() -> None:
        with db.write() as conn:
            conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
            raise RuntimeError("the caller fails half way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    with db.write_one() as conn:  # the same pooled connection, out of that transaction
        conn.exec_driver_sql("INSERT INTO probe VALUES (3)")
    assert rows(pg_url) == [3]
    assert isinstance(db.engine.pool, ElasticPool)
    assert db.engine.pool.checkedin() == 1


def test_a_read_sees_one_transaction(pg_store: Store) -> None:
    with pg_store.db.read() as conn:
        assert xact(conn) == xact(conn)
        isolation = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
    assert isolation == "read committed"


def test_a_caller_that_finds_the_pool_in_use_past_the_timeout_is_told_the_store_is_unavailable(
    pg_url: str,
) -> None:
    settings = Settings(database_url=pg_url, db_pool_size=1, db_connect_timeout_seconds=1)
    with Store(pg_url, settings=settings) as store:
        with store.db.write() as conn:
            conn.exec_driver_sql("SELECT 1")
            with pytest.raises(StoreUnavailable, match="CLEARQ_DB_POOL_SIZE"):
                store.tasks.list(limit=1)  # the pool's one connection is in use above
        assert store.tasks.list(limit=1) == []
