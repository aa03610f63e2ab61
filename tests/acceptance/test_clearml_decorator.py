"""ClearML's PipelineDecorator script, import changed: each component call a task, its
return values artifacts passed to the steps that use them, on real agents (the logic
here, or on the services queue) and all on this machine (run_locally), both databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq import Task
from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, run_script
from tests.conftest import on_one_database

pytestmark = on_one_database("postgres")

PIPELINE = """
import sys
from clearq.automation import PipelineDecorator


@PipelineDecorator.component(return_values=["data_frame"], cache=True)
def step_one(pickle_data_url: str, extra: int = 43):
    rows = [[i, i * i] for i in range(10)]
    return {"url": pickle_data_url, "rows": rows, "extra": extra}


@PipelineDecorator.component(return_values=["X_train", "X_test"])
def step_two(data_frame, test_size=0.2):
    rows = data_frame["rows"]
    cut = int(len(rows) * (1 - test_size))
    return rows[:cut], rows[cut:]


@PipelineDecorator.component(return_values=["model"])
def step_three(X_train):
    return {"slope": sum(y for _, y in X_train) / max(1, sum(x for x, _ in X_train))}


@PipelineDecorator.pipeline(
    name="custom pipeline logic", project="examples", version="0.0.5",
    pipeline_execution_queue=None if sys.argv[1] == "here" else "services",
)
def executing_pipeline(pickle_url, mock_parameter="mock"):
    data_frame = step_one(pickle_url)
    X_train, X_test = step_two(data_frame)
    model = step_three(X_train)
    print(f"test rows={len(X_test)} slope={model['slope']:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "locally":
        PipelineDecorator.run_locally()
    else:
        PipelineDecorator.set_default_execution_queue("default")
    executing_pipeline(pickle_url="https://example.com/iris.pkl")
    print("pipeline completed")
"""


def _steps() -> dict[str, Task]:
    return {t.name: t for t in Task.get_tasks(project_name="examples", tags=["pipeline-step"])}


def _check(steps: dict[str, Task]) -> None:
    assert {n: t.get_status() for n, t in steps.items()} == dict.fromkeys(
        ("step_one", "step_two", "step_three"), TaskStatus.COMPLETED
    )
    assert steps["step_one"].artifacts["data_frame"].get()["url"] == "https://example.com/iris.pkl"
    assert len(steps["step_two"].artifacts["X_train"].get()) == 8
    assert steps["step_three"].artifacts["model"].get()["slope"] == pytest.approx(140 / 28)


@pytest.mark.parametrize("mode", ["here", "locally"])
def test_decorated_pipeline_logic_here_steps_on_agents_or_here(
    clearml_db: Store, clearml_env: dict[str, str], agents: Agents, tmp_path: Path, mode: str
) -> None:
    clearml_db.queues.create("default")
    if mode == "here":
        agents.start("-q", "default", "--idle-exit", "20")
    out = run_script(tmp_path / "work", "pipe.py", PIPELINE, clearml_env, mode)
    assert "test rows=2 slope=5.000" in out
    assert "pipeline completed" in out
    _check(_steps())
    (controller,) = Task.get_tasks(project_name="examples", task_name="custom pipeline logic")
    assert controller.data.type == "controller"
    assert {t.data.parent_id for t in _steps().values()} == {controller.data.id}
    again = run_script(tmp_path / "work", "pipe.py", PIPELINE, clearml_env, mode)
    assert "test rows=2 slope=5.000" in again
    assert len(Task.get_tasks(project_name="examples", task_name="^step_one$")) == 1  # cached


def test_decorated_pipeline_logic_runs_on_the_services_queue(
    clearml_db: Store, clearml_env: dict[str, str], agents: Agents, tmp_path: Path
) -> None:
    clearml_db.queues.create("default")
    clearml_db.queues.create("services")
    out = run_script(tmp_path / "work", "pipe.py", PIPELINE, clearml_env, "remote")
    assert "pipeline completed" not in out  # the logic left for the services queue
    (controller,) = Task.get_tasks(project_name="examples", task_name="custom pipeline logic")
    # The pipeline logic enqueues its steps: it needs the database (--allow-controllers).
    agents.start("-q", "services", "--name", "services", "--idle-exit", "20", "--allow-controllers")
    agents.start("-q", "default", "--name", "steps", "--idle-exit", "20")
    assert controller.wait_for_status(timeout=120) is TaskStatus.COMPLETED
    assert "test rows=2 slope=5.000" in "".join(controller.get_reported_console_output())
    _check(_steps())
