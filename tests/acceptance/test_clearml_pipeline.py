"""ClearML's PipelineController scripts, import changed, driven by hand and as a services
task, with the steps run by real agents on SQLite and PostgreSQL.

The base tasks are made the ClearML way: each step script is run once by hand and calls
``task.execute_remotely()`` (no queue), which leaves it as a draft to clone.
"""

from __future__ import annotations

import json
from pathlib import Path

from clearq import Task
from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, run_script
from tests.conftest import on_one_database

pytestmark = on_one_database("postgres")

STEP_ONE = """
from clearq import Task

task = Task.init(project_name="examples", task_name="pipeline step 1 dataset artifact")
args = {"dataset_url": ""}
task.connect(args)
task.execute_remotely()
task.upload_artifact("dataset", {"rows": [1, 2, 3, 4], "source": args["dataset_url"]})
"""

STEP_TWO = """
import json
from clearq import StorageManager, Task

task = Task.init(project_name="examples", task_name="pipeline step 2 process dataset")
args = {"dataset_url": "", "test_size": 0.5}
task.connect(args)
task.execute_remotely()
local = StorageManager.get_local_copy(args["dataset_url"])
with open(local) as f:
    data = json.load(f)
cut = int(len(data["rows"]) * args["test_size"])
task.upload_artifact("processed", {"train": data["rows"][cut:], "source": data["source"]})
"""

CONTROLLER = """
import json
import sys
from clearq.automation import PipelineController

MARKS = sys.argv[2]


def pre_execute_callback_example(a_pipeline, a_node, current_param_override):
    with open(MARKS, "a") as f:
        f.write(json.dumps({"pre": a_node.name, "base": a_node.base_task_id}) + "\\n")
    current_param_override["General/test_size"] = 0.25
    return True


def post_execute_callback_example(a_pipeline, a_node):
    with open(MARKS, "a") as f:
        f.write(json.dumps({"post": a_node.name, "executed": a_node.executed}) + "\\n")


def total(processed):
    return sum(processed["train"])


pipe = PipelineController(name="pipeline demo", project="examples", version="0.0.1")
pipe.add_parameter(name="url", description="url to the data", default="https://example.com/d.csv")
pipe.set_default_execution_queue("default")
pipe.add_step(
    name="stage_data",
    base_task_project="examples",
    base_task_name="pipeline step 1 dataset artifact",
    parameter_override={"General/dataset_url": "${pipeline.url}"},
)
pipe.add_step(
    name="stage_process",
    parents=["stage_data"],
    base_task_project="examples",
    base_task_name="pipeline step 2 process dataset",
    parameter_override={
        "General/dataset_url": "${stage_data.artifacts.dataset.url}",
        "General/test_size": 0.5,
    },
    pre_execute_callback=pre_execute_callback_example,
    post_execute_callback=post_execute_callback_example,
)
pipe.add_function_step(
    name="stage_total",
    function=total,
    function_kwargs={"processed": "${stage_process.artifacts.processed}"},
    function_return=["total"],
    cache_executed_step=True,
)
if sys.argv[1] == "steps-here":
    pipe.start_locally(run_pipeline_steps_locally=True)
    print("dag", sorted(pipe.get_pipeline_dag()), pipe.is_successful())
elif sys.argv[1] == "locally":
    pipe.start_locally()
    print("dag", sorted(pipe.get_pipeline_dag()), pipe.is_successful())
else:
    pipe.start(queue="services")
"""


def _bases(work: Path, env: dict[str, str]) -> None:
    run_script(work, "step1.py", STEP_ONE, env)
    run_script(work, "step2.py", STEP_TWO, env)


def _check(db: Store, marks: Path) -> None:
    steps = {t.name: t for t in Task.get_tasks(project_name="examples", tags=["pipeline-step"])}
    assert {n: t.get_status() for n, t in steps.items()} == {
        "stage_data": TaskStatus.COMPLETED,
        "stage_process": TaskStatus.COMPLETED,
        "stage_total": TaskStatus.COMPLETED,
    }
    data = steps["stage_data"]
    assert data.get_parameters()["General/dataset_url"] == "https://example.com/d.csv"
    process = steps["stage_process"]
    assert process.get_parameters()["General/dataset_url"] == data.artifacts["dataset"].url
    assert process.get_parameters()["General/test_size"] == "0.25"  # set by the callback
    assert process.artifacts["processed"].get() == {
        "train": [2, 3, 4],
        "source": "https://example.com/d.csv",
    }
    assert steps["stage_total"].artifacts["total"].get() == 9
    lines = [json.loads(line) for line in marks.read_text().splitlines()]
    assert lines == [
        {"pre": "stage_process", "base": lines[0]["base"]},
        {"post": "stage_process", "executed": process.id},
    ]
    base = Task.get_task(project_name="examples", task_name="pipeline step 2 process dataset")
    assert lines[0]["base"] == base.id


def test_a_controller_driven_locally_runs_its_steps_on_an_agent(
    clearml_db: Store,
    clearml_env: dict[str, str],
    agents: Agents,
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    _bases(work, clearml_env)
    clearml_db.queues.create("default")
    agents.start("-q", "default", "--idle-exit", "20")
    marks = tmp_path / "marks.jsonl"
    out = run_script(work, "controller.py", CONTROLLER, clearml_env, "locally", str(marks))
    assert "dag ['stage_data', 'stage_process', 'stage_total'] True" in out
    _check(clearml_db, marks)


def test_start_locally_can_run_the_steps_here_too(
    clearml_db: Store,
    clearml_env: dict[str, str],
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    _bases(work, clearml_env)
    clearml_db.queues.create("default")  # the steps pass through it; no agent serves it
    marks = tmp_path / "marks.jsonl"
    out = run_script(work, "controller.py", CONTROLLER, clearml_env, "steps-here", str(marks))
    assert "dag ['stage_data', 'stage_process', 'stage_total'] True" in out
    _check(clearml_db, marks)
    workers = {t.data.worker for t in Task.get_tasks(tags=["pipeline-step"])}
    assert all(w and ":run-" in w for w in workers)  # each ran by `clearq task run` here


def test_start_sends_the_controller_to_the_services_queue(
    clearml_db: Store,
    clearml_env: dict[str, str],
    agents: Agents,
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    _bases(work, clearml_env)
    clearml_db.queues.create("default")
    clearml_db.queues.create("services")
    marks = tmp_path / "marks.jsonl"
    out = run_script(work, "controller.py", CONTROLLER, clearml_env, "queue", str(marks))
    assert "dag" not in out  # the controller left for the services queue
    (controller,) = Task.get_tasks(project_name="examples", task_name="pipeline demo")
    assert controller.data.type == "controller"
    # The controller clones and enqueues its steps: it needs the database, which only an
    # agent started with --allow-controllers gives its tasks.
    agents.start("-q", "services", "--name", "services", "--idle-exit", "20", "--allow-controllers")
    agents.start("-q", "default", "--name", "steps", "--idle-exit", "20")
    assert controller.wait_for_status(timeout=120) is TaskStatus.COMPLETED
    _check(clearml_db, marks)
