"""ElasticPool: threads that meet share one connection; a busy spell's extra one is closed."""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from clearq.scheduler.pool import ElasticPool

pytestmark = pytest.mark.fast


class Opened:
    """A creator that counts the connections it opened and those still open."""

    def __init__(self) -> None:
        self.made = 0
        self.live: set[int] = set()

    def __call__(self) -> sqlite3.Connection:
        self.made += 1
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        self.live.add(id(conn))
        return _Closing(conn, self.live)  # type: ignore[return-value]


class _Closing:
    def __init__(self, conn: sqlite3.Connection, live: set[int]) -> None:
        self._conn, self._live, self._key = conn, live, id(conn)

    def close(self) -> None:
        self._live.discard(self._key)
        self._conn.close()

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


@pytest.fixture
def opened() -> Opened:
    return Opened()


def pool(opened: Opened, **kw: float) -> ElasticPool:
    options = {"grow_after": 0.2, "idle_close": 10.0, **kw}
    return ElasticPool(opened, pool_size=2, **options)  # type: ignore[arg-type]


def test_callers_one_after_another_share_one_connection(opened: Opened) -> None:
    p = pool(opened)
    for _ in range(5):
        p.connect().close()
    assert (opened.made, len(opened.live)) == (1, 1)


def test_a_caller_that_meets_a_short_use_waits_for_it_instead_of_opening_another(
    opened: Opened,
) -> None:
    p = pool(opened, grow_after=60.0)
    first = p.connect()
    got = threading.Event()

    def second() -> None:
        p.connect().close()
        got.set()

    t = threading.Thread(target=second)
    t.start()
    assert not got.wait(0.3)  # it waits: no second connection
    first.close()
    t.join(timeout=60)
    assert got.is_set()
    assert opened.made == 1


def test_a_long_wait_opens_a_second_connection_up_to_the_size(opened: Opened) -> None:
    p = pool(opened, grow_after=0.0, timeout=0.5)
    a, b = p.connect(), p.connect()
    assert opened.made == 2
    with pytest.raises(exc.TimeoutError, match="no database connection free"):
        p.connect()
    a.close()
    b.close()
    assert p.checkedin() == 2  # a caller waited just now: both stay for the busy spell


def test_the_extra_connection_is_closed_once_no_caller_waited_for_a_while(
    opened: Opened,
) -> None:
    p = pool(opened, grow_after=0.0, idle_close=0.0)
    a, b = p.connect(), p.connect()
    a.close()
    b.close()  # another is idle and nobody waits: closed
    assert (p.checkedin(), len(opened.live)) == (1, 1)
    p.connect().close()
    assert (p.checkedin(), opened.made) == (1, 2)


def test_overflow_connections_close_when_given_back(opened: Opened) -> None:
    p = ElasticPool(opened, pool_size=1, max_overflow=1, grow_after=0.0)  # type: ignore[arg-type]
    a, b = p.connect(), p.connect()
    b.close()
    assert len(opened.live) == 1
    a.close()
    assert p.checkedin() == 1


def test_dispose_closes_idle_connections_and_those_given_back_later(opened: Opened) -> None:
    p = pool(opened, grow_after=0.0)
    a, b = p.connect(), p.connect()
    a.close()
    p.dispose()
    assert len(opened.live) == 1
    b.close()
    assert not opened.live


def test_an_engine_on_it_reuses_it_after_dispose() -> None:
    engine = sa.create_engine("sqlite://", poolclass=ElasticPool, pool_size=2)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
    assert isinstance(engine.pool, ElasticPool)
    assert engine.pool.size() == 2
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 2").scalar() == 2
