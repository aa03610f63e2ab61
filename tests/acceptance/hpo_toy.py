"""A toy search with a known optimum, shared by the HPO tests and their driver process.

The job's loss is ``(x - 3)^2 + (y + 1)^2``, reported at every step: the optimum is
x = 3, y = -1 (loss 0), one of the 12 combinations of ``RANGES``.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from clearq.automation import (
    DiscreteParameterRange,
    SearchStrategy,
    UniformIntegerParameterRange,
)
from clearq.automation.hpo import HyperParameterOptimizer
from clearq.models import Script, TaskSpec
from clearq.scheduler import Store
from tests.gitrepo import published

JOB = """
import time
from clearq import Task

task = Task.init()
p = task.connect({"x": 0.0, "y": 0.0, "steps": 3, "sleep": 0.0, "crash_at_x": -100.0})
if p["x"] == p["crash_at_x"]:
    raise RuntimeError("this trial crashes on purpose")
loss = (p["x"] - 3) ** 2 + (p["y"] + 1) ** 2
for step in range(p["steps"]):
    task.get_logger().report_scalar("loss", "total", value=loss, iteration=step)
    task.flush()
    time.sleep(p["sleep"])
"""

RANGES = (
    DiscreteParameterRange("General/x", values=[1, 2, 3, 4]),
    UniformIntegerParameterRange("General/y", min_value=-2, max_value=0),
)
COMBINATIONS = {(float(x), float(y)) for x in (1, 2, 3, 4) for y in (-2, -1, 0)}
OPTIMUM = (3.0, -1.0)
QUEUE = "hpo"
TOTAL_JOBS = 12


def base_task(store: Store, tmp_path: Path, **parameters: object) -> uuid.UUID:
    """A draft running the toy job from a fresh git repository; ``parameters`` override."""
    repository = published(tmp_path, {"toy.py": JOB}, message="toy")
    origin, commit = repository.origin, repository.commit
    values = {"x": 0.0, "y": 0.0, "steps": 3, "sleep": 0.0, "crash_at_x": -100.0, **parameters}
    spec = TaskSpec(
        project="hpo",
        name="toy",
        script=Script(repository=str(origin), commit=commit, entry_point="toy.py"),
        parameters={f"General/{k}": str(v) for k, v in values.items()},
    )
    return store.tasks.create(spec).id


def optimizer(
    base_id: uuid.UUID | str, strategy: type[SearchStrategy], **kwargs: Any
) -> HyperParameterOptimizer:
    """The toy search: 12 trials, 4 at a time, on the ``hpo`` queue."""
    settings: dict[str, Any] = {
        "objective_metric_title": "loss",
        "objective_metric_series": "total",
        "objective_metric_sign": "min",
        "optimizer_class": strategy,
        "execution_queue": QUEUE,
        "max_number_of_concurrent_tasks": 4,
        "total_max_jobs": TOTAL_JOBS,
        "pool_period_sec": 0.2,
        "seed": 1,
        **kwargs,
    }
    return HyperParameterOptimizer(str(base_id), hyper_parameters=RANGES, **settings)


def point(parameters: dict[str, Any] | Any) -> tuple[float, float]:
    """(x, y) of a trial's parameters."""
    return (float(parameters["General/x"]), float(parameters["General/y"]))


if __name__ == "__main__":  # the driver of the pause/resume test: python -m ... BASE_ID
    from clearq.automation import OptimizerOptuna

    optimizer(sys.argv[1], OptimizerOptuna).start()
