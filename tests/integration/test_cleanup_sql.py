"""What a delete leaves in the SQL stores: no row naming a deleted task in any table, and
on SQLite the deleting connection's page cache as it was (``clearq.scheduler.cleanup``)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from clearq.config import Settings
from clearq.models import ScalarPoint, TaskSpec, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.schema import UNKEYED_TASK_COLUMNS, metadata, task_dependencies, tasks


@pytest.fixture(params=("sqlite", "postgres"))
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    url = str(request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url"))
    with Store(url, settings=Settings(home=tmp_path / "home")) as store:
        yield store


def _sweep(store: Store, n: int) -> list[uuid.UUID]:
    store.queues.create("q")
    ids = []
    for i in range(n):
        task_id = store.tasks.create(TaskSpec(project="sweep", name=f"trial-{i}")).id
        store.queues.enqueue(task_id, "q")
        ids.append(task_id)
    for _ in range(n):
        [claim] = store.claimer("w", ["q"]).claim(among=["q"])
        store.outputs.append_logs(claim.fence, [("stdout", "epoch 1\n"), ("stderr", "warn\n")])
        points = [ScalarPoint(title="loss", series="train", iteration=i, value=1.0) for i in (1, 2)]
        store.outputs.append_scalars(claim.fence, points)
        store.leases.finish(claim.fence, TaskStatus.COMPLETED, exit_code=0)
    return ids


def _naming(store: Store, ids: list[uuid.UUID]) -> dict[str, int]:
    """Rows of every table naming one of ``ids`` (by foreign key or not), by table.column."""
    columns = [
        fk.parent
        for table in metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column is tasks.c.id
    ]
    found = {}
    with store.db.read() as conn:
        for column in [*columns, *UNKEYED_TASK_COLUMNS]:
            count = sa.select(sa.func.count()).where(column.in_(ids))
            found[f"{column.table.name}.{column.name}"] = conn.execute(count).scalar_one()
    return found


def test_a_chunked_delete_leaves_no_row_naming_its_tasks(
    sql_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import clearq.scheduler.cleanup as cleanup

    monkeypatch.setattr(cleanup, "CHUNK", 3)  # several chunks, several transactions on SQLite
    monkeypatch.setattr(cleanup, "SQLITE_CHUNKS_PER_TRANSACTION", 2)
    ids = _sweep(sql_store, 8)
    kept = sql_store.tasks.create(TaskSpec(project="sweep", name="clone", parent_id=ids[0])).id
    with sql_store.db.write() as conn:  # an edge in each direction between two doomed tasks
        conn.execute(
            task_dependencies.insert().values(
                child_id=ids[1], parent_id=ids[2], continue_on_failure=False
            )
        )
    before = _naming(sql_store, ids)
    assert before["task_logs.task_id"] == 16
    assert before["task_scalars.task_id"] == 16
    assert before["task_events.task_id"] > 0
    report = sql_store.cleanup.delete(ids)
    assert sorted(report.deleted) == sorted(ids)
    assert {name: n for name, n in _naming(sql_store, ids).items() if n} == {}
    assert sql_store.tasks.get(kept).parent_id is None
    with sql_store.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tasks)).scalar_one() == 1


def test_sqlite_delete_gives_the_page_cache_back(sqlite_url: str, tmp_path: Path) -> None:
    with Store(sqlite_url, settings=Settings(home=tmp_path / "home")) as store:
        ids = _sweep(store, 3)
        with store.db.read() as conn:
            default = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
        store.cleanup.delete(ids)
        # The pool hands out the same connection again: its cache is SQLite's default again.
        with store.db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == default
