"""Hyperparameter optimisation in one minute, on the embedded SQLite default.

    python examples/hpo.py

1. stores a small training script as a draft task (``Task.create`` from a local file);
2. starts two agents on the ``hpo`` queue (``--skip-env``: the trials run with the
   agents' own Python, there is nothing to install);
3. searches the learning rate and the number of epochs for the lowest final loss, 12
   trials, 4 at a time: with Optuna when it is installed (``pip install
   'clearq[optuna]'``), else at random;
4. prints the best trials.

Run it again to start a new search (each run stores a new base task). To run the
optimizer itself on an agent instead of here, see the README's "Hyperparameter
optimisation".
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from clearq import Task
from clearq.automation import (
    DiscreteParameterRange,
    HyperParameterOptimizer,
    LogUniformParameterRange,
    OptimizerOptuna,
    RandomSearch,
    SearchStrategy,
)
from clearq.sdk.task import default_store

TRAIN = '''
"""Fit y = 3x + 1 by gradient descent, reporting the loss of every epoch."""
import random

from clearq import Task

task = Task.init()
config = task.connect({"lr": 0.05, "epochs": 20})
rng = random.Random(0)
xs = [rng.uniform(-1, 1) for _ in range(200)]
ys = [3 * x + 1 + rng.gauss(0, 0.1) for x in xs]
w = b = 0.0
for epoch in range(config["epochs"]):
    gw = sum(2 * (w * x + b - y) * x for x, y in zip(xs, ys)) / len(xs)
    gb = sum(2 * (w * x + b - y) for x, y in zip(xs, ys)) / len(xs)
    w, b = w - config["lr"] * gw, b - config["lr"] * gb
    loss = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
    task.get_logger().report_scalar("loss", "train", loss, epoch)
'''
QUEUE = "hpo"


def base_task(folder: Path) -> Task:
    """The training script as a draft task, with the defaults the search starts from."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "train.py"
    script.write_text(TRAIN.lstrip())
    base = Task.create(project_name="hpo-demo", task_name="linear-regression", script=str(script))
    base.set_parameters({"General/lr": 0.05, "General/epochs": 20})
    return base


def start_agents(count: int) -> list[subprocess.Popen[bytes]]:
    """``clearq agent -q hpo --skip-env`` processes, which exit once idle for 10 s."""
    clearq = shutil.which("clearq") or str(Path(sys.executable).with_name("clearq"))
    command = [clearq, "agent", "-q", QUEUE, "--skip-env", "--idle-exit", "10"]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return [subprocess.Popen(command, **quiet) for _ in range(count)]


def strategy() -> type[SearchStrategy]:
    """Optuna when it is installed, else random search."""
    return OptimizerOptuna if importlib.util.find_spec("optuna") else RandomSearch


def main() -> None:
    """Store the base task, start agents, search, print the best trials."""
    logging.basicConfig(format="%(message)s")
    logging.getLogger("clearq.automation").setLevel(logging.INFO)  # a line per trial
    if importlib.util.find_spec("optuna"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = default_store()
    if QUEUE not in {q.name for q in store.queues.list()}:
        store.queues.create(QUEUE)
    base = base_task(store.settings.home_dir / "hpo-demo")
    agents = start_agents(2)
    search = HyperParameterOptimizer(
        base,
        hyper_parameters=[
            LogUniformParameterRange("General/lr", min_value=-3, max_value=0),
            DiscreteParameterRange("General/epochs", values=[5, 10, 20, 40]),
        ],
        objective_metric_title="loss",
        objective_metric_series="train",
        objective_metric_sign="min",
        optimizer_class=strategy(),
        execution_queue=QUEUE,
        max_number_of_concurrent_tasks=4,
        total_max_jobs=12,
        time_limit_per_job=2.0,  # minutes, as in ClearML
        pool_period_min=0.01,
        seed=0,
    )
    print(f"search {search.name} with {strategy().__name__}: 12 trials", flush=True)
    try:
        search.start()
    finally:
        for agent in agents:
            agent.terminate()
            agent.wait()
    for rank, best in enumerate(search.get_top_experiments_details(3), start=1):
        print(f"{rank}. loss {best['objective']:.5f}  {best['hyper_parameters']}")
        print(f"   task {best['task_id']}")


if __name__ == "__main__":
    main()
