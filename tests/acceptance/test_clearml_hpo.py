"""ClearML's HyperParameterOptimizer script, import changed, on real agents and databases:
ClearML's keyword arguments and units (minutes), spawn_project, save_top_k_tasks_only,
the controller task reporting progress, and an unknown keyword refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq import Task
from clearq.automation import GridSearch, HyperParameterOptimizer
from clearq.errors import InvalidInput
from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, run_script
from tests.acceptance.hpo_toy import OPTIMUM, RANGES, base_task
from tests.conftest import on_one_database

pytestmark = on_one_database("postgres")

DRIVER = """
import sys
from clearq import Task
from clearq.automation import (
    DiscreteParameterRange, GridSearch, HyperParameterOptimizer, UniformIntegerParameterRange,
)

task = Task.init(
    project_name="hpo", task_name="optimizer", task_type=Task.TaskTypes.optimizer,
    reuse_last_task_id=False,
)
completed = []


def job_complete_callback(job_id, objective_value, objective_iteration, job_parameters, top):
    completed.append(job_id)


optimizer = HyperParameterOptimizer(
    base_task_id=sys.argv[1],
    hyper_parameters=[
        DiscreteParameterRange("General/x", values=[1, 2, 3, 4]),
        UniformIntegerParameterRange("General/y", min_value=-2, max_value=0),
    ],
    objective_metric_title="loss",
    objective_metric_series="total",
    objective_metric_sign="min",
    max_number_of_concurrent_tasks=4,
    optimizer_class=GridSearch,
    execution_queue="hpo",
    spawn_project="hpo trials",
    save_top_k_tasks_only=3,
    time_limit_per_job=2.0,
    pool_period_min=0.005,
    min_iteration_per_job=1,
    max_iteration_per_job=100,
    total_max_jobs=12,
)
optimizer.set_report_period(0.005)
optimizer.set_time_limit(in_minutes=5.0)
optimizer.start(job_complete_callback=job_complete_callback)
optimizer.wait()
top = optimizer.get_top_experiments(top_k=3)
print("best", top[0].get_parameters()["General/x"], top[0].get_parameters()["General/y"])
print("callbacks", len(completed), "elapsed>0", optimizer.elapsed() > 0)
optimizer.stop()
"""


def test_a_clearml_optimizer_script_finds_the_optimum_on_agents(
    clearml_db: Store, clearml_env: dict[str, str], agents: Agents, tmp_path: Path
) -> None:
    base = base_task(clearml_db, tmp_path)
    clearml_db.queues.create("hpo")
    for name in ("a", "b"):
        agents.start("-q", "hpo", "--name", name, "--idle-exit", "30")
    out = run_script(tmp_path / "driver", "optimize.py", DRIVER, clearml_env, str(base))
    assert f"best {OPTIMUM[0]} {OPTIMUM[1]}".replace(".0", "") in out.replace(".0", "")
    assert "callbacks 12 elapsed>0 True" in out
    trials = Task.get_tasks(project_name="hpo trials", tags=["hpo"])
    assert len(trials) == 12
    assert {t.get_status() for t in trials} == {TaskStatus.COMPLETED}
    kept = Task.get_tasks(project_name="hpo trials", tags=["hpo"], allow_archived=False)
    assert len(kept) == 3  # save_top_k_tasks_only archived the rest
    (controller,) = Task.get_tasks(project_name="hpo", task_name="optimizer")
    assert controller.get_parameters()["Optimizer/execution_queue"] == "hpo"
    progress = controller.get_reported_scalars()["optimization"]
    assert progress["best objective"]["y"][-1] == 0.0


def test_an_unknown_keyword_is_an_error_that_names_it(clearml_db: Store, tmp_path: Path) -> None:
    base = base_task(clearml_db, tmp_path)
    with pytest.raises(InvalidInput, match=r"unknown keyword arguments \['pool_period_sec'\]"):
        HyperParameterOptimizer(
            str(base),
            RANGES,
            "loss",
            "total",
            optimizer_class=GridSearch,
            pool_period_sec=1.0,
        )
    with pytest.raises(InvalidInput, match="compute_time_limit is not supported"):
        HyperParameterOptimizer(
            str(base), RANGES, "loss", "total", optimizer_class=GridSearch, compute_time_limit=5
        )
