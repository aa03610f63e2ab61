"""The Store's adapters of ``fenced.Execution``: its database, at the driver level.

The statements of ``statements.py`` are rendered for the driver's own parameter style and
sent on the DB-API cursor, so the Store sends exactly the text a run sends over its bare
connection (``runlink.py``), and SQLAlchemy adds no compilation on the hot path.

Two adapters: :class:`SqlaExecution`, a SQLAlchemy connection inside its transaction, and
:class:`DriverExecution`, a pooled PostgreSQL connection lent at the driver level
(``Database.lent``) for a single autocommit statement. :func:`statement` gives the second
where it may be used: SQLAlchemy's ``Connection`` and its pool's checkout proxy cost the
client about as many instructions as the claim statement itself
(``benchmarks/claim_instructions.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from clearq.scheduler.engine import Database, Lent


class SqlaExecution:
    """A :class:`fenced.Execution` over a connection already inside its transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._postgres = conn.dialect.name == "postgresql"

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL."""
        return self._postgres

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returned."""
        return driver_rows(self._conn, sql, params)

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement for each row of parameters."""
        self._conn.exec_driver_sql(sql, [dict(r) for r in rows])


class DriverExecution:
    """A :class:`fenced.Execution` on a connection the database lends (PostgreSQL, in
    autocommit: each statement is its own transaction), for one ``with`` block."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._dialect = db.engine.dialect
        self._lent: Lent | None = None

    def __enter__(self) -> DriverExecution:
        self._lent = self._db.lend()
        return self

    def __exit__(self, kind: object, error: BaseException | None, tb: object) -> None:
        lent, self._lent = self._lent, None
        if lent is not None:
            self._db.give_back(lent, error)

    @property
    def postgres(self) -> bool:
        """True: only PostgreSQL connections are lent."""
        return True

    def execute(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement; the rows it returned."""
        record = self._record()
        return _cursor_rows(record.dbapi_connection, self._dialect, sql, params, record.invalidate)

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement for each row of parameters."""
        record = self._record()
        dbapi_conn = record.dbapi_connection
        _cursor_rows(dbapi_conn, self._dialect, sql, rows, record.invalidate, many=True)

    def _record(self) -> ConnectionPoolEntry:
        if self._lent is None:
            raise RuntimeError("a DriverExecution runs statements inside its with block only")
        return self._lent.record


def driver_rows(conn: Connection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` (in the driver's parameter style) on ``conn``'s DB-API cursor; its rows.

    The hot statements (the claim, a finish, a renewal) go this way: SQLAlchemy's result
    machinery cost about as much client CPU as the driver itself. A driver error is
    raised as SQLAlchemy's ``DBAPIError`` (which the store translates), a lost connection
    is invalidated as SQLAlchemy would. With event listeners on the connection (a test
    or a benchmark capturing statements) the same text goes through ``exec_driver_sql``.
    """
    if conn._has_events or conn.engine._has_events:
        result = conn.exec_driver_sql(sql, dict(params))
        return [tuple(r) for r in result.all()] if result.returns_rows else []
    dbapi_conn = conn.connection.dbapi_connection
    return _cursor_rows(dbapi_conn, conn.dialect, sql, params, conn.invalidate)


def _cursor_rows(
    dbapi_conn: Any,
    dialect: Dialect,
    sql: str,
    params: Any,
    lost: Callable[[BaseException], None],
    *,
    many: bool = False,
) -> list[tuple[Any, ...]]:
    """``sql`` on a cursor of ``dbapi_conn``; driver errors as SQLAlchemy's ``DBAPIError``,
    calling ``lost`` first when the connection is gone (it invalidates it)."""
    cursor = dbapi_conn.cursor()
    try:
        if many:
            cursor.executemany(sql, params)
            return []
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if _returned_rows(cursor) else []
    except dialect.loaded_dbapi.Error as e:
        gone = dialect.is_disconnect(e, dbapi_conn, cursor)
        if gone:
            lost(e)
        driver_error = dialect.loaded_dbapi.Error
        raise DBAPIError.instance(
            sql, params, e, driver_error, connection_invalidated=gone, dialect=dialect
        ) from e
    finally:
        cursor.close()


def _returned_rows(cursor: Any) -> bool:
    # psycopg builds a Column object per column for ``description``; its ``rownumber``
    # says the same (None: no rows to fetch) for nothing. sqlite3 has no rownumber.
    rownumber = getattr(cursor, "rownumber", _ABSENT)
    if rownumber is _ABSENT:
        return cursor.description is not None
    return rownumber is not None


_ABSENT = object()


def on(conn: Connection) -> SqlaExecution:
    """The execution of ``conn`` (a connection inside its transaction)."""
    return SqlaExecution(conn)


def statement(db: Database) -> AbstractContextManager[SqlaExecution | DriverExecution]:
    """An execution for a single write: autocommit on PostgreSQL (no BEGIN/COMMIT round
    trips), on a lent connection where the database lends them; ``Database.write_one``'s
    connection otherwise (SQLite, or listeners on the engine or its pool)."""
    if db.lends:
        return DriverExecution(db)
    return _write_one(db)


@contextmanager
def _write_one(db: Database) -> Iterator[SqlaExecution]:
    with db.write_one() as conn:
        yield on(conn)


class SqlaConnector:
    """A :class:`fenced.Connector` over the Store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def transaction(self) -> Iterator[SqlaExecution]:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self._db.write() as conn:
            yield on(conn)

    def statement(self) -> AbstractContextManager[SqlaExecution | DriverExecution]:
        """A single write: autocommit on PostgreSQL."""
        return statement(self._db)
