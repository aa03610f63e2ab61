"""Hyper-parameter ranges: what a search may set each parameter to.

Names and arguments follow ClearML's (``UniformParameterRange(name, min_value, max_value,
step_size, include_max_value)``, ...). A range's ``name`` is the task parameter it sets,
flat ``Section/name`` (``General/lr`` for a connected dict, ``Args/lr`` for argparse).
Each range can draw one value (``get_value``, for random search) and list all of its
values (``to_list``, for grid search; a continuous range needs a ``step_size`` for that).
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clearq.errors import InvalidInput

_DIGITS = 12
"""Stepped values are rounded to this many decimals, so 0.1 * 3 is 0.3 and grids match."""


class Parameter(ABC):
    """One hyper-parameter: its task parameter ``name`` and the values it may take."""

    name: str

    @abstractmethod
    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        """One value drawn at random, as ``{name: value}``."""

    @abstractmethod
    def to_list(self) -> list[dict[str, Any]]:
        """Every value, in order, each as ``{name: value}``; InvalidInput when continuous."""

    def size(self) -> int | None:
        """How many distinct values there are; None for a continuous range."""
        try:
            return len(self.to_list())
        except InvalidInput:
            return None


def _check_name(name: str) -> None:
    if not name or not isinstance(name, str):
        raise InvalidInput(f"a parameter range needs a name such as 'General/lr', not {name!r}")


def _check_bounds(name: str, low: float, high: float, step: float | None) -> None:
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise InvalidInput(f"{name}: min_value {low} must be finite and not above max_value {high}")
    if step is not None and not step > 0:
        raise InvalidInput(f"{name}: step_size must be positive, not {step}")


def _steps(low: float, high: float, step: float, include_max: bool) -> list[float]:
    """``low, low + step, ...`` up to ``high`` (included when it falls on a step)."""
    count = math.floor((high - low) / step + 1e-9)
    values = [round(low + k * step, _DIGITS) for k in range(count + 1)]
    if not include_max and values and values[-1] >= high:
        values.pop()
    if not values:
        raise InvalidInput(f"the range [{low}, {high}) with step {step} holds no value")
    return values


def _rng(rng: random.Random | None) -> random.Random:
    return rng if rng is not None else random.Random()  # noqa: S311 - not for secrets


@dataclass(frozen=True)
class UniformParameterRange(Parameter):
    """A float between ``min_value`` and ``max_value``; on a grid of ``step_size`` if given."""

    name: str
    min_value: float
    max_value: float
    step_size: float | None = None
    include_max_value: bool = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_bounds(self.name, self.min_value, self.max_value, self.step_size)

    def values(self) -> list[float]:
        """The stepped values; InvalidInput when there is no ``step_size``."""
        if self.step_size is None:
            raise InvalidInput(
                f"{self.name}: a continuous range cannot be enumerated (grid search): "
                "give it a step_size"
            )
        return _steps(self.min_value, self.max_value, self.step_size, self.include_max_value)

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        """A uniform draw (one of the stepped values when stepped)."""
        if self.step_size is not None:
            return {self.name: _rng(rng).choice(self.values())}
        return {self.name: _rng(rng).uniform(self.min_value, self.max_value)}

    def to_list(self) -> list[dict[str, Any]]:
        """Every stepped value."""
        return [{self.name: v} for v in self.values()]


@dataclass(frozen=True)
class UniformIntegerParameterRange(Parameter):
    """An integer from ``min_value`` to ``max_value`` (included by default), by ``step_size``."""

    name: str
    min_value: int
    max_value: int
    step_size: int = 1
    include_max_value: bool = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_bounds(self.name, self.min_value, self.max_value, self.step_size)

    def values(self) -> list[int]:
        """Every value of the range."""
        stop = self.max_value + (1 if self.include_max_value else 0)
        found = list(range(self.min_value, stop, self.step_size))
        if not found:
            raise InvalidInput(f"{self.name}: the range holds no value")
        return found

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        """A uniform draw among the values."""
        return {self.name: _rng(rng).choice(self.values())}

    def to_list(self) -> list[dict[str, Any]]:
        """Every value."""
        return [{self.name: v} for v in self.values()]


@dataclass(frozen=True)
class LogUniformParameterRange(Parameter):
    """``base ** e`` with the exponent ``e`` uniform in [``min_value``, ``max_value``].

    As in ClearML, the bounds are exponents: ``LogUniformParameterRange("General/lr",
    -4, -1)`` draws learning rates from 1e-4 to 0.1; ``step_size`` steps the exponent.
    """

    name: str
    min_value: float
    max_value: float
    base: float = 10
    step_size: float | None = None
    include_max_value: bool = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_bounds(self.name, self.min_value, self.max_value, self.step_size)
        if not self.base > 1:
            raise InvalidInput(f"{self.name}: base must be above 1, not {self.base}")

    @property
    def low(self) -> float:
        """The smallest value, ``base ** min_value``."""
        return float(self.base**self.min_value)

    @property
    def high(self) -> float:
        """The largest value, ``base ** max_value``."""
        return float(self.base**self.max_value)

    def _exponents(self) -> UniformParameterRange:
        return UniformParameterRange(
            self.name, self.min_value, self.max_value, self.step_size, self.include_max_value
        )

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        """``base`` to the power of a uniform (or stepped) exponent."""
        exponent = self._exponents().get_value(rng)[self.name]
        return {self.name: min(max(float(self.base**exponent), self.low), self.high)}

    def to_list(self) -> list[dict[str, Any]]:
        """``base`` to the power of every stepped exponent."""
        return [{self.name: float(self.base**e)} for e in self._exponents().values()]


@dataclass(frozen=True, init=False)
class DiscreteParameterRange(Parameter):
    """One of the given ``values`` (numbers, strings or booleans)."""

    name: str
    values: tuple[Any, ...]

    def __init__(self, name: str, values: Sequence[Any] = ()) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "values", tuple(values))
        _check_name(name)
        if not self.values:
            raise InvalidInput(f"{name}: DiscreteParameterRange needs at least one value")

    def get_value(self, rng: random.Random | None = None) -> dict[str, Any]:
        """One of the values, uniformly."""
        return {self.name: _rng(rng).choice(self.values)}

    def to_list(self) -> list[dict[str, Any]]:
        """Every value, in the order given."""
        return [{self.name: v} for v in self.values]


__all__ = [
    "DiscreteParameterRange",
    "LogUniformParameterRange",
    "Parameter",
    "UniformIntegerParameterRange",
    "UniformParameterRange",
]
