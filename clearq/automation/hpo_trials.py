"""The values a search passes around: the objective, a suggested trial and its result."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clearq.errors import InvalidInput
from clearq.models import ScalarSummary

SIGNS = ("min", "max", "min_global", "max_global")
"""How the objective is read (ClearML's ``objective_metric_sign``)."""


@dataclass(frozen=True)
class Objective:
    """The scalar a search optimises: ``title``/``series``, read from the task's summary.

    ``sign`` is ClearML's: ``"min"``/``"max"`` judge a trial by the last value it
    reported, ``"min_global"``/``"max_global"`` by the lowest/highest value it ever
    reported.
    """

    title: str
    series: str
    sign: str = "min"

    def __post_init__(self) -> None:
        if self.sign not in SIGNS:
            raise InvalidInput(f"objective_metric_sign must be one of {SIGNS}, not {self.sign!r}")

    @property
    def minimize(self) -> bool:
        """True when lower is better."""
        return self.sign.startswith("min")

    def find(self, summary: Iterable[ScalarSummary]) -> ScalarSummary | None:
        """The objective's row among a task's scalar summaries, if it reported any."""
        for row in summary:
            if row.title == self.title and row.series == self.series:
                return row
        return None

    def value(self, row: ScalarSummary) -> float:
        """The objective value of a task, from its summary row."""
        if self.sign == "min_global":
            return row.min
        if self.sign == "max_global":
            return row.max
        return row.last

    def rank(self, value: float) -> float:
        """A sort key: smaller is better, whatever the sign."""
        return value if self.minimize else -value


class TrialState(enum.StrEnum):
    """How a trial ended."""

    COMPLETED = "completed"
    """Its task ended and reported the objective."""
    FAILED = "failed"
    """Its task failed, or ended without reporting the objective."""
    PRUNED = "pruned"
    """The strategy stopped it early, from the values it reported on the way."""
    ABORTED = "aborted"
    """The optimizer was stopped while it ran; it does not count towards total_max_jobs."""


@dataclass(frozen=True)
class Suggestion:
    """A trial a strategy proposes: its number and the parameters to set on the clone."""

    number: int
    parameters: Mapping[str, Any]

    def key(self) -> tuple[tuple[str, str], ...]:
        """The parameters as a hashable key (to spot a combination seen before)."""
        return parameters_key(self.parameters)


def parameters_key(parameters: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """``parameters`` as a sorted tuple of (name, repr(value)), hashable whatever the values."""
    return tuple(sorted((name, repr(value)) for name, value in parameters.items()))


@dataclass(frozen=True)
class TrialResult:
    """One ended trial."""

    number: int
    parameters: Mapping[str, Any]
    state: TrialState
    task_id: str | None = None
    objective: float | None = None
    iteration: int | None = None
    reason: str = ""

    @property
    def counts(self) -> bool:
        """Whether it counts towards ``total_max_jobs`` (an aborted trial does not)."""
        return self.state is not TrialState.ABORTED


def search_name(
    base_id: str,
    ranges: Sequence[Any],
    objective: Objective,
    strategy: type,
) -> str:
    """A stable name for a search: the same arguments give the same name."""
    described = repr((base_id, tuple(ranges), objective, strategy.__qualname__))
    return f"hpo-{base_id}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"


__all__ = [
    "SIGNS",
    "Objective",
    "Suggestion",
    "TrialResult",
    "TrialState",
    "parameters_key",
    "search_name",
]
