"""The HPO controller's decisions, on the in-memory store, with a fake agent.

How many trials it keeps queued or running, where its budget ends the search, what a
failed trial becomes, stopping a trial past ``max_iteration_per_job``, and ``stop()``:
all of it is tasks it clones, enqueues, reads and stops through the SDK, so the twin
(``clearq.testing``, kept honest by ``tests/contract``) and ``tests/unit/fake_agent``
stand in for the database and the agents. Real agents running real trials are
``tests/acceptance/test_hpo.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearq.automation import (
    DiscreteParameterRange,
    GridSearch,
    RandomSearch,
    TrialState,
)
from clearq.automation.hpo import HyperParameterOptimizer
from clearq.automation.hpo_jobs import HPO_TAG
from clearq.automation.hpo_strategies import Resumed
from clearq.automation.hpo_trials import TrialResult
from clearq.config import Settings
from clearq.models import Claim, ScalarPoint, Script, TaskSpec, TaskStatus
from clearq.sdk.session import SESSION
from clearq.testing import MemoryStore
from tests.unit.fake_agent import Ending, FakeAgent

ACTIVE = (TaskStatus.QUEUED, TaskStatus.RUNNING)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    """The twin as the SDK's store. It has no database URL to give a strategy (only
    OptimizerOptuna keeps state there), so the optimizer is handed the twin's settings."""
    twin = MemoryStore(settings=Settings(home=tmp_path / "home"))
    twin.queues.create("q")
    monkeypatch.setattr(SESSION, "store", twin)
    monkeypatch.setattr(SESSION, "records", None)
    monkeypatch.setattr(SESSION, "current", None)
    monkeypatch.setattr("clearq.automation.hpo.settings_in_use", lambda: twin.settings)
    return twin


@pytest.fixture
def base(store: MemoryStore) -> uuid.UUID:
    spec = TaskSpec(
        project="p",
        name="train",
        script=Script(source="print(1)\n", entry_point="train.py"),
        parameters={"General/x": "0"},
    )
    return store.tasks.create(spec).id


def _loss(x: float) -> ScalarPoint:
    return ScalarPoint(title="loss", series="total", iteration=1, value=(x - 3) ** 2)


def _trainer(*, broken: tuple[int, ...] = ()) -> Callable[[Any], Ending]:
    """A training run whose loss is (x - 3)², failing for the ``broken`` values of x."""

    def decide(task: Any) -> Ending:
        x = int(task.parameters["General/x"])
        if x in broken:
            return Ending(TaskStatus.FAILED, reason="CUDA out of memory")
        return Ending(scalars=[_loss(x)])

    return decide


def _optimizer(base: uuid.UUID, values: list[int], **kw: Any) -> HyperParameterOptimizer:
    kw.setdefault("optimizer_class", GridSearch)
    return HyperParameterOptimizer(
        base_task_id=str(base),
        hyper_parameters=[DiscreteParameterRange("General/x", values=values)],
        objective_metric_title="loss",
        objective_metric_series="total",
        objective_metric_sign="min",
        execution_queue="q",
        pool_period_sec=0.005,
        **kw,
    )


def _trials(store: MemoryStore) -> list[Any]:
    return store.tasks.list(tags=[HPO_TAG])


def _search(optimizer: HyperParameterOptimizer, agent: FakeAgent) -> None:
    agent.beside(optimizer.start, lambda: optimizer.stop(timeout=10))


def test_a_grid_search_keeps_at_most_its_concurrency_active_and_finds_the_best(
    store: MemoryStore, base: uuid.UUID
) -> None:
    active: list[int] = []
    agent = FakeAgent(store, decide=_trainer(broken=(5,)))
    agent.on_claim = lambda claim: active.append(sum(t.status in ACTIVE for t in _trials(store)))
    optimizer = _optimizer(base, [1, 2, 3, 4, 5], max_number_of_concurrent_tasks=2)
    _search(optimizer, agent)
    assert 1 <= max(active) <= 2
    assert len(_trials(store)) == 5  # the grid's end is the search's end
    states = {r.parameters["General/x"]: r.state for r in optimizer.results}
    assert states == {
        1: TrialState.COMPLETED,
        2: TrialState.COMPLETED,
        3: TrialState.COMPLETED,
        4: TrialState.COMPLETED,
        5: TrialState.FAILED,
    }
    failed = next(r for r in optimizer.results if r.state is TrialState.FAILED)
    assert failed.reason == "CUDA out of memory"
    [best] = optimizer.get_top_experiments_details(1)
    assert (best["hyper_parameters"], best["objective"]) == ({"General/x": 3}, 0.0)
    assert optimizer.get_num_active_experiments() == 0


def test_each_trial_is_a_tagged_clone_of_the_base_with_its_parameters(
    store: MemoryStore, base: uuid.UUID
) -> None:
    optimizer = _optimizer(base, [7], time_limit_per_job=30.0)
    _search(optimizer, FakeAgent(store, decide=_trainer()))
    [trial] = _trials(store)
    assert trial.parent_id == base
    assert trial.parameters == {"General/x": "7"}
    assert trial.max_run_seconds == 30.0
    assert f"{HPO_TAG}:{optimizer.name}" in trial.tags
    assert store.tasks.get(base).status is TaskStatus.CREATED  # the base itself never runs


def test_a_random_search_stops_at_its_budget(store: MemoryStore, base: uuid.UUID) -> None:
    optimizer = _optimizer(
        base,
        list(range(10)),
        optimizer_class=RandomSearch,
        total_max_jobs=3,
        max_number_of_concurrent_tasks=5,
        seed=1,
    )
    agent = FakeAgent(store, decide=_trainer())
    _search(optimizer, agent)
    assert len(_trials(store)) == 3
    assert len(agent.ran) == 3
    assert len(optimizer.results) == 3


def test_a_failed_trial_does_not_stop_the_search_and_counts_against_the_budget(
    store: MemoryStore, base: uuid.UUID
) -> None:
    optimizer = _optimizer(base, [1, 2, 3], optimizer_class=RandomSearch, total_max_jobs=2, seed=3)
    _search(optimizer, FakeAgent(store, decide=_trainer(broken=(1, 2, 3))))
    assert [r.state for r in optimizer.results] == [TrialState.FAILED, TrialState.FAILED]
    assert optimizer.get_top_experiments_details(1) == []


def _until(condition: Callable[[], bool], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


def test_a_trial_past_max_iteration_is_stopped_and_keeps_its_objective(
    store: MemoryStore, base: uuid.UUID
) -> None:
    def long_run(claim: Claim) -> None:
        point = ScalarPoint(title="loss", series="total", iteration=10, value=0.5)
        store.outputs.append_scalars(claim.fence, [point])
        _until(lambda: store.tasks.get(claim.task_id).stop_requested_at is not None)

    agent = FakeAgent(store, decide=lambda task: Ending(TaskStatus.STOPPED, reason="stopped"))
    agent.on_claim = long_run
    optimizer = _optimizer(base, [1], max_iteration_per_job=5)
    _search(optimizer, agent)
    [result] = optimizer.results
    assert (result.state, result.objective, result.iteration) == (TrialState.COMPLETED, 0.5, 10)
    assert result.reason == "stopped after iteration 10 (max_iteration_per_job)"


def test_stop_takes_the_queued_trials_out_of_the_queue(store: MemoryStore, base: uuid.UUID) -> None:
    optimizer = _optimizer(base, [1, 2, 3, 4], max_number_of_concurrent_tasks=2)
    thread = threading.Thread(target=optimizer.start, daemon=True)
    thread.start()
    _until(lambda: sum(t.status is TaskStatus.QUEUED for t in _trials(store)) == 2)
    optimizer.stop(timeout=60)
    thread.join(timeout=60)
    assert optimizer.wait(timeout=0)
    trials = _trials(store)
    assert len(trials) == 2  # no agent took them: nothing freed a place for a third
    assert {t.status for t in trials} == {TaskStatus.CREATED}
    assert {r.state for r in optimizer.results} == {TrialState.ABORTED}


class Resuming(GridSearch):
    """A grid that finds the ``earlier`` trials on resume, as a stored study does."""

    earlier = Resumed()

    def resume(self) -> Resumed:
        return self.earlier


def test_a_resumed_search_deletes_the_drafts_of_trials_it_never_recorded(
    store: MemoryStore, base: uuid.UUID
) -> None:
    # The first run was killed after cloning trial 1's task but before the trial recorded
    # it (its strategy then tells that trial failed): the draft has the search's tag and
    # no trial names it. Trial 0 ended and names its task; another search's draft stays.
    optimizer = _optimizer(base, [1, 2], optimizer_class=Resuming, total_max_jobs=2)
    name = optimizer.name
    ended = store.tasks.clone(base, name="train: trial 0")
    orphan = store.tasks.clone(base, name="train: trial 1")
    other = store.tasks.clone(base, name="another search's draft")
    store.tasks.edit(ended.id, tags=[HPO_TAG, f"{HPO_TAG}:{name}"])
    store.tasks.edit(orphan.id, tags=[HPO_TAG, f"{HPO_TAG}:{name}"])
    store.tasks.edit(other.id, tags=[HPO_TAG, f"{HPO_TAG}:elsewhere"])
    first = TrialResult(0, {"General/x": 1}, TrialState.COMPLETED, str(ended.id), 4.0)
    Resuming.earlier = Resumed(finished=(first,))
    _search(optimizer, FakeAgent(store, decide=_trainer()))
    left = {t.id for t in store.tasks.list(tags=[HPO_TAG])}
    assert orphan.id not in left
    assert {ended.id, other.id} <= left
    assert len(left) == 3  # the two above and the one trial this run launched
