"""ClearML's ``HyperParameterOptimizer``: its keyword arguments and its units (minutes).

    from clearq.automation import HyperParameterOptimizer, RandomSearch, UniformParameterRange

    optimizer = HyperParameterOptimizer(
        base_task_id=base.id,
        hyper_parameters=[UniformParameterRange("General/lr", 1e-4, 1e-1)],
        objective_metric_title="validation", objective_metric_series="loss",
        objective_metric_sign="min", optimizer_class=RandomSearch,
        execution_queue="default", max_number_of_concurrent_tasks=2,
        total_max_jobs=10, time_limit_per_job=10.0, pool_period_min=0.1,
        save_top_k_tasks_only=3,
    )
    optimizer.start(); optimizer.wait(); optimizer.stop()
    top = optimizer.get_top_experiments(top_k=3)

Every time is in minutes, as ClearML has it: ``optimization_time_limit``,
``time_limit_per_job``, ``pool_period_min``, ``set_time_limit``, ``set_report_period``,
``wait(timeout)`` and ``elapsed()``. The search itself is
:class:`clearq.automation.hpo.HyperParameterOptimizer` (seconds there). The keyword
arguments ClearML passes to the strategy (``total_max_jobs``, ``min_iteration_per_job``,
``max_iteration_per_job``, ``time_limit_per_job``, ``pool_period_min``) and the strategy's
own (``optuna_sampler``, ``optuna_pruner``, ...) are accepted; any other keyword is an
error that names it, never silently ignored.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from clearq.automation.hpo import HyperParameterOptimizer as SearchLoop
from clearq.automation.hpo_params import Parameter
from clearq.automation.hpo_strategies import RandomSearch, SearchStrategy
from clearq.errors import InvalidInput
from clearq.sdk import Task

log = logging.getLogger(__name__)

DEFAULT_POOL_PERIOD_MIN = 2.0
"""ClearML's default: the optimizer looks at its trials every two minutes."""
DEFAULT_REPORT_PERIOD_MIN = 1.0
_SEARCH_KEYWORDS = frozenset(
    {
        "total_max_jobs",
        "min_iteration_per_job",
        "max_iteration_per_job",
        "time_limit_per_job",
        "pool_period_min",
        "seed",
        "name",
    }
)


class HyperParameterOptimizer(SearchLoop):
    """A hyperparameter search with ClearML's constructor, in minutes."""

    def __init__(
        self,
        base_task_id: str | uuid.UUID | Task,
        hyper_parameters: Sequence[Parameter],
        objective_metric_title: str,
        objective_metric_series: str,
        objective_metric_sign: str = "min",
        optimizer_class: type[SearchStrategy] = RandomSearch,
        max_number_of_concurrent_tasks: int = 10,
        execution_queue: str = "default",
        optimization_time_limit: float | None = None,
        compute_time_limit: float | None = None,
        auto_connect_task: bool = True,
        always_create_task: bool = False,
        spawn_project: str | None = None,
        save_top_k_tasks_only: int | None = None,
        **optimizer_kwargs: Any,
    ) -> None:
        if not isinstance(objective_metric_title, str):
            raise InvalidInput("a search over several objectives is not supported: give one title")
        if compute_time_limit is not None:
            raise InvalidInput(
                "compute_time_limit is not supported: give optimization_time_limit (minutes) "
                "or time_limit_per_job (minutes) instead"
            )
        if save_top_k_tasks_only is not None and save_top_k_tasks_only < 1:
            raise InvalidInput(f"save_top_k_tasks_only must be at least 1: {save_top_k_tasks_only}")
        search, strategy = _split_keywords(optimizer_class, optimizer_kwargs)
        controller = Task.current_task()
        if controller is None and always_create_task:
            base = base_task_id if isinstance(base_task_id, Task) else Task.get_task(base_task_id)
            controller = Task.init(
                project_name=base.project,
                task_name=f"Optimizer: {base.name}",
                task_type=Task.TaskTypes.optimizer,
            )
        settings = {
            "execution_queue": execution_queue,
            "max_number_of_concurrent_tasks": max_number_of_concurrent_tasks,
            "optimization_time_limit": optimization_time_limit,
            "total_max_jobs": search.get("total_max_jobs"),
            "time_limit_per_job": search.get("time_limit_per_job"),
            "pool_period_min": search.get("pool_period_min", DEFAULT_POOL_PERIOD_MIN),
        }
        if controller is not None and auto_connect_task:
            controller.connect(settings, name="Optimizer")  # an agent's overrides come back
        super().__init__(
            base_task_id,
            hyper_parameters,
            objective_metric_title,
            objective_metric_series,
            objective_metric_sign,
            optimizer_class=optimizer_class,
            max_number_of_concurrent_tasks=int(settings["max_number_of_concurrent_tasks"]),
            execution_queue=str(settings["execution_queue"]),
            optimization_time_limit=_seconds(settings["optimization_time_limit"]),
            total_max_jobs=settings["total_max_jobs"],
            time_limit_per_job=_seconds(settings["time_limit_per_job"]),
            max_iteration_per_job=search.get("max_iteration_per_job"),
            pool_period_sec=float(settings["pool_period_min"]) * 60.0,
            seed=search.get("seed"),
            name=search.get("name"),
            **strategy,
        )
        self._min_iteration = search.get("min_iteration_per_job")
        if spawn_project is not None:
            self._spec = replace(self._spec, project=spawn_project)
        self._keep_top = save_top_k_tasks_only
        self._started_at: float | None = None
        self._report_seconds = DEFAULT_REPORT_PERIOD_MIN * 60.0
        self._callback: Callable[..., Any] | None = None
        self._called: set[str] = set()

    # ---- running ----------------------------------------------------------------------

    def start(self, job_complete_callback: Callable[..., Any] | None = None) -> bool:
        """Run the search here until it ends (or ``stop()``); True when it ran.

        ``job_complete_callback(job_id, objective_value, objective_iteration,
        job_parameters, top_performance_job_id)`` is called as each trial completes.
        """
        self._callback = job_complete_callback
        self._started_at = time.monotonic()
        reporter = threading.Thread(target=self._report_loop, name="clearq-hpo-report", daemon=True)
        reporter.start()
        try:
            return super().start()
        finally:
            self._archive_all_but_top()

    def start_locally(self, job_complete_callback: Callable[..., Any] | None = None) -> bool:
        """The same as ``start`` (the search always runs in this process)."""
        return self.start(job_complete_callback)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a search running in another thread; False if ``timeout`` minutes passed."""
        return super().wait(_seconds(timeout))

    def stop(self, timeout: float | None = None, wait_for_reporter: bool = True, **kw: Any) -> None:
        """End the search and stop its running trials; waits up to ``timeout`` minutes."""
        unknown = sorted(set(kw) - {"abort_jobs"})
        if unknown:
            raise InvalidInput(f"stop() got unknown keyword arguments {unknown}")
        super().stop(_seconds(timeout), abort_jobs=kw.get("abort_jobs", True))

    def set_time_limit(
        self, in_minutes: float | None = None, specific_time: datetime | None = None
    ) -> None:
        """Limit the search: ``in_minutes`` from its start, or until ``specific_time``."""
        if specific_time is not None:
            now = datetime.now(specific_time.tzinfo)
            self._time_limit = max((specific_time - now).total_seconds(), 0.0) + self.elapsed_s()
        elif in_minutes is not None:
            self._time_limit = in_minutes * 60.0
        if self._started:
            log.warning("set_time_limit after start: the running loop keeps its first deadline")

    def set_report_period(self, report_period_minutes: float) -> None:
        """How often the controller task gets the search's progress (best objective so far)."""
        if not report_period_minutes > 0:
            raise InvalidInput(f"report_period_minutes must be positive: {report_period_minutes}")
        self._report_seconds = report_period_minutes * 60.0

    # ---- looking ----------------------------------------------------------------------

    def elapsed(self) -> float:
        """Minutes since the search started; -1 before it starts (as ClearML)."""
        return -1.0 if self._started_at is None else self.elapsed_s() / 60.0

    def elapsed_s(self) -> float:
        """Seconds since the search started (0 before)."""
        return 0.0 if self._started_at is None else time.monotonic() - self._started_at

    def reached_time_limit(self) -> bool:
        """True once ``optimization_time_limit`` has passed."""
        return self._time_limit is not None and self.elapsed_s() >= self._time_limit

    def is_active(self) -> bool:
        """True while the search runs."""
        return self._started and not self._done.is_set()

    is_running = is_active

    def get_top_experiments_id_metrics_pair(self, top_k: int) -> list[tuple[str, dict[str, Any]]]:
        """``(task id, {title: {series: {"last", "min", "max"}}})`` of the best trials."""
        return [(t.id, t.get_last_scalar_metrics()) for t in self.get_top_experiments(top_k)]

    # ---- background duties ------------------------------------------------------------

    def _report_loop(self) -> None:
        tick = 0
        while not self._done.wait(self._report_seconds):
            tick += 1
            self._report_progress(tick)
            self._call_back_completed()

    def _report_progress(self, tick: int) -> None:
        controller = Task.current_task()
        best = self.get_top_experiments_details(1)
        if controller is None or not best:
            return
        logger = controller.get_logger()
        logger.report_scalar("optimization", "best objective", best[0]["objective"], tick)
        logger.report_scalar("optimization", "trials ended", float(len(self.results)), tick)

    def _call_back_completed(self) -> None:
        if self._callback is None:
            return
        top = self.get_top_experiments_details(1)
        best = top[0]["task_id"] if top else None
        for r in self.results:
            if r.task_id and r.task_id not in self._called and r.objective is not None:
                self._called.add(r.task_id)
                self._callback(r.task_id, r.objective, r.iteration, dict(r.parameters), best)

    def _archive_all_but_top(self) -> None:
        self._call_back_completed()
        if self._keep_top is None:
            return
        keep = {r["task_id"] for r in self.get_top_experiments_details(self._keep_top)}
        for result in self.results:
            if result.task_id and result.task_id not in keep:
                Task.get_task(task_id=result.task_id).set_archived(True)


def _split_keywords(
    strategy: type[SearchStrategy], given: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The search's keywords and the strategy's; InvalidInput naming any other."""
    own = {
        name
        for name, p in inspect.signature(strategy.__init__).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(given) - _SEARCH_KEYWORDS - own)
    if unknown:
        accepted = sorted(_SEARCH_KEYWORDS | own)
        raise InvalidInput(
            f"HyperParameterOptimizer got unknown keyword arguments {unknown} "
            f"(for {strategy.__name__} it accepts: {', '.join(accepted)})"
        )
    search = {k: v for k, v in given.items() if k in _SEARCH_KEYWORDS}
    return search, {k: v for k, v in given.items() if k in own}


def _seconds(minutes: Any) -> float | None:
    return None if minutes is None else float(minutes) * 60.0


__all__ = ["DEFAULT_POOL_PERIOD_MIN", "HyperParameterOptimizer"]
