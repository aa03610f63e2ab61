"""The no-code workflow from a terminal: create a task from a repository or a script,
clone it with parameters set, enqueue it, and let a real agent run it (both databases)."""

from __future__ import annotations

import uuid
from pathlib import Path

from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, Cli
from tests.conftest import on_one_database
from tests.gitrepo import published

pytestmark = on_one_database("sqlite")

TRAIN = """
import argparse
from clearq import Task

task = Task.init(project_name="cli", task_name="train")
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
config = task.connect({"layers": 2})
print(f"lr={args.lr} epochs={args.epochs} layers={config['layers']}")
"""


def test_create_clone_set_params_and_run_from_the_terminal(
    cli: Cli, store: Store, agents: Agents, tmp_path: Path
) -> None:
    repository = published(tmp_path, {"train.py": TRAIN}, message="train")
    store.queues.create("default")
    made = cli.json(
        "task", "create", "--project", "cli", "--name", "train",
        "--repo", str(repository.origin), "--commit", repository.commit,
        "--script", "train.py", "--args", "lr=0.05", "--args", "--epochs=2",
    )  # fmt: skip
    assert made["status"] == "created"
    assert made["script"]["entry_point"] == "train.py"
    assert made["parameters"] == {"Args/lr": "0.05", "Args/epochs": "2"}
    clone = cli.json(
        "task", "clone", made["id"], "--name", "lr 0.1",
        "--set", "Args/lr=0.1", "--set", "General/layers=4", "--queue", "default",
    )  # fmt: skip
    assert (clone["name"], clone["status"], clone["queue"]) == ("lr 0.1", "queued", "default")
    edited = cli.run("task", "set-params", made["id"], "Args/epochs=3").stdout
    assert "Args/epochs = 3" in edited
    agents.run("-q", "default", "--once", "--allow-local-repositories")
    ran = store.tasks.get(uuid.UUID(clone["id"]))
    assert ran.status is TaskStatus.COMPLETED
    logs = "".join(line.text for line in store.outputs.logs(ran.id))
    assert "lr=0.1 epochs=2 layers=4" in logs


def test_create_from_a_local_script_and_clear_errors(cli: Cli, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('job')\n")
    made = cli.json(
        "task", "create", "--project", "cli", "--name", "job", "--script", str(script),
        "--packages", "numpy==2.0.0", "--task-type", "data_processing",
    )  # fmt: skip
    assert made["script"]["source"] == "print('job')\n"
    assert made["env"]["requirements"] == ["numpy==2.0.0"]
    assert made["type"] == "data_processing"
    error = cli.fails("task", "clone", made["id"], "--set", "lr=0.1")
    assert "'lr=0.1' is not SECTION/NAME=VALUE" in error
    error = cli.fails("task", "create", "--project", "p", "--name", "n", "--script", "nope.py")
    assert "is not a file" in error
    error = cli.fails(
        "task", "create", "--project", "p", "--name", "n", "--script", str(script),
        "--task-type", "bogus",
    )  # fmt: skip
    assert "task_type 'bogus' is not one of" in error
