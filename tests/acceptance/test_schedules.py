"""``clearq schedule`` as a user runs it: the real command, real agents, a real store.

A schedule's clones are run by ordinary agents, with no other process: two agents serve
the queue and every time fires exactly one clone; a trigger fires a clone when a task of
its project completes, with that task's id filled into the clone's parameters. Nothing
asserts timings: waits are on conditions, with generous deadlines.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli

DEADLINE = 120.0
JOB = """
import argparse
from clearq import Task

task = Task.init()
parser = argparse.ArgumentParser()
parser.add_argument("--of", default="")
args = parser.parse_args()
print(f"{task.name} ran for [{args.of}]", flush=True)
"""


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.25)


def _template(cli: Cli, tmp_path: Path, project: str, name: str, *args: str) -> uuid.UUID:
    script = tmp_path / "job.py"
    script.write_text(JOB)
    made = cli.json(
        "task", "create", "--project", project, "--name", name, "--script", str(script), *args
    )
    return uuid.UUID(made["id"])


def _clones(store: Store, template: uuid.UUID) -> list[object]:
    return [t for t in store.tasks.list(limit=1000) if t.parent_id == template]


def test_an_interval_schedule_fires_once_per_time_across_two_agents(
    cli: Cli, store: Store, agents: Agents, tmp_path: Path
) -> None:
    cli.run("queue", "create", "nightly")
    template = _template(cli, tmp_path, "reports", "report")
    schedule_id = int(
        cli.run(
            "schedule", "add", "--task", str(template), "--queue", "nightly", "--every", "2s"
        ).stdout.strip()
    )
    added = time.monotonic()
    listed = cli.json("schedule", "list")
    assert [(s["id"], s["kind"], s["every_seconds"], s["queue"]) for s in listed] == [
        (schedule_id, "every", 2.0, "nightly")
    ]
    for _ in range(2):
        agents.start("--queue", "nightly")

    def completed() -> list[uuid.UUID]:
        done = store.tasks.list(project="reports", status=TaskStatus.COMPLETED, limit=1000)
        return [t.id for t in done if t.parent_id == template]

    _until(lambda: len(completed()) >= 3, "three scheduled clones completed")
    agents.stop_all()
    elapsed = time.monotonic() - added

    info = store.schedules.get(schedule_id)
    clones = [
        store.tasks.get(t.id) for t in store.tasks.list(limit=1000) if t.parent_id == template
    ]
    waiting = [t for t in clones if t.status is TaskStatus.QUEUED]
    ran = [t for t in clones if t.status is not TaskStatus.QUEUED]
    # Exactly one waiting clone, one clone per firing, each run once: never two per time.
    assert [t.id for t in waiting] == [info.next_task_id]
    assert len(ran) == info.fired >= 3
    assert all(t.attempt == 1 for t in ran)
    assert info.fired <= elapsed / 2.0 + 1
    assert "report ran for []" in cli.run("task", "logs", str(completed()[0])).stdout

    removed = cli.run("schedule", "remove", str(schedule_id)).stdout
    assert f"removed schedule {schedule_id}" in removed
    assert cli.json("schedule", "list") == []
    assert store.tasks.list(queue="nightly", status=TaskStatus.QUEUED) == []


def test_a_trigger_runs_a_clone_when_a_task_of_its_project_completes(
    cli: Cli, store: Store, agents: Agents, tmp_path: Path
) -> None:
    for queue in ("train", "eval"):
        cli.run("queue", "create", queue)
    evaluate = _template(cli, tmp_path, "evals", "evaluate", "--args", "of=${trigger.task.id}")
    trigger_id = int(
        cli.run(
            "schedule",
            "trigger",
            "--task",
            str(evaluate),
            "--queue",
            "eval",
            "--on-status",
            "completed",
            "--project",
            "train",
        ).stdout.strip()
    )
    trained = _template(cli, tmp_path, "train", "fit")
    agents.start("--queue", "train", "--queue", "eval")
    agents.wait_for_output(0, "serving")
    # It may still warn that no live worker serves "train" if the agent is slow to show.
    assert cli.run("task", "enqueue", str(trained), "--queue", "train", check=False).returncode == 0

    def evaluated() -> list[uuid.UUID]:
        done = store.tasks.list(project="evals", status=TaskStatus.COMPLETED)
        return [t.id for t in done if t.parent_id == evaluate]

    _until(lambda: len(evaluated()) == 1, "the triggered clone completed")
    run = store.tasks.get(evaluated()[0])
    assert run.parameters["Args/of"] == str(trained)
    assert f"evaluate ran for [{trained}]" in cli.run("task", "logs", str(run.id)).stdout
    info = cli.json("schedule", "show", str(trigger_id))
    assert (info["kind"], info["fired"], info["on_status"], info["on_project"]) == (
        "trigger",
        1,
        "completed",
        "train",
    )
    # Its own clone completing fires nothing: the next clone still waits for an event.
    assert info["pending_events"] == 0
    assert info["next_task_id"] is not None
    assert store.tasks.get(uuid.UUID(info["next_task_id"])).status is TaskStatus.QUEUED


def test_bad_schedules_fail_with_what_to_write(cli: Cli, tmp_path: Path) -> None:
    cli.run("queue", "create", "nightly")
    template = str(_template(cli, tmp_path, "reports", "report"))
    add = ("schedule", "add", "--task", template, "--queue", "nightly")
    assert "either --every" in cli.fails(*add)
    assert "write it as 90s, 15m, 6h" in cli.fails(*add, "--every", "soon")
    assert "minute hour day month weekday" in cli.fails(*add, "--cron", "3am")
    assert "unknown time zone" in cli.fails(*add, "--cron", "0 3 * * *", "--timezone", "Moon")
    assert "clearq queue create" in cli.fails(
        "schedule", "add", "--task", template, "--queue", "x", "--every", "1h"
    )
    assert "clearq schedule list" in cli.fails("schedule", "remove", "99")
    assert cli.json("schedule", "list") == []
