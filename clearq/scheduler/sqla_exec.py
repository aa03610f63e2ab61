"""The Store's adapter of ``fenced.Execution``: a SQLAlchemy connection, at the driver level.

The statements of ``statements.py`` are rendered for the driver's own parameter style and
sent with ``exec_driver_sql``, so the Store sends exactly the text a run sends over its
bare connection (``runlink.py``), and SQLAlchemy adds no compilation on the hot path.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from clearq.scheduler.engine import Database


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
    proxied = conn.connection
    dbapi = conn.dialect.loaded_dbapi
    cursor = proxied.cursor()
    try:
        cursor.execute(sql, dict(params))
        return list(cursor.fetchall()) if cursor.description is not None else []
    except dbapi.Error as e:
        lost = conn.dialect.is_disconnect(e, proxied.dbapi_connection, cursor)
        if lost:
            conn.invalidate(e)
        raise DBAPIError.instance(
            sql, dict(params), e, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from e
    finally:
        cursor.close()


def on(conn: Connection) -> SqlaExecution:
    """The execution of ``conn`` (a connection inside its transaction)."""
    return SqlaExecution(conn)


class SqlaConnector:
    """A :class:`fenced.Connector` over the Store's database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextmanager
    def transaction(self) -> Iterator[SqlaExecution]:
        """A write transaction (BEGIN IMMEDIATE on SQLite)."""
        with self._db.write() as conn:
            yield on(conn)

    @contextmanager
    def statement(self) -> Iterator[SqlaExecution]:
        """A single write: autocommit on PostgreSQL."""
        with self._db.write_one() as conn:
            yield on(conn)
