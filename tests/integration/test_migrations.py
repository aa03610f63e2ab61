"""Migrations: from empty they give exactly the table definitions; upgrade is idempotent."""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from clearq.errors import SchemaError
from clearq.scheduler import Database, Store, current_revision, head_revision, upgrade
from clearq.scheduler.schema import metadata, task_events, tasks
from tests.pgserver import PgServer, unique_database_name


@pytest.fixture(params=["sqlite", "postgres"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
        yield db
        db.dispose()
        return
    request.applymarker(pytest.mark.postgres)
    server: PgServer = request.getfixturevalue("pg_server")
    name = unique_database_name("clearq_mig")
    db = Database(server.create_database(name))
    yield db
    db.dispose()
    server.drop_database(name)


def _schema_diff(db: Database) -> list[tuple[str, str]]:
    with db.read() as conn, warnings.catch_warnings():
        # SQLite cannot reflect an index on a DESC expression; it is checked on its own below.
        warnings.filterwarnings("ignore", message=".*expression-based index.*")
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), metadata
        )
    found = [(d[0], getattr(d[1], "name", str(d[1]))) for d in diff]
    if db.dialect == "sqlite":
        found = [d for d in found if d[1] not in _DESC_INDEXES]
    return found


_DESC_INDEXES = (
    "ix_queue_entries_claim_order",
    "ix_queue_entries_fair_order",
    "ix_queue_entries_ready",
)


def test_upgrade_from_empty_matches_the_table_definitions(empty_db: Database) -> None:
    assert current_revision(empty_db) is None
    upgrade(empty_db)
    assert current_revision(empty_db) == head_revision()
    assert _schema_diff(empty_db) == []


def test_schema_comparison_sees_a_difference(empty_db: Database) -> None:
    upgrade(empty_db)
    with empty_db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE stray (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("DROP INDEX ix_tasks_project")
    assert ("remove_table", "stray") in _schema_diff(empty_db)
    assert ("add_index", "ix_tasks_project") in _schema_diff(empty_db)


def test_upgrade_twice_is_a_no_op(empty_db: Database) -> None:
    upgrade(empty_db)
    with empty_db.read() as conn:
        before = sorted(conn.dialect.get_table_names(conn))
    upgrade(empty_db)
    with empty_db.read() as conn:
        after = sorted(conn.dialect.get_table_names(conn))
    assert before == after
    assert "tasks" in after
    assert current_revision(empty_db) == head_revision()


@pytest.mark.parametrize("index", _DESC_INDEXES)
def test_claim_order_indexes_exist(empty_db: Database, index: str) -> None:
    upgrade(empty_db)
    with empty_db.read() as conn:
        names = {ix["name"] for ix in conn.dialect.get_indexes(conn, "queue_entries")}
        if empty_db.dialect == "sqlite":
            ddl = conn.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE name = :n"), {"n": index}
            ).scalar_one()
        else:
            ddl = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": index}
            ).scalar_one()
    assert index in names
    assert "priority DESC" in ddl


def test_store_creates_schema_on_an_empty_database(empty_db: Database) -> None:
    store = Store(empty_db.url.render_as_string(hide_password=False))
    store.close()
    assert current_revision(empty_db) == head_revision()


def test_store_refuses_empty_database_when_told_not_to_create(empty_db: Database) -> None:
    url = empty_db.url.render_as_string(hide_password=False)
    with pytest.raises(SchemaError, match="clearq db upgrade"):
        Store(url, create_schema=False)


def test_store_refuses_a_schema_from_a_newer_clearq(empty_db: Database) -> None:
    upgrade(empty_db)
    with empty_db.write() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'fromthefuture'")
    with pytest.raises(SchemaError, match="newer clearq"):
        Store(empty_db.url.render_as_string(hide_password=False))


def test_the_history_triggers_survive_every_migration(empty_db: Database) -> None:
    upgrade(empty_db)
    with empty_db.read() as conn:
        if empty_db.dialect == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tasks'"
        else:
            query = (
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'tasks'::regclass "
                "AND NOT tgisinternal"
            )
        names = set(conn.exec_driver_sql(query).scalars())
    assert names == {
        "task_events_on_insert",
        "task_events_on_update",
        "task_events_on_delete",
        "schedule_triggers_on_update",
        "schedule_tag_triggers_on_update",
        "queue_entries_waiting_on_parent",
    }


def test_tasks_parent_id_is_indexed(empty_db: Database) -> None:
    # Deleting a task makes the database find the tasks naming it as parent (ON DELETE
    # SET NULL): without this index, each such look-up scans the whole table.
    upgrade(empty_db)
    with empty_db.read() as conn:
        indexes = {ix["name"]: ix["column_names"] for ix in conn.dialect.get_indexes(conn, "tasks")}
    assert indexes.get("ix_tasks_parent_id") == ["parent_id"]


def test_tasks_archived_by_tag_become_archived(empty_db: Database) -> None:
    # Before migration 0015 ClearML's set_archived put the tag "archived" on a task.
    upgrade(empty_db, "0014")
    when = datetime(2026, 1, 2, tzinfo=UTC)
    row = dict(
        project="p", name="n", type="training", status="completed", status_reason="",
        script={}, env={}, container={}, parameters={}, runtime={}, comment="",
        created_at=when, updated_at=when, attempt=0, tries=0, max_attempts=1,
    )  # fmt: skip
    tagged, plain = uuid.uuid4(), uuid.uuid4()
    columns = [c for c in tasks.c if c.name != "archived_at"]
    before = sa.Table("tasks", sa.MetaData(), *(sa.Column(c.name, c.type) for c in columns))
    with empty_db.write() as conn:
        conn.execute(before.insert(), [
            {**row, "id": tagged, "tags": ["best", "archived"]},
            {**row, "id": plain, "tags": ["archived-ish"]},
        ])  # fmt: skip
    upgrade(empty_db)
    with empty_db.read() as conn:
        found = {
            r.id: r for r in conn.execute(sa.select(tasks.c.id, tasks.c.tags, tasks.c.archived_at))
        }
    assert found[tagged].archived_at == when
    assert found[tagged].tags == ["best"]
    assert found[plain].archived_at is None
    assert found[plain].tags == ["archived-ish"]


def test_history_keeps_its_rows_and_triggers_when_its_foreign_key_goes(empty_db: Database) -> None:
    # 0023 rebuilds task_events on SQLite, whose history triggers on tasks name it.
    upgrade(empty_db, "0022")
    when = datetime(2026, 1, 2, tzinfo=UTC)
    task_id = uuid.uuid4()
    with empty_db.write() as conn:
        conn.execute(tasks.insert().values(
            id=task_id, project="p", name="n", type="training", status="draft",
            status_reason="", script={}, env={}, container={}, parameters={}, runtime={},
            comment="", created_at=when, updated_at=when, attempt=0, tries=0, max_attempts=1,
            tags=[],
        ))  # fmt: skip
    upgrade(empty_db)
    count = sa.select(sa.func.count()).where(task_events.c.task_id == task_id)
    with empty_db.write() as conn:
        assert conn.execute(count).scalar_one() == 1
        conn.execute(tasks.update().where(tasks.c.id == task_id).values(status="queued"))
        assert conn.execute(count).scalar_one() == 2
        conn.execute(tasks.delete().where(tasks.c.id == task_id))
        assert conn.execute(count).scalar_one() == 0
