"""Every reference to ``tasks`` goes with the task: deleting tasks is one DELETE per chunk
(``clearq.scheduler.cleanup``), which relies on the foreign keys to remove the rest, and on
a delete trigger for the columns in ``UNKEYED_TASK_COLUMNS`` (the history)."""

from __future__ import annotations

from clearq.scheduler.schema import UNKEYED_TASK_COLUMNS, metadata, tasks


def test_every_reference_to_a_task_cascades_or_is_cleared() -> None:
    found = {
        f"{fk.parent.table.name}.{fk.parent.name}": fk.ondelete
        for table in metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table is tasks
    }
    assert found.pop("tasks.parent_id") == "SET NULL"
    assert "task_logs.task_id" in found
    assert {name: rule for name, rule in found.items() if rule != "CASCADE"} == {}


def test_every_task_column_of_another_table_is_a_reference() -> None:
    # A table naming tasks without a foreign key would keep rows of deleted tasks, unless a
    # delete trigger removes them (tests/integration/test_history_rows.py checks that one).
    loose = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.c
        if column.name in ("task_id", "child_id", "parent_id") and not column.foreign_keys
    ]
    assert loose == [f"{c.table.name}.{c.name}" for c in UNKEYED_TASK_COLUMNS]
    assert loose == ["task_events.task_id"]
