"""OptimizerOptuna's study in clearq's own database (SQLite and PostgreSQL), no agents.

Trials are driven by hand through the strategy's steps, as the optimizer drives them,
to pin down what a resumed search finds: told trials, running trials with their task
ids, asked trials that never got a task, repeats and aborted trials.
"""

from __future__ import annotations

import pytest

from clearq.automation import DiscreteParameterRange, Objective, OptimizerOptuna, TrialState
from clearq.automation.hpo_optuna import DUPLICATE_ATTR, MAX_DUPLICATE_ASKS
from clearq.automation.hpo_strategies import SearchContext
from clearq.automation.hpo_trials import Suggestion, TrialResult
from clearq.scheduler import Store

optuna = pytest.importorskip("optuna")

X = DiscreteParameterRange("General/x", values=[1, 2, 3, 4])


def strategy(store: Store, *ranges: DiscreteParameterRange) -> OptimizerOptuna:
    url = store.db.url.render_as_string(hide_password=False)
    context = SearchContext(ranges or (X,), Objective("loss", "total"), "search", url, seed=5)
    return OptimizerOptuna(context)


def ended(s: Suggestion, state: TrialState, value: float | None = None) -> TrialResult:
    return TrialResult(s.number, s.parameters, state, task_id=f"task-{s.number}", objective=value)


def test_a_resumed_study_reattaches_running_trials_and_never_reruns_told_ones(
    store: Store,
) -> None:
    first = strategy(store)
    done, running, orphan, aborted = (first.suggest() for _ in range(4))
    assert None not in (done, running, orphan, aborted)
    for s in (done, running, aborted):
        first.attach(s, f"task-{s.number}")
    first.finished(done, ended(done, TrialState.COMPLETED, 2.0))
    assert first.report_step(running, 0, 5.0) is False
    first.finished(aborted, ended(aborted, TrialState.ABORTED))
    first.close()  # the process stops here: `running` runs on, `orphan` never got a task

    again = strategy(store)
    resumed = again.resume()
    assert [(r.task_id, r.state, r.objective) for r in resumed.finished] == [
        (f"task-{done.number}", TrialState.COMPLETED, 2.0),
        (f"task-{aborted.number}", TrialState.ABORTED, None),
    ]
    assert [r.counts for r in resumed.finished] == [True, False]
    [(watched, task_id)] = resumed.running
    assert (watched, task_id) == (running, f"task-{running.number}")
    assert again.report_step(watched, 0, 5.0) is False  # a step seen before is not re-sent
    again.report_step(watched, 1, 3.0)
    again.finished(watched, ended(watched, TrialState.COMPLETED, 3.0))
    trials = {t.number: t for t in again.study.get_trials()}
    again.close()
    assert trials[running.number].intermediate_values == {0: 5.0, 1: 3.0}
    assert trials[running.number].value == 3.0
    assert orphan is not None
    assert trials[orphan.number].state is optuna.trial.TrialState.FAIL


def test_repeats_of_ended_trials_are_told_without_running_until_the_space_is_spent(
    store: Store,
) -> None:
    search = strategy(store, DiscreteParameterRange("General/x", values=[1, 2]))
    seen = []
    while (s := search.suggest()) is not None:
        seen.append(dict(s.parameters))
        search.attach(s, f"task-{s.number}")
        search.finished(s, ended(s, TrialState.COMPLETED, float(s.parameters["General/x"])))
    trials = search.study.get_trials()
    search.close()
    assert sorted(p["General/x"] for p in seen) == [1, 2]  # each value ran once
    repeats = [t for t in trials if DUPLICATE_ATTR in t.user_attrs]
    assert len(repeats) >= MAX_DUPLICATE_ASKS
    assert {t.value for t in repeats} <= {1.0, 2.0}


def test_a_pruned_trial_is_told_pruned(store: Store) -> None:
    url = store.db.url.render_as_string(hide_password=False)
    context = SearchContext((X,), Objective("loss", "total"), "pruning", url, seed=1)
    search = OptimizerOptuna(context, optuna_pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    s = search.suggest()
    assert s is not None
    search.attach(s, "task-0")
    assert search.report_step(s, 0, 0.5) is False
    assert search.report_step(s, 1, 7.0) is True
    search.finished(s, ended(s, TrialState.PRUNED))
    [trial] = search.study.get_trials()
    search.close()
    assert trial.state is optuna.trial.TrialState.PRUNED
    assert trial.intermediate_values == {0: 0.5, 1: 7.0}
