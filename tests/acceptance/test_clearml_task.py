"""ClearML-style scripts, with only the import changed, run by hand and by real agents.

Each script is written the way ClearML's documentation shows the feature (task types,
``task.logger``, user properties, tags, class-based parameters, artifacts by any name,
watched DataFrames, ``reuse_last_task_id``, ``continue_last_task``,
``execute_remotely`` without a queue, ``create_function_task``) and runs in its own
process against a real database, once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

from clearq import Task
from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, run_script
from tests.conftest import on_one_database

pytestmark = on_one_database("sqlite")

SURFACE = """
import pandas as pd
from clearq import Task, TaskTypes
from clearq.task_parameters import TaskParameters, param, percent_param


class Params(TaskParameters):
    iterations = param(type=int, desc="Number of iterations to run", range=(0, 1000), default=5)
    target_accuracy = percent_param(desc="The target accuracy", default=0.5)


task = Task.init(
    project_name="examples",
    task_name="surface",
    task_type=Task.TaskTypes.testing,
    output_uri=True,
)
assert Task.TaskTypes is TaskTypes
params = Params()
task.connect(params)
print(f"local={Task.running_locally()} iterations={params.iterations}")
for i in range(params.iterations):
    task.logger.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
task.set_user_properties(backbone="resnet", stable=True)
task.add_tags(["exp", "v1"])
task.set_comment("a ClearML-style run")
task.set_name("surface renamed")
frame = pd.DataFrame({"a": [1, 2]})
task.upload_artifact("my data frame", frame, wait_on_upload=False, metadata={"rows": 2})
task.register_artifact("watched rows", frame)
frame.loc[len(frame)] = [3]
task.flush(wait_for_uploads=True)
print(task.get_project_name(), task.get_status(), sorted(task.get_registered_artifacts()))
"""


def test_a_clearml_style_script_by_hand_then_its_clone_on_an_agent(
    clearml_db: Store, clearml_env: dict[str, str], agents: Agents, tmp_path: Path
) -> None:
    out = run_script(tmp_path / "work", "surface.py", SURFACE, clearml_env)
    assert "local=True iterations=5" in out
    assert "examples running ['watched rows']" in out
    (task,) = Task.get_tasks(project_name="examples")
    record = task.data
    assert (record.type, record.name) == ("testing", "surface renamed")
    assert record.comment == "a ClearML-style run"
    assert record.status is TaskStatus.COMPLETED
    assert {"exp", "v1"} <= set(task.get_tags())
    assert task.get_user_properties(value_only=True) == {"backbone": "resnet", "stable": "True"}
    assert task.get_parameters()["General/iterations"] == "5"
    frame = task.artifacts["my data frame"]
    assert frame.metadata == {"rows": 2}
    assert frame.get()["a"].tolist() == [1, 2]
    assert Path(str(frame.get_local_copy())).is_file()
    assert task.artifacts["watched rows"].get()["a"].tolist() == [1, 2, 3]
    assert record.output_uri == str(Path(clearml_env["CLEARQ_HOME"]) / "artifacts")

    clearml_db.queues.create("default")
    clone = Task.clone(task, name="surface on an agent")
    clone.set_parameters({"General/iterations": 7})
    clone.enqueue("default")
    agents.run("-q", "default", "--once")
    assert clone.wait_for_status(timeout=60) is TaskStatus.COMPLETED
    logs = "".join(clone.get_reported_console_output())
    assert "local=False iterations=7" in logs
    assert len(clone.get_reported_scalars()["loss"]["train"]["x"]) == 7
    assert clone.artifacts["watched rows"].get()["a"].tolist() == [1, 2, 3]


REUSE = """
import sys
from clearq import Task

mode = sys.argv[1]
if mode == "continue":
    task = Task.init(project_name="examples", task_name="reuse", continue_last_task=True)
elif mode == "new":
    task = Task.init(project_name="examples", task_name="reuse", reuse_last_task_id=False)
else:
    task = Task.init(project_name="examples", task_name="reuse")
for i in range(3):
    task.get_logger().report_scalar("loss", "train", value=float(i), iteration=i)
if mode == "artifact":
    task.upload_artifact("result", {"ok": True})
print(task.id)
"""


def test_reuse_last_task_id_and_continue_last_task(
    clearml_db: Store, clearml_env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    first = run_script(work, "reuse.py", REUSE, clearml_env, "plain").strip()
    again = run_script(work, "reuse.py", REUSE, clearml_env, "plain").strip()
    assert again == first  # run again by hand: the same task, not a new draft
    task = Task.get_task(task_id=first)
    assert task.get_reported_scalars()["loss"]["train"]["x"] == [0, 1, 2]

    continued = run_script(work, "reuse.py", REUSE, clearml_env, "continue").strip()
    assert continued == first
    assert task.get_reported_scalars()["loss"]["train"]["x"] == [0, 1, 2, 3, 4, 5]

    forced = run_script(work, "reuse.py", REUSE, clearml_env, "new").strip()
    assert forced != first
    with_result = run_script(work, "reuse.py", REUSE, clearml_env, "artifact").strip()
    assert with_result == forced  # reused: it had no artifacts yet
    after = run_script(work, "reuse.py", REUSE, clearml_env, "plain").strip()
    assert after not in (first, forced)  # the last one stored a result: kept, a new task
    assert len(Task.get_tasks(project_name="examples", task_name="reuse")) == 3


REMOTE = """
import argparse
from clearq import Task

task = Task.init(project_name="examples", task_name="remote")
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.01)
args = parser.parse_args()
task.execute_remotely(queue_name=None)
print(f"running on an agent with lr={args.lr}")
"""


def square(x: int) -> int:
    """A function task's body: stands alone."""
    return x * x


def test_execute_remotely_without_a_queue_leaves_a_draft_an_agent_runs_later(
    clearml_db: Store, clearml_env: dict[str, str], agents: Agents, tmp_path: Path
) -> None:
    out = run_script(tmp_path / "work", "remote.py", REMOTE, clearml_env, "--lr", "0.1")
    assert "running on an agent" not in out
    (draft,) = Task.get_tasks(project_name="examples", task_name="remote")
    assert draft.get_status() is TaskStatus.CREATED
    assert draft.get_parameters()["Args/lr"] == "0.1"
    assert draft.data.queue is None
    clearml_db.queues.create("default")
    draft.set_parameters({"Args/lr": 0.5})
    draft.enqueue("default")
    function = draft.create_function_task(square, task_name="square", x=7)
    function.enqueue("default")
    agents.run("-q", "default", "--idle-exit", "3")
    assert draft.wait_for_status(timeout=60) is TaskStatus.COMPLETED
    assert "running on an agent with lr=0.5" in "".join(draft.get_reported_console_output())
    assert function.wait_for_status(timeout=60) is TaskStatus.COMPLETED
    assert function.artifacts["return"].get() == 49


CLONE_REMOTELY = """
from clearq import Task

task = Task.init(project_name="examples", task_name="clone remotely")
task.connect({"lr": 0.1})
clone = task.execute_remotely(queue_name="default", clone=True, exit_process=False)
print(f"still here, clone {clone.id}")
"""


def test_execute_remotely_with_clone_sends_a_copy_and_keeps_running(
    clearml_db: Store, clearml_env: dict[str, str], tmp_path: Path
) -> None:
    clearml_db.queues.create("default")
    out = run_script(tmp_path / "work", "clone.py", CLONE_REMOTELY, clearml_env)
    clone_id = out.split("clone ")[1].strip()
    tasks = {t.id: t for t in Task.get_tasks(project_name="examples", task_name="clone remotely")}
    copy = tasks.pop(clone_id)
    (original,) = tasks.values()
    assert copy.get_status() is TaskStatus.QUEUED
    assert copy.get_parameters()["General/lr"] == "0.1"
    assert original.get_status() is TaskStatus.COMPLETED
