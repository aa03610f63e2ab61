"""Hyperparameter optimisation as a user runs it: real agents, real clones, a real store.

Each search runs 12 trials of a toy job (``hpo_toy.py``) on two ``clearq agent
--skip-env`` processes and must find the known optimum, whatever the strategy; a
crashing trial is recorded as failed and the search goes on; an Optuna search killed
midway is resumed by a new optimizer without running any trial twice.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.automation import (
    DiscreteParameterRange,
    GridSearch,
    OptimizerOptuna,
    RandomSearch,
    SearchStrategy,
    TrialState,
    optuna_storage,
)
from clearq.automation.hpo import HyperParameterOptimizer
from clearq.enums import FINAL_STATUSES
from clearq.models import Task as TaskRecord
from clearq.models import TaskStatus
from clearq.scheduler import Store
from clearq.sdk.task import use_store
from tests.acceptance import hpo_toy
from tests.acceptance.conftest import Agents, Cli
from tests.conftest import on_one_database

REPO_ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 60


@pytest.fixture
def hpo_agents(store: Store, cli: Cli, tmp_path: Path) -> Iterator[Agents]:
    """Two agents serving the ``hpo`` queue, and the SDK pointed at the test's store."""
    store.queues.create(hpo_toy.QUEUE)
    use_store(store)
    running = Agents(cli, tmp_path)
    for _ in range(2):
        running.start("-q", hpo_toy.QUEUE)
    yield running
    running.stop_all()
    use_store(None)


def assert_found_the_optimum(search: HyperParameterOptimizer) -> None:
    best = search.get_top_experiments(1)[0]
    assert hpo_toy.point(best.get_parameters()) == hpo_toy.OPTIMUM
    assert best.get_last_scalar_metrics()["loss"]["total"]["last"] == 0.0
    details = search.get_top_experiments_details(1)[0]
    assert (details["task_id"], details["objective"]) == (best.id, 0.0)


def trial_tasks(store: Store, search: HyperParameterOptimizer) -> list[uuid.UUID]:
    return [t.id for t in store.tasks.list(tags=[f"hpo:{search.name}"], limit=1000)]


# Each strategy once, on a database each (the trials' claims are the agents'; both databases
# run every other search below).
@pytest.mark.parametrize(
    ("store_url", "strategy"),
    [("sqlite", GridSearch), ("postgres", RandomSearch)],
    indirect=["store_url"],
)
def test_grid_and_random_search_find_the_optimum_past_crashing_trials(
    store: Store, hpo_agents: Agents, tmp_path: Path, strategy: type[SearchStrategy]
) -> None:
    base = hpo_toy.base_task(store, tmp_path, crash_at_x=1.0)
    search = hpo_toy.optimizer(base, strategy)
    assert search.start()
    results = search.results
    assert {hpo_toy.point(r.parameters) for r in results} == hpo_toy.COMBINATIONS
    failed = [r for r in results if r.state is TrialState.FAILED]
    assert {hpo_toy.point(r.parameters)[0] for r in failed} == {1.0}
    assert len(failed) == 3
    assert all(r.reason == "exited with code 1" for r in failed), failed
    assert sum(r.state is TrialState.COMPLETED for r in results) == 9
    assert_found_the_optimum(search)
    clones = [store.tasks.get(i) for i in trial_tasks(store, search)]
    assert len(clones) == hpo_toy.TOTAL_JOBS
    assert {c.parent_id for c in clones} == {base}


@on_one_database("sqlite")
def test_a_trial_past_max_iteration_is_stopped_and_keeps_its_objective(
    store: Store, hpo_agents: Agents, tmp_path: Path
) -> None:
    base = hpo_toy.base_task(store, tmp_path, steps=200, sleep=0.05)
    search = HyperParameterOptimizer(
        str(base),
        hyper_parameters=[DiscreteParameterRange("General/x", values=[2, 3])],
        objective_metric_title="loss",
        objective_metric_series="total",
        optimizer_class=GridSearch,
        execution_queue=hpo_toy.QUEUE,
        max_iteration_per_job=5,
        time_limit_per_job=120,
        pool_period_sec=0.2,
    )
    search.start()
    results = sorted(search.results, key=lambda r: r.number)
    assert [(r.state, r.objective) for r in results] == [
        (TrialState.COMPLETED, 2.0),  # y stays 0: loss (x - 3)^2 + 1
        (TrialState.COMPLETED, 1.0),
    ]
    for r in results:
        assert r.iteration is not None
        assert 5 < r.iteration < 199
        assert "max_iteration_per_job" in r.reason
        assert r.task_id is not None
        task = wait_final(store, uuid.UUID(r.task_id))
        assert (task.status, task.max_run_seconds) == (TaskStatus.STOPPED, 120)


@on_one_database("postgres")
def test_stop_aborts_the_running_trials_and_wait_returns(
    store: Store, hpo_agents: Agents, tmp_path: Path
) -> None:
    base = hpo_toy.base_task(store, tmp_path, steps=1, sleep=120)
    search = hpo_toy.optimizer(base, GridSearch)
    loop = threading.Thread(target=search.start)
    loop.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while sum(t.status is TaskStatus.RUNNING for t in search.get_active_experiments()) < 2:
        assert time.monotonic() < deadline, "two trials never started"
        time.sleep(0.1)
    search.stop(timeout=WAIT_SECONDS)
    assert search.wait(timeout=WAIT_SECONDS)
    loop.join(timeout=WAIT_SECONDS)
    results = search.results
    assert len(results) == 4  # the 4 trials launched, none ended by itself
    assert {r.state for r in results} == {TrialState.ABORTED}
    assert search.get_num_active_experiments() == 0
    statuses = {wait_final_or_draft(store, uuid.UUID(r.task_id or "")) for r in results}
    assert statuses <= {TaskStatus.STOPPED, TaskStatus.CREATED}  # stopped, or dequeued
    assert TaskStatus.STOPPED in statuses


@on_one_database("sqlite")
def test_optuna_finds_the_optimum_and_prunes_on_reported_steps(
    store: Store, hpo_agents: Agents, tmp_path: Path
) -> None:
    optuna = pytest.importorskip("optuna")  # the test extra installs it

    base = hpo_toy.base_task(store, tmp_path, steps=6, sleep=0.3)
    # Prune any trial whose loss is past 4 at a step: the worst points never finish.
    search = hpo_toy.optimizer(
        base, OptimizerOptuna, optuna_pruner=optuna.pruners.ThresholdPruner(upper=4.0)
    )
    search.start()
    assert_found_the_optimum(search)
    results = search.results
    assert len({r.task_id for r in results}) == len(results) == hpo_toy.TOTAL_JOBS
    pruned = [r for r in results if r.state is TrialState.PRUNED]
    assert pruned, results
    for r in pruned:
        x, y = hpo_toy.point(r.parameters)
        assert (x - 3) ** 2 + (y + 1) ** 2 > 4
        assert r.task_id is not None
        task = wait_final(store, uuid.UUID(r.task_id))
        assert task.status is TaskStatus.STOPPED  # stopped before its 6 steps
    storage = optuna_storage(store_url(store))
    try:
        study = optuna.load_study(study_name=search.name, storage=storage)
        assert study.best_value == 0.0
        ran = [t for t in study.get_trials() if "clearq_task_id" in t.user_attrs]
    finally:
        storage.engine.dispose()
    # Every step of a completed trial reached the study; a pruned one stopped early.
    states = optuna.trial.TrialState
    assert all(len(t.intermediate_values) == 6 for t in ran if t.state is states.COMPLETE)
    assert all(len(t.intermediate_values) < 6 for t in ran if t.state is states.PRUNED)


@on_one_database("postgres")
def test_an_optuna_search_is_paused_and_resumed_without_running_a_trial_twice(
    store: Store, cli: Cli, hpo_agents: Agents, tmp_path: Path
) -> None:
    pytest.importorskip("optuna")
    base = hpo_toy.base_task(store, tmp_path, steps=3, sleep=0.4)
    name = hpo_toy.optimizer(base, OptimizerOptuna).name
    with (tmp_path / "driver.log").open("wb") as log:
        driver = subprocess.Popen(
            [sys.executable, "-m", "tests.acceptance.hpo_toy", str(base)],
            cwd=REPO_ROOT,
            env=dict(cli.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    tag = f"hpo:{name}"
    deadline = time.monotonic() + WAIT_SECONDS
    while sum(t.status in FINAL_STATUSES for t in store.tasks.list(tags=[tag])) < 4:
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()
        assert time.monotonic() < deadline, "the first run never ended 4 trials"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)  # pause: the process dies, its trials run on
    driver.wait()
    before = {t.id: t.status for t in store.tasks.list(tags=[tag])}
    unfinished = {i for i, s in before.items() if s not in FINAL_STATUSES}
    assert unfinished, "kill the first run while some of its trials still run"

    search = hpo_toy.optimizer(base, OptimizerOptuna)  # resume: the same arguments
    assert search.name == name
    search.start()
    results = search.results
    tasks = [store.tasks.get(i) for i in trial_tasks(store, search)]
    assert len(tasks) == hpo_toy.TOTAL_JOBS
    assert all(t.attempt == 1 for t in tasks)  # no trial ran twice
    assert {uuid.UUID(r.task_id) for r in results if r.task_id} == {t.id for t in tasks}
    # A draft the killed run cloned but never recorded on its trial is deleted on resume
    # (its trial was told failed); every other task of the first run is kept.
    gone = set(before) - {t.id for t in tasks}
    assert len(gone) <= 1
    assert all(before[i] is TaskStatus.CREATED for i in gone)
    resumed = [r for r in results if r.task_id and uuid.UUID(r.task_id) in unfinished]
    assert len(resumed) == len(unfinished - gone)
    assert all(r.state is not TrialState.ABORTED for r in results)
    assert_found_the_optimum(search)


def store_url(store: Store) -> str:
    return store.db.url.render_as_string(hide_password=False)


def wait_final(store: Store, task_id: uuid.UUID) -> TaskRecord:
    deadline = time.monotonic() + WAIT_SECONDS
    while (task := store.tasks.get(task_id)).status not in FINAL_STATUSES:
        assert time.monotonic() < deadline, f"task {task_id} is still {task.status}"
        time.sleep(0.1)
    return task


def wait_final_or_draft(store: Store, task_id: uuid.UUID) -> TaskStatus:
    deadline = time.monotonic() + WAIT_SECONDS
    while (status := store.tasks.get(task_id).status) not in {*FINAL_STATUSES, TaskStatus.CREATED}:
        assert time.monotonic() < deadline, f"task {task_id} is still {status}"
        time.sleep(0.1)
    return status
