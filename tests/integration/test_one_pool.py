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
from clearq.errors import ConnectionLost, StoreUnavailable
from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store, engine
from clearq.scheduler.claim import Claimer
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


# ---- the hot path's lent connection (sqla_exec.statement) ----------------------------------


def _claimable(store: Store, n: int = 1) -> Claimer:
    store.queues.create("lent")
    for i in range(n):
        store.queues.enqueue(store.tasks.create(TaskSpec(project="p", name=f"t{i}")).id, "lent")
    return store.claimer("host:w", ["lent"])


def _kill_backends(url: str, database: str) -> None:
    with psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )


def test_the_claim_and_a_finish_go_through_the_pools_one_lent_connection(pg_store: Store) -> None:
    claimer = _claimable(pg_store, 2)
    assert pg_store.db.lends
    for _ in range(2):
        [claim] = claimer.claim(1)
        pg_store.leases.finish(claim.fence, TaskStatus.COMPLETED)
    pool = pg_store.db.engine.pool
    assert isinstance(pool, ElasticPool)
    assert (pool.checkedin(), pool.checkedout()) == (1, 0)
    assert all(t.status is TaskStatus.COMPLETED for t in pg_store.tasks.list(project="p"))


def test_a_lent_connection_that_died_while_idle_is_pinged_and_replaced(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 0.0)  # every idle one is pinged
    with Store(pg_url, settings=Settings(database_url=pg_url)) as store:
        claimer = _claimable(store, 2)
        [first] = claimer.claim(1)
        _kill_backends(pg_url, str(store.db.url.database))
        store.leases.finish(first.fence, TaskStatus.COMPLETED)  # no error: a new connection
        [second] = claimer.claim(1)
        assert second.task_id != first.task_id


def test_a_lent_connection_lost_mid_use_says_so_and_the_next_call_reconnects(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "PING_AFTER_IDLE_SECONDS", 3600.0)  # never pinged
    with Store(pg_url, settings=Settings(database_url=pg_url)) as store:
        claimer = _claimable(store, 1)
        [claim] = claimer.claim(1)
        _kill_backends(pg_url, str(store.db.url.database))
        with pytest.raises(ConnectionLost, match="lost the connection"):
            store.leases.finish(claim.fence, TaskStatus.COMPLETED)
        store.leases.finish(claim.fence, TaskStatus.COMPLETED)  # a fresh connection
        assert store.tasks.get(claim.task_id).status is TaskStatus.COMPLETED


def test_with_a_listener_on_the_engine_the_hot_path_goes_through_sqlalchemy(
    pg_store: Store,
) -> None:
    claimer = _claimable(pg_store, 1)
    seen: list[str] = []
    sa.event.listen(pg_store.db.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    assert not pg_store.db.lends
    [claim] = claimer.claim(1)
    pg_store.leases.finish(claim.fence, TaskStatus.COMPLETED)
    assert any("SKIP LOCKED" in s for s in seen)
    assert any(s.startswith("UPDATE tasks SET status") for s in seen)
