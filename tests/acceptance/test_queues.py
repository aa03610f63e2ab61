"""``clearq queue``: create, list and delete queues."""

from __future__ import annotations

from clearq.models import TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Cli


def test_create_and_list(cli: Cli, store: Store, store_url: str) -> None:
    cli.run("queue", "create", "gpu", "--gpus", "2")
    # --database-url wins over the environment, which here names no reachable server.
    unreachable = {"CLEARQ_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    cli.run("--database-url", store_url, "queue", "create", "cpu", env=unreachable)
    assert "a queue named 'cpu' exists already" in cli.fails("queue", "create", "cpu")
    task = store.tasks.create(TaskSpec(project="p", name="t"))
    store.queues.enqueue(task.id, "gpu")

    listed = cli.json("queue", "list")
    assert [(q["name"], q["gpus"], q["length"]) for q in listed] == [
        ("cpu", 0, 0),
        ("gpu", 2, 1),
    ]
    assert listed[0]["oldest_enqueued_at"] is None
    assert listed[1]["oldest_enqueued_at"] is not None

    rows = [line.split() for line in cli.run("queue", "list").stdout.splitlines()]
    assert rows[0] == ["NAME", "GPUS", "LENGTH", "OLDEST", "WAIT", "TAGS", "DESCRIPTION"]
    assert rows[1] == ["cpu", "0", "0", "-", "-", "-"]  # no wait, no tags, no description
    assert rows[2][:3] == ["gpu", "2", "1"]


def test_delete_is_refused_while_tasks_wait_unless_forced(cli: Cli, store: Store) -> None:
    store.queues.create("q")
    task = store.tasks.create(TaskSpec(project="p", name="t"))
    store.queues.enqueue(task.id, "q")

    refused = cli.fails("queue", "delete", "q")
    assert "queue 'q' holds 1 task(s)" in refused
    assert "--force" in refused
    assert store.queues.get("q").length == 1
    assert store.tasks.get(task.id).status is TaskStatus.QUEUED

    forced = cli.run("queue", "delete", "q", "--force").stdout
    assert "deleted queue q" in forced
    assert str(task.id) in forced
    assert store.queues.list() == []
    back = store.tasks.get(task.id)
    assert back.status is TaskStatus.CREATED
    assert "queue 'q' was deleted" in back.status_reason


def test_queue_caps_from_the_command_line(cli: Cli, store: Store) -> None:
    out = cli.run("queue", "create", "gpu", "--max-running", "2").stdout
    assert "at most 2 running" in out
    assert store.queues.get("gpu").max_running == 2
    cli.run("queue", "cap", "gpu", "5")
    assert store.queues.get("gpu").max_running == 5
    assert "no cap" in cli.run("queue", "cap", "gpu").stdout
    assert store.queues.get("gpu").max_running is None
