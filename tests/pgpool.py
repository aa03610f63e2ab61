"""Hand the tests' PostgreSQL databases on to the next test instead of dropping each one.

On PostgreSQL 15 ``DROP DATABASE`` makes the server take a checkpoint, which waits for every
dirty page to reach the disk: with other tests' agents writing, 1.0-2.6 s a drop here
(load 6-8), and the suite drops one database per PostgreSQL test. A database a test hands
back is instead, once nobody is connected to it:

1. renamed to a new unique name, so that nothing the test left behind (an agent it did
   not stop, a connection string it printed) reaches the next test: to them the database
   is gone, as after a drop;
2. compared with a fresh copy of the template: its tables, columns, indexes,
   constraints, triggers, functions, types, privileges and settings (`FINGERPRINT`). A
   test that changed any of them (a storage parameter, a grant, a migration) gets its
   database dropped as before;
3. emptied: every row of every table but ``alembic_version`` deleted, every sequence
   restarted.

Then the next test of this process takes it (a pool per process: pytest-xdist workers
never share one).
"""

from __future__ import annotations

import time
from typing import Final

import psycopg
from psycopg import sql

from tests.pgserver import PgServer, unique_database_name

FINGERPRINT: Final = """
WITH ns AS (
    SELECT oid FROM pg_namespace
     WHERE nspname NOT IN ('pg_catalog', 'information_schema')
       AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%'
)
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
    SELECT format('ns %s %s', nspname, nspacl) FROM pg_namespace WHERE oid IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('rel %s %s %s %s %s', c.relname, c.relkind, c.relpersistence, c.reloptions,
                  c.relacl)
      FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('col %s %s %s %s %s', c.relname, a.attname, a.atttypid::regtype,
                  a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relnamespace IN (SELECT oid FROM ns) AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('con %s %s %s', conname, conrelid::regclass, pg_get_constraintdef(oid))
      FROM pg_constraint WHERE connamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE c.relnamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('trg %s %s %s', tgrelid::regclass, tgname, tgenabled)
      FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT format('fn %s %s %s', p.oid::regprocedure, md5(p.prosrc), p.proacl)
      FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('type %s', t.oid::regtype) FROM pg_type t
     WHERE t.typnamespace IN (SELECT oid FROM ns)
    UNION ALL
    SELECT format('policy %s %s', polrelid::regclass, polname) FROM pg_policy
    UNION ALL
    SELECT format('rule %s %s', ev_class::regclass, rulename) FROM pg_rewrite r
      JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace IN (SELECT oid FROM ns)
       AND r.rulename <> '_RETURN'
    UNION ALL
    SELECT format('ext %s %s', extname, extversion) FROM pg_extension
    UNION ALL
    SELECT format('db %s', d.datacl) FROM pg_database d WHERE d.datname = current_database()
    UNION ALL
    SELECT format('setting %s %s', s.setrole, s.setconfig) FROM pg_db_role_setting s
      JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database()
    UNION ALL
    SELECT format('prepared %s', gid) FROM pg_prepared_xacts WHERE database = current_database()
) items(item)
"""
"""One hash of everything in a database that a test could change besides table rows."""

_KEPT_TABLES: Final = frozenset({"alembic_version"})
_DISCONNECT_SECONDS: Final = 10.0


class DatabasePool:
    """This process's migrated test databases: `take` one, `give_back` it after the test."""

    def __init__(self, server: PgServer, template: str) -> None:
        self._server = server
        self._template = template
        self._free: list[str] = []
        self._reference: tuple[str, list[tuple[object, ...]]] | None = None
        """A fresh copy's fingerprint and kept rows, read from the first database made."""
        self.reused = 0
        self.dropped = 0

    def take(self) -> str:
        """A database of the template's schema and no rows, its name never handed out before."""
        if self._free:
            return self._free.pop()
        name = unique_database_name()
        self._server.create_database(name, template=self._template)
        if self._reference is None:
            with self._server.connect(name) as conn:
                self._reference = (_fingerprint(conn), _kept_rows(conn))
        return name

    def give_back(self, name: str) -> None:
        """Empty ``name`` for the next test, or drop it where it cannot be reused as it is."""
        fresh = self._rename_when_idle(name)
        if fresh is None or not self._reset(fresh):
            self.dropped += 1
            self._server.drop_database(fresh or name)
            return
        self.reused += 1
        self._free.append(fresh)

    def close(self) -> None:
        """Drop the databases waiting in the pool."""
        while self._free:
            self._server.drop_database(self._free.pop())

    def _rename_when_idle(self, name: str) -> str | None:
        """Disconnect everyone from ``name`` and rename it; None if that could not be done."""
        fresh = unique_database_name()
        deadline = time.monotonic() + _DISCONNECT_SECONDS
        with self._server.connect() as conn:
            while True:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                try:
                    conn.execute(
                        sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(name), sql.Identifier(fresh)
                        )
                    )
                except psycopg.errors.InvalidCatalogName:  # the test dropped it itself
                    return None
                except psycopg.errors.ObjectInUse:
                    # A terminated backend is still exiting, or something connected again.
                    if time.monotonic() > deadline:
                        return None
                    time.sleep(0.02)
                    continue
                break
        self._server.forget(name)
        self._server.adopt(fresh)
        return fresh

    def _reset(self, name: str) -> bool:
        """Delete the rows of every table but the kept ones; False if the test changed more."""
        assert self._reference is not None  # set by the first take
        with self._server.connect(name) as conn:
            fingerprint, kept = self._reference
            if _fingerprint(conn) != fingerprint or _kept_rows(conn) != kept:
                return False
            conn.execute("SET lock_timeout = '5s'")
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables"
                    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                    " AND NOT (schemaname = 'public' AND tablename = ANY(%s))",
                    (list(_KEPT_TABLES),),
                )
            ]
            sequences = conn.execute(
                "SELECT format('%I.%I', schemaname, sequencename), start_value FROM pg_sequences"
            ).fetchall()
            try:
                with conn.transaction():
                    # Foreign keys and triggers off for the transaction: the rows go in
                    # any order and no trigger writes history or flags for them. DELETE,
                    # not TRUNCATE: TRUNCATE makes new files for every table and index
                    # (0.9 s here for clearq's schema), DELETE of a test's few rows does not.
                    conn.execute("SET LOCAL session_replication_role = replica")
                    for table in tables:
                        conn.execute(sql.SQL("DELETE FROM {}").format(sql.SQL(table)))
                    for sequence, start in sequences:
                        conn.execute("SELECT setval(%s::regclass, %s, false)", (sequence, start))
            except psycopg.errors.LockNotAvailable:
                return False
        return True


def _fingerprint(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    row = conn.execute(FINGERPRINT).fetchone()
    assert row is not None
    return str(row[0])


def _kept_rows(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted(tuple(r) for r in conn.execute("SELECT * FROM alembic_version").fetchall())
