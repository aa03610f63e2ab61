"""Archiving and deleting tasks through the real ``clearq`` command, on SQLite and PostgreSQL.

A real training script reports logs, scalars, a plot, a debug sample, an artifact and a
model; ``clearq task delete`` must leave no row naming the task in any table and none of
its files.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlparse

import sqlalchemy as sa

from clearq.scheduler import Store
from clearq.scheduler.schema import metadata, task_dependencies, tasks
from clearq.sdk.storage import local_file_path
from tests.acceptance.conftest import Cli, run_script

TRIAL = """
from pathlib import Path
from clearq import OutputModel, Task

task = Task.init(project_name="sweep", task_name="trial")
logger = task.get_logger()
print("training")
for i in range(3):
    logger.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
logger.report_histogram("hist", "values", values=[1, 2, 3], iteration=0)
Path("sample.txt").write_text("a sample")
logger.report_media("media", "text", iteration=0, local_path="sample.txt")
task.upload_artifact("data", artifact_object={"a": 1})
Path("weights.bin").write_bytes(b"weights")
OutputModel(task=task, name="net").update_weights("weights.bin")
task.close()
print(task.id)
"""


def _rows_naming(store: Store, ids: list[uuid.UUID]) -> dict[str, int]:
    """Rows naming any of ``ids``, per referencing table (and tasks itself)."""
    counts: dict[str, int] = {}
    with store.db.read() as conn:
        for table in metadata.sorted_tables:
            columns = [c for c in table.c if c.name == "task_id"]
            if table is task_dependencies:
                columns = [table.c.child_id, table.c.parent_id]
            if table is tasks:
                columns = [tasks.c.id, tasks.c.parent_id]
            if not columns:
                continue
            naming = sa.or_(*(c.in_(ids) for c in columns))
            query = sa.select(sa.func.count()).select_from(table).where(naming)
            counts[table.name] = int(conn.execute(query).scalar_one())
    return counts


def _files_of(store: Store, task_id: uuid.UUID) -> list[Path]:
    uris = [a.uri for a in store.outputs.artifacts(task_id)]
    uris += [s.uri for s in store.reported.samples(task_id)]
    uris += [m.uri for m in store.registry.of_task(task_id) if m.uri]
    assert all(urlparse(u).scheme in ("", "file") for u in uris)
    return [local_file_path(u) for u in uris]


def test_delete_removes_every_row_and_file_of_its_tasks(
    cli: Cli, store: Store, clearml_env: dict[str, str], tmp_path: Path
) -> None:
    out = run_script(tmp_path / "run", "trial.py", TRIAL, clearml_env)
    trial = uuid.UUID(out.split()[-1])
    script = tmp_path / "job.py"
    script.write_text("print('job')\n")
    cli.run("queue", "create", "q")
    made = cli.json(
        "task", "create", "--project", "sweep", "--name", "child", "--script", str(script)
    )
    child = uuid.UUID(made["id"])
    store.queues.enqueue(child, "q", depends_on=[trial])
    # A clone of the trial in another project: it stays, without its parent.
    keeper = store.tasks.clone(trial, name="kept clone")
    store.admin.annotate(keeper.id, project="elsewhere")
    files = _files_of(store, trial)
    assert len(files) == 3
    assert all(f.is_file() for f in files)
    before = _rows_naming(store, [trial, child])
    filled = {name for name, n in before.items() if n > 0}
    reported = {"task_logs", "task_scalars", "task_scalar_summary", "task_plots", "task_samples"}
    reported |= {"task_artifacts", "task_models", "task_events", "queue_entries", "tasks"}
    assert filled >= {*reported, "task_dependencies"}  # rows to delete in each of them

    preview = cli.run("task", "delete", "--project", "sweep", "--status", "completed").stdout
    assert "would delete 1 task(s)" in preview
    assert "add --yes" in preview
    assert store.tasks.get(trial).name == "trial"  # a preview deletes nothing

    done = cli.run("task", "delete", "--project", "sweep", "--yes").stdout
    assert "deleted 2 task(s) and 3 file(s)" in done
    after = _rows_naming(store, [trial, child])
    assert after == dict.fromkeys(before, 0)
    assert not any(f.exists() for f in files)
    assert not (tmp_path / "home" / "artifacts" / str(trial)).exists()
    assert store.tasks.get(keeper.id).parent_id is None
    assert cli.json("queue", "list")[0]["length"] == 0


def test_a_running_task_is_deleted_only_with_force(cli: Cli, store: Store, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('job')\n")
    made = cli.json("task", "create", "--project", "p", "--name", "live", "--script", str(script))
    fence = store.tasks.start(uuid.UUID(made["id"]))
    refused = cli.fails("task", "delete", made["id"])
    assert f"task {made['id']} is running: abort it first" in refused
    assert "--force" in refused
    assert cli.json("task", "show", made["id"])["status"] == "running"
    assert "deleted 1 task(s)" in cli.run("task", "delete", made["id"], "--force").stdout
    assert cli.fails("task", "show", made["id"]).startswith("error: no task with id")
    assert store.leases.heartbeat(None, [fence]).lost == {fence.task_id}


def test_archived_tasks_stay_readable_and_leave_the_lists(
    cli: Cli, clearml_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('job')\n")
    create = ("task", "create", "--project", "p", "--script", str(script))
    old = cli.json(*create, "--name", "old")["id"]
    new = cli.json(*create, "--name", "new")["id"]
    assert "archived 1 task(s)" in cli.run("task", "archive", old[:8]).stdout
    assert [t["name"] for t in cli.json("task", "list")] == ["new"]
    assert [t["name"] for t in cli.json("task", "list", "--archived")] == ["old"]
    shown = cli.json("task", "show", old)
    assert shown["archived_at"] is not None
    assert "archived" in cli.run("task", "show", old).stdout
    # The SDK keeps ClearML's meaning: archived tasks are listed unless told not to.
    listing = (
        "from clearq import Task\n"
        "print(sorted(t.name for t in Task.get_tasks(allow_archived=False)))\n"
        "print(sorted(t.name for t in Task.get_tasks()))\n"
    )
    out = run_script(tmp_path / "sdk", "list.py", listing, clearml_env).splitlines()
    assert out == ["['new']", "['new', 'old']"]
    # By filter: listed first, archived with --yes.
    assert "would archive 1 task(s)" in cli.run("task", "archive", "--project", "p").stdout
    assert "archived 1 task(s)" in cli.run("task", "archive", "--project", "p", "--yes").stdout
    assert cli.json("task", "list") == []
    assert "unarchived 2 task(s)" in cli.run("task", "unarchive", old, new).stdout
    assert sorted(t["name"] for t in cli.json("task", "list")) == ["new", "old"]
    assert "nothing was changed" in cli.fails("task", "archive", old, str(uuid.uuid4()))
