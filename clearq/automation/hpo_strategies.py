"""Search strategies: which parameters the next trial gets, and what they learn from results.

A strategy only proposes and learns; ``HyperParameterOptimizer`` runs the trials (clones
the base task, enqueues it, watches it, stops it). The optimizer calls, in order:
``resume()`` once, then for each trial ``suggest()`` -> ``attach()`` -> (with
``wants_steps``) ``report_step()`` per reported value -> ``finished()``; ``close()`` at
the end. ``suggest()`` returning None means the search space is exhausted.
"""

from __future__ import annotations

import itertools
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clearq.automation.hpo_params import Parameter
from clearq.automation.hpo_trials import Objective, Suggestion, TrialResult

MAX_DRAWS_PER_TRIAL = 100
"""RandomSearch draws at most this many times for a combination not tried yet."""


@dataclass(frozen=True)
class SearchContext:
    """What every strategy is built from (the optimizer's arguments that concern it)."""

    hyper_parameters: tuple[Parameter, ...]
    objective: Objective
    name: str
    """Names the search: the same name continues a stored search (OptimizerOptuna)."""
    database_url: str
    """The store's database, where a strategy may keep its own state."""
    seed: int | None = None


@dataclass(frozen=True)
class Resumed:
    """A stored search found again: its ended trials and those still running (task ids)."""

    finished: tuple[TrialResult, ...] = ()
    running: tuple[tuple[Suggestion, str], ...] = ()


class SearchStrategy(ABC):
    """Proposes trials and learns from their results (subclass this for a new one)."""

    wants_steps = False
    """True when ``report_step`` should see every value of the objective as it is reported."""

    def __init__(self, context: SearchContext) -> None:
        self.context = context

    def resume(self) -> Resumed:
        """Trials of an earlier run of this search (nothing, unless the strategy stores them)."""
        return Resumed()

    @abstractmethod
    def suggest(self) -> Suggestion | None:
        """The next trial's parameters, or None when there is nothing left to try."""

    def attach(self, suggestion: Suggestion, task_id: str) -> None:  # noqa: B027 - an optional hook
        """The trial runs as this task (recorded before the task is enqueued)."""

    def report_step(self, suggestion: Suggestion, step: int, value: float) -> bool:
        """A value of the objective at ``step``; True to prune (stop) the trial."""
        return False

    def finished(self, suggestion: Suggestion, result: TrialResult) -> None:  # noqa: B027 - an optional hook
        """The trial ended (completed, failed, pruned or aborted)."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release what the strategy holds (connections)."""


class GridSearch(SearchStrategy):
    """Every combination of the ranges' values, in order (the last range varies fastest)."""

    def __init__(self, context: SearchContext) -> None:
        super().__init__(context)
        lists = [p.to_list() for p in context.hyper_parameters]
        self._grid: Iterator[tuple[dict[str, Any], ...]] = itertools.product(*lists)
        self._number = 0

    def suggest(self) -> Suggestion | None:
        """The next combination of the grid."""
        combination = next(self._grid, None)
        if combination is None:
            return None
        parameters: dict[str, Any] = {}
        for value in combination:
            parameters.update(value)
        self._number += 1
        return Suggestion(self._number - 1, parameters)


class RandomSearch(SearchStrategy):
    """Independent draws from each range, never the same combination twice.

    With ``seed`` the sequence is reproducible. A finite space (discrete, integer or
    stepped ranges) is exhausted once every combination was drawn.
    """

    def __init__(self, context: SearchContext) -> None:
        super().__init__(context)
        self._rng = random.Random(context.seed)  # noqa: S311 - not for secrets
        self._seen: set[tuple[tuple[str, str], ...]] = set()
        self._space = space_size(context.hyper_parameters)
        self._number = 0

    def suggest(self) -> Suggestion | None:
        """A combination not drawn before; None once the space is exhausted."""
        if self._space is not None and len(self._seen) >= self._space:
            return None
        for _ in range(MAX_DRAWS_PER_TRIAL):
            parameters: dict[str, Any] = {}
            for p in self.context.hyper_parameters:
                parameters.update(p.get_value(self._rng))
            suggestion = Suggestion(self._number, parameters)
            if suggestion.key() not in self._seen:
                self._seen.add(suggestion.key())
                self._number += 1
                return suggestion
        return None


def space_size(ranges: tuple[Parameter, ...]) -> int | None:
    """How many combinations the ranges make; None when one of them is continuous."""
    total = 1
    for p in ranges:
        size = p.size()
        if size is None:
            return None
        total *= size
    return total


__all__ = [
    "GridSearch",
    "RandomSearch",
    "Resumed",
    "SearchContext",
    "SearchStrategy",
    "space_size",
]
