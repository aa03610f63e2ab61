"""``OptimizerOptuna``: an Optuna study, driven by ask/tell, stored in clearq's database.

The study lives in the same database as the tasks (Optuna's own tables beside
clearq's), named after the search, so a search can be paused (stop the process, or
``stop(abort_jobs=False)``) and resumed (build the optimizer again, ``start()``):

- a trial already told is never run again;
- a trial asked whose task is still queued or running is watched again: its task id is
  the trial's user attribute ``clearq_task_id``, recorded before the task is enqueued;
- a trial asked but never given a task (the process died in between) is told failed.

Pruning: every value of the objective series is reported to its trial
(``trial.report(value, step)``) as the optimizer reads it; when the pruner says so, the
task is stopped and the trial told pruned. Optuna is an optional extra
(``pip install 'clearq[optuna]'``) and is imported when the strategy is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clearq.automation.hpo_params import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    Parameter,
    UniformIntegerParameterRange,
    UniformParameterRange,
)
from clearq.automation.hpo_strategies import Resumed, SearchContext, SearchStrategy
from clearq.automation.hpo_trials import (
    Suggestion,
    TrialResult,
    TrialState,
    parameters_key,
)
from clearq.errors import ConfigError

if TYPE_CHECKING:
    import optuna

TASK_ATTR = "clearq_task_id"
"""The trial's user attribute holding its task id."""
REASON_ATTR = "clearq_reason"
"""The trial's user attribute saying why it failed, or what happened to it."""
ABORTED_ATTR = "clearq_aborted"
"""Set on trials told failed because the optimizer was stopped while they ran."""
DUPLICATE_ATTR = "clearq_duplicate_of"
"""Set on trials told straight away because they repeat an ended trial's parameters."""
MAX_DUPLICATE_ASKS = 50
"""Asks in a row that only repeat ended trials before the search counts as converged."""
SQLITE_TIMEOUT_SECONDS = 30
"""How long Optuna's SQLite connections wait for the agents' writes to the same file."""

Key = tuple[tuple[str, str], ...]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as e:
        raise ConfigError("OptimizerOptuna needs Optuna: pip install 'clearq[optuna]'") from e
    return optuna


class OptimizerOptuna(SearchStrategy):
    """Optuna's sampler and pruner over a study stored in clearq's database.

    ``optuna_sampler`` defaults to TPE (seeded with the optimizer's ``seed``),
    ``optuna_pruner`` to Optuna's default (median). With ``skip_duplicates`` (the
    default) a suggestion that repeats an ended trial's parameters is told that trial's
    result at once instead of being run again, which matters on discrete spaces.
    """

    wants_steps = True

    def __init__(
        self,
        context: SearchContext,
        *,
        optuna_sampler: optuna.samplers.BaseSampler | None = None,
        optuna_pruner: optuna.pruners.BasePruner | None = None,
        skip_duplicates: bool = True,
    ) -> None:
        super().__init__(context)
        self._optuna = _optuna()
        self._skip_duplicates = skip_duplicates
        storage = optuna_storage(context.database_url)
        self._storage_handle = storage
        sampler = optuna_sampler or self._default_sampler(storage, context)
        self.study: optuna.Study = self._optuna.create_study(
            study_name=context.name,
            storage=storage,
            sampler=sampler,
            pruner=optuna_pruner,
            direction="minimize" if context.objective.minimize else "maximize",
            load_if_exists=True,
        )
        self._live: dict[int, optuna.Trial] = {}
        self._reported: dict[int, set[int]] = {}
        self._ended: dict[Key, optuna.trial.FrozenTrial] = {}

    def _default_sampler(
        self, storage: optuna.storages.RDBStorage, context: SearchContext
    ) -> optuna.samplers.BaseSampler:
        # A resumed study must not replay the first run's random draws: offset the seed.
        seed = context.seed
        if seed is not None:
            summaries = self._optuna.get_all_study_summaries(storage, include_best_trial=False)
            seed += sum(s.n_trials for s in summaries if s.study_name == context.name)
        sampler: optuna.samplers.BaseSampler = self._optuna.samplers.TPESampler(seed=seed)
        return sampler

    # ---- the strategy's steps -------------------------------------------------------

    def resume(self) -> Resumed:
        """Ended trials of the stored study, and its running trials with their task ids."""
        finished: list[TrialResult] = []
        running: list[tuple[Suggestion, str]] = []
        states = self._optuna.trial.TrialState
        for frozen in self.study.get_trials(deepcopy=False):
            task_id = frozen.user_attrs.get(TASK_ATTR)
            if frozen.state in (states.RUNNING, states.WAITING):
                if task_id is None:
                    self.study.tell(frozen.number, state=states.FAIL)
                    continue
                self._live[frozen.number] = self._optuna.trial.Trial(self.study, frozen._trial_id)
                self._reported[frozen.number] = set(frozen.intermediate_values)
                running.append((Suggestion(frozen.number, dict(frozen.params)), str(task_id)))
                continue
            self._remember(frozen)
            if DUPLICATE_ATTR not in frozen.user_attrs and task_id is not None:
                finished.append(self._result(frozen, str(task_id)))
        return Resumed(finished=tuple(finished), running=tuple(running))

    def suggest(self) -> Suggestion | None:
        """Ask the study; repeats of ended trials are told at once (see skip_duplicates)."""
        states = self._optuna.trial.TrialState
        for _ in range(MAX_DUPLICATE_ASKS):
            trial = self.study.ask()
            parameters = {p.name: _suggest(trial, p) for p in self.context.hyper_parameters}
            earlier = self._ended.get(parameters_key(parameters))
            if earlier is None or not self._skip_duplicates:
                self._live[trial.number] = trial
                self._reported[trial.number] = set()
                return Suggestion(trial.number, parameters)
            trial.set_user_attr(DUPLICATE_ATTR, earlier.number)
            value = earlier.value if earlier.state is states.COMPLETE else None
            self.study.tell(trial, value, state=earlier.state)
        return None

    def attach(self, suggestion: Suggestion, task_id: str) -> None:
        """Record the trial's task id on the trial, so a later run can find it."""
        self._live[suggestion.number].set_user_attr(TASK_ATTR, task_id)

    def report_step(self, suggestion: Suggestion, step: int, value: float) -> bool:
        """Report the value to the trial (once per step); True when the pruner says stop."""
        reported = self._reported.setdefault(suggestion.number, set())
        if step in reported:
            return False
        trial = self._live[suggestion.number]
        trial.report(value, step)
        reported.add(step)
        return bool(trial.should_prune())

    def finished(self, suggestion: Suggestion, result: TrialResult) -> None:
        """Tell the study how the trial ended."""
        trial = self._live.pop(suggestion.number)
        self._reported.pop(suggestion.number, None)
        states = self._optuna.trial.TrialState
        if result.reason:
            trial.set_user_attr(REASON_ATTR, result.reason)
        if result.state is TrialState.COMPLETED and result.objective is not None:
            frozen = self.study.tell(trial, result.objective)
        elif result.state is TrialState.PRUNED:
            frozen = self.study.tell(trial, state=states.PRUNED)
        else:
            if result.state is TrialState.ABORTED:
                trial.set_user_attr(ABORTED_ATTR, True)
            frozen = self.study.tell(trial, state=states.FAIL)
        self._remember(frozen)

    def close(self) -> None:
        """Release the study's database connections."""
        self._storage_handle.remove_session()
        self._storage_handle.engine.dispose()

    # ---- helpers --------------------------------------------------------------------

    def _remember(self, frozen: optuna.trial.FrozenTrial) -> None:
        states = self._optuna.trial.TrialState
        if frozen.state in (states.COMPLETE, states.PRUNED):
            self._ended.setdefault(parameters_key(frozen.params), frozen)

    def _result(self, frozen: optuna.trial.FrozenTrial, task_id: str) -> TrialResult:
        states = self._optuna.trial.TrialState
        state = {
            states.COMPLETE: TrialState.COMPLETED,
            states.PRUNED: TrialState.PRUNED,
        }.get(frozen.state, TrialState.FAILED)
        if frozen.user_attrs.get(ABORTED_ATTR):
            state = TrialState.ABORTED
        return TrialResult(
            number=frozen.number,
            parameters=dict(frozen.params),
            state=state,
            task_id=task_id,
            objective=frozen.value if state is TrialState.COMPLETED else None,
            iteration=frozen.last_step,
            reason=str(frozen.user_attrs.get(REASON_ATTR, "")),
        )


def optuna_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's storage over clearq's database at ``url`` (to open a search's study).

    ``optuna.load_study(study_name=optimizer.name, storage=optuna_storage(url))``. A
    plain URL would not do: clearq owns the database's ``alembic_version`` row, which
    Optuna's schema check would take for its own, so that check is skipped here
    (Optuna's tables are still created as usual).
    """
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_SECONDS}}
    storage: optuna.storages.RDBStorage = _optuna().storages.RDBStorage(
        url, engine_kwargs=kwargs, skip_compatibility_check=True
    )
    return storage


def _suggest(trial: optuna.Trial, p: Parameter) -> Any:
    """The trial's value for one range, through the matching ``suggest_*``."""
    if isinstance(p, DiscreteParameterRange):
        return trial.suggest_categorical(p.name, list(p.values))
    if isinstance(p, UniformIntegerParameterRange):
        values = p.values()  # the last value, so Optuna finds the range divisible by the step
        return trial.suggest_int(p.name, values[0], values[-1], step=p.step_size)
    if isinstance(p, UniformParameterRange):
        if p.step_size is None:
            return trial.suggest_float(p.name, p.min_value, p.max_value)
        stepped = p.values()
        return trial.suggest_float(p.name, stepped[0], stepped[-1], step=p.step_size)
    if isinstance(p, LogUniformParameterRange) and p.step_size is None:
        return trial.suggest_float(p.name, p.low, p.high, log=True)
    # Anything else enumerable (a stepped log range, a custom range): one of its values.
    return trial.suggest_categorical(p.name, [v[p.name] for v in p.to_list()])


__all__ = ["OptimizerOptuna", "optuna_storage"]
