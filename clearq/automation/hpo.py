"""``HyperParameterOptimizer``: a search over clones of a base task, run by agents.

Each trial is a clone of the base task with the trial's parameters set (flat
``Section/name`` keys), enqueued on ``execution_queue``; the optimizer polls its trials
every ``pool_period_sec``, reads each objective from the task's scalar summary (one
indexed row per series), stops trials past ``max_iteration_per_job`` or pruned by the
strategy, and launches new ones while fewer than ``max_number_of_concurrent_tasks`` are
queued or running and ``total_max_jobs`` is not reached. A trial that crashes or fails
is recorded as failed (no objective) and the search goes on.

The loop runs in the process that calls ``start()``: a script, or a task of its own in
the ``services`` queue (``Task.init`` + ``task.execute_remotely("services")`` before
building the optimizer; an agent started with ``--services-mode`` runs it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from clearq.automation.hpo_jobs import JobSpec, TrialJob, discard_orphan_drafts
from clearq.automation.hpo_params import Parameter
from clearq.automation.hpo_strategies import (
    GridSearch,
    RandomSearch,
    SearchContext,
    SearchStrategy,
    space_size,
)
from clearq.automation.hpo_trials import Objective, TrialResult, TrialState, search_name
from clearq.enums import TaskStatus
from clearq.errors import InvalidInput
from clearq.sdk import Task, settings_in_use

DEFAULT_POOL_PERIOD_SEC = 2.0
"""How often the optimizer looks at its trials."""
DEFAULT_CONCURRENT_TASKS = 10
"""Trials queued or running at once, unless told otherwise (ClearML's default)."""

log = logging.getLogger(__name__)


class HyperParameterOptimizer:
    """Search ``hyper_parameters`` of ``base_task_id`` for the best objective.

    ``base_task_id`` is a task id or a ``Task``. Time limits are in seconds
    (``time_limit_per_job`` becomes each clone's ``max_run_seconds``), unlike ClearML's
    minutes. ``optimizer_kwargs`` go to ``optimizer_class`` (for ``OptimizerOptuna``:
    ``optuna_sampler``, ``optuna_pruner``, ``skip_duplicates``). ``name`` names the
    search; by default it is derived from the base task, the ranges, the objective and
    the strategy, so that building the same optimizer again continues a stored search.
    A grid ends with its last combination; a random or Optuna search over a continuous
    range ends at ``total_max_jobs`` or ``optimization_time_limit`` (give one of them).
    """

    def __init__(
        self,
        base_task_id: str | uuid.UUID | Task,
        hyper_parameters: Sequence[Parameter],
        objective_metric_title: str,
        objective_metric_series: str,
        objective_metric_sign: str = "min",
        optimizer_class: type[SearchStrategy] = RandomSearch,
        max_number_of_concurrent_tasks: int = DEFAULT_CONCURRENT_TASKS,
        execution_queue: str = "default",
        optimization_time_limit: float | None = None,
        total_max_jobs: int | None = None,
        time_limit_per_job: float | None = None,
        max_iteration_per_job: int | None = None,
        pool_period_sec: float = DEFAULT_POOL_PERIOD_SEC,
        seed: int | None = None,
        name: str | None = None,
        **optimizer_kwargs: Any,
    ) -> None:
        _check_limits(max_number_of_concurrent_tasks, total_max_jobs, pool_period_sec)
        ranges = tuple(hyper_parameters)
        _check_ending(ranges, optimizer_class, total_max_jobs, optimization_time_limit)
        base = base_task_id if isinstance(base_task_id, Task) else Task.get_task(base_task_id)
        self.base_task = base
        self.objective = Objective(
            objective_metric_title, objective_metric_series, objective_metric_sign
        )
        self.name = name or search_name(base.id, ranges, self.objective, optimizer_class)
        url = settings_in_use().resolved_database_url
        self._context = SearchContext(ranges, self.objective, self.name, url, seed)
        self._strategy_class = optimizer_class
        self._strategy_kwargs = optimizer_kwargs
        self._spec = JobSpec(execution_queue, self.name, time_limit_per_job)
        self._concurrency = max_number_of_concurrent_tasks
        self._total = total_max_jobs
        self._max_iteration = max_iteration_per_job
        self._min_iteration: int | None = None
        """No trial is pruned before reporting this iteration (ClearML's min_iteration_per_job)."""
        self._time_limit = optimization_time_limit
        self._period = pool_period_sec
        self._jobs: dict[int, TrialJob] = {}
        self._results: list[TrialResult] = []
        self._launched = 0
        self._exhausted = False
        self._stop = threading.Event()
        self._abort_jobs = True
        self._done = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    # ---- running the search ---------------------------------------------------------

    def start(self) -> bool:
        """Run the search here until it is done (or ``stop()``); True when it ran."""
        if self._started:
            raise InvalidInput("this optimizer already ran: build a new one to continue")
        self._started = True
        strategy = self._strategy_class(self._context, **self._strategy_kwargs)
        try:
            self._resume(strategy)
            deadline = None if self._time_limit is None else time.monotonic() + self._time_limit
            while not self._stop.is_set() and self._tick(strategy):
                if deadline is not None and time.monotonic() >= deadline:
                    log.info("search %s: optimization_time_limit reached", self.name)
                    break
                self._stop.wait(self._period)
            if self._abort_jobs:
                self._abort(strategy)
        finally:
            strategy.close()
            self._done.set()
        return True

    def start_locally(self) -> bool:
        """The same as ``start()`` (ClearML's name for running the loop in this process)."""
        return self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a search running in another thread to end; False on timeout."""
        return self._done.wait(timeout) if self._started else True

    def stop(self, timeout: float | None = None, *, abort_jobs: bool = True) -> None:
        """End the search: its running trials are stopped (``abort_jobs``) or left running.

        Left running, an ``OptimizerOptuna`` search picks them up again when it is
        resumed. Waits up to ``timeout`` seconds for the loop to end.
        """
        self._abort_jobs = abort_jobs
        self._stop.set()
        if self._started:
            self._done.wait(timeout)

    # ---- results --------------------------------------------------------------------

    @property
    def results(self) -> list[TrialResult]:
        """Every ended trial (an earlier run's too, when the strategy resumed a search)."""
        with self._lock:
            return list(self._results)

    def get_top_experiments(self, top_k: int) -> list[Task]:
        """The tasks of the ``top_k`` best completed trials, best first."""
        return [Task.get_task(r.task_id) for r in self._top(top_k) if r.task_id]

    def get_top_experiments_details(self, top_k: int) -> list[dict[str, Any]]:
        """The ``top_k`` best trials as dicts: task_id, hyper_parameters, objective, iteration."""
        return [
            {
                "task_id": r.task_id,
                "hyper_parameters": dict(r.parameters),
                "objective": r.objective,
                "iteration": r.iteration,
            }
            for r in self._top(top_k)
        ]

    def get_active_experiments(self) -> list[Task]:
        """The tasks of the trials queued or running now."""
        with self._lock:
            return [job.task for job in self._jobs.values()]

    def get_num_active_experiments(self) -> int:
        """How many trials are queued or running now."""
        with self._lock:
            return len(self._jobs)

    def _top(self, top_k: int) -> list[TrialResult]:
        done = [r for r in self.results if r.state is TrialState.COMPLETED]
        done.sort(key=lambda r: self.objective.rank(r.objective or 0.0))
        return done[:top_k]

    # ---- the loop's steps -----------------------------------------------------------

    def _resume(self, strategy: SearchStrategy) -> None:
        earlier = strategy.resume()
        with self._lock:
            self._results.extend(earlier.finished)
        self._launched = sum(1 for r in earlier.finished if r.counts) + len(earlier.running)
        for suggestion, task_id in earlier.running:
            job = TrialJob.attach(suggestion, task_id, self.objective)
            if job.status() is TaskStatus.CREATED:  # stopped before it was enqueued
                job.task.enqueue(self._spec.queue)
            self._add(job)
        if earlier.finished or earlier.running:  # the strategy keeps its trials: a resume
            known = {r.task_id for r in earlier.finished if r.task_id}
            known.update(task_id for _, task_id in earlier.running)
            for orphan in discard_orphan_drafts(self.name, known):
                log.info("search %s: deleted draft %s, which no trial names", self.name, orphan)
        log.info(
            "search %s: %d trials ended before, %d still running",
            self.name,
            len(earlier.finished),
            len(earlier.running),
        )

    def _tick(self, strategy: SearchStrategy) -> bool:
        """Watch every trial, launch new ones; False once there is nothing left to do."""
        for job in list(self._jobs.values()):
            self._watch(strategy, job)
        self._launch(strategy)
        return bool(self._jobs) or self._can_launch()

    def _can_launch(self) -> bool:
        return not self._exhausted and (self._total is None or self._launched < self._total)

    def _launch(self, strategy: SearchStrategy) -> None:
        while len(self._jobs) < self._concurrency and self._can_launch():
            suggestion = strategy.suggest()
            if suggestion is None:
                self._exhausted = True
                return
            job = TrialJob.create(self.base_task, suggestion, self._spec, self.objective)
            strategy.attach(suggestion, job.task_id)
            job.task.enqueue(self._spec.queue)
            self._launched += 1
            self._add(job)
            log.info("trial %d: task %s %s", suggestion.number, job.task_id, suggestion.parameters)

    def _watch(self, strategy: SearchStrategy, job: TrialJob) -> None:
        status = job.status()
        if status is TaskStatus.CREATED:  # dequeued by someone else
            self._end(strategy, job, job.aborted("its task was taken out of the queue"))
            return
        if strategy.wants_steps and status is not TaskStatus.QUEUED:
            for step, value in job.new_steps():
                prune = strategy.report_step(job.suggestion, step, value)
                young = self._min_iteration is not None and step < self._min_iteration
                if prune and not young and status is TaskStatus.RUNNING:
                    job.halt()
                    self._end(strategy, job, job.pruned(step, value))
                    return
        if status.is_final:
            self._end(strategy, job, job.result(status))
        elif status is TaskStatus.RUNNING and self._past_max_iteration(job):
            job.halt()
            job.stopped_early = True

    def _past_max_iteration(self, job: TrialJob) -> bool:
        limit = self._max_iteration
        return limit is not None and not job.stopped_early and job.past(limit)

    def _abort(self, strategy: SearchStrategy) -> None:
        for job in list(self._jobs.values()):
            job.halt()
            self._end(strategy, job, job.aborted("the optimizer was stopped"))

    def _add(self, job: TrialJob) -> None:
        with self._lock:
            self._jobs[job.suggestion.number] = job

    def _end(self, strategy: SearchStrategy, job: TrialJob, result: TrialResult) -> None:
        strategy.finished(job.suggestion, result)
        with self._lock:
            del self._jobs[job.suggestion.number]
            self._results.append(result)
        if not result.counts:
            self._launched -= 1
        because = f" ({result.reason})" if result.reason else ""
        log.info(
            "trial %d %s: objective %s%s", result.number, result.state, result.objective, because
        )
        _report_to_controller(result)


def _check_ending(
    ranges: tuple[Parameter, ...],
    strategy: type[SearchStrategy],
    total: int | None,
    time_limit: float | None,
) -> None:
    if not ranges:
        raise InvalidInput("hyper_parameters is empty: give at least one parameter range")
    endless = space_size(ranges) is None and strategy is not GridSearch
    if endless and total is None and time_limit is None:
        raise InvalidInput(
            "this search would never end: give total_max_jobs or optimization_time_limit"
        )


def _check_limits(concurrency: int, total: int | None, period: float) -> None:
    if concurrency < 1:
        raise InvalidInput(f"max_number_of_concurrent_tasks must be at least 1, not {concurrency}")
    if total is not None and total < 1:
        raise InvalidInput(f"total_max_jobs must be at least 1, not {total}")
    if not period > 0:
        raise InvalidInput(f"pool_period_sec must be positive, not {period}")


def _report_to_controller(result: TrialResult) -> None:
    """When the optimizer runs as a task itself, plot each trial's objective in it."""
    controller = Task.current_task()
    if controller is not None and result.objective is not None:
        controller.get_logger().report_scalar(
            "objective", "trial", value=result.objective, iteration=result.number
        )


__all__ = ["DEFAULT_CONCURRENT_TASKS", "DEFAULT_POOL_PERIOD_SEC", "HyperParameterOptimizer"]
