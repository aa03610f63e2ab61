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
        result = self._conn.exec_driver_sql(sql, dict(params))
        return [tuple(r) for r in result.all()] if result.returns_rows else []

    def execute_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement for each row of parameters."""
        self._conn.exec_driver_sql(sql, [dict(r) for r in rows])


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
