"""Every fenced-write statement names only real columns, and each insert writes all it must.

The statements of ``clearq/scheduler/statements.py`` are plain SQL, so nothing but these
tests ties them to ``schema.py``: each is compiled by the database itself (EXPLAIN, which
plans without running), on both dialects, and each INSERT's column list is checked
against the table's NOT NULL columns that have no default.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
import sqlalchemy as sa

from clearq.scheduler import Store
from clearq.scheduler import statements as q
from clearq.scheduler.schema import metadata

_PARAM = re.compile(r"(?<![:\w]):([a-z_0-9]+)")
_INSERT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\)")
_QUALIFIED = re.compile(r"\b(tasks|parent|child|d|v|task_scalar_summary)\.(\w+)")
_ALIASES = {"parent": "tasks", "child": "tasks", "d": "task_dependencies"}


def _sql(statement: q.Statement, postgres: bool) -> str:
    if statement is q.FINISH_MANY_PG:
        return q.render(statement, postgres, rows=q.finish_many_rows(2))
    return q.render(statement, postgres)


def _params(statement: q.Statement) -> dict[str, object]:
    rendered = _sql(statement, postgres=False)
    return {name: None for name in _PARAM.findall(rendered)}


def _statements(postgres: bool) -> list[q.Statement]:
    # The PostgreSQL-only statements (a VALUES update, advisory locks, NOTIFY).
    pg_only = {q.FINISH_MANY_PG, q.FRONT_LOCK, q.NOTIFY}
    return [s for s in q.ALL if postgres or s not in pg_only]


def test_the_list_of_statements_is_complete() -> None:
    names = [s.name for s in q.ALL]
    assert len(names) == len(set(names)), "two statements share a name"
    assert {"insert_task", "renew", "finish", "upsert_summary", "blocked"} <= set(names)


def test_every_statement_compiles_on_the_dialect(store: Store) -> None:
    """The database itself resolves every table and column each statement names."""
    postgres = store.db.is_postgres
    with store.db.write() as conn:
        for statement in _statements(postgres):
            sql = _sql(statement, postgres)
            params = _params(statement)
            try:
                conn.exec_driver_sql(f"EXPLAIN {sql}", params)
            except (sa.exc.DBAPIError, sqlite3.Error) as e:
                pytest.fail(f"statement {statement.name} does not compile: {e}")


def test_every_qualified_column_is_in_the_schema() -> None:
    """A second, static look: ``table.column`` references name real columns."""
    columns = {t.name: set(t.c.keys()) for t in metadata.tables.values()}
    for statement in q.ALL:
        for table, column in _QUALIFIED.findall(_sql(statement, postgres=True)):
            if table == "v":
                continue  # the VALUES list of finish_many, named in the statement itself
            real = _ALIASES.get(table, table)
            assert column in columns[real], f"{statement.name}: {table}.{column} is no column"


@pytest.mark.parametrize(
    "statement", [s for s in q.ALL if _INSERT.search(s.template)], ids=lambda s: s.name
)
def test_each_insert_writes_every_required_column(statement: q.Statement) -> None:
    """A NOT NULL column without a default that an insert leaves out fails at runtime."""
    match = _INSERT.search(statement.template)
    assert match is not None
    table = metadata.tables[match.group(1)]
    written = {c.strip() for c in match.group(2).split(",")}
    assert written <= set(table.c.keys()), f"{statement.name} names unknown columns"
    required = {
        c.name
        for c in table.c
        if not c.nullable
        and c.server_default is None
        and c.default is None
        and not (c.primary_key and c.autoincrement is True)
    }
    assert required <= written, f"{statement.name} leaves out {sorted(required - written)}"
