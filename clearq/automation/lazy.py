"""A component call's result inside a decorated pipeline: its step's artifact, later.

Passed to another component, it stays a reference (the step's task and artifact name).
Used in the pipeline's own code (printed, compared, added, indexed, iterated, its
attributes read), it waits for the step to complete, loads the artifact once and acts
as the value.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any

_UNSET: Any = object()


class LazyResult:
    """One return value of one step, loaded on first use."""

    __slots__ = ("_fetch", "_lock", "_value", "artifact", "task")

    def __init__(self, task: Any, artifact: str, fetch: Callable[[Any, str], Any]) -> None:
        object.__setattr__(self, "task", task)
        object.__setattr__(self, "artifact", artifact)
        object.__setattr__(self, "_fetch", fetch)
        object.__setattr__(self, "_value", _UNSET)
        object.__setattr__(self, "_lock", threading.Lock())

    def value(self) -> Any:
        """The step's return value (waits for the step, loads the artifact once)."""
        with self._lock:
            if self._value is _UNSET:
                object.__setattr__(self, "_value", self._fetch(self.task, self.artifact))
            return self._value

    def __getattr__(self, name: str) -> Any:
        return getattr(self.value(), name)

    def __repr__(self) -> str:
        return repr(self.value())

    def __str__(self) -> str:
        return str(self.value())

    def __format__(self, spec: str) -> str:
        return format(self.value(), spec)

    def __bool__(self) -> bool:
        return bool(self.value())

    def __len__(self) -> int:
        return len(self.value())

    def __iter__(self) -> Any:
        return iter(self.value())

    def __getitem__(self, key: Any) -> Any:
        return self.value()[key]

    def __contains__(self, item: Any) -> bool:
        return item in self.value()

    def __float__(self) -> float:
        return float(self.value())

    def __int__(self) -> int:
        return int(self.value())

    def __index__(self) -> int:
        return operator.index(self.value())

    def __hash__(self) -> int:
        return hash(self.value())


def _binary(op: Callable[[Any, Any], Any], *, reflected: bool = False) -> Any:
    def method(self: LazyResult, other: Any) -> Any:
        other = other.value() if isinstance(other, LazyResult) else other
        return op(other, self.value()) if reflected else op(self.value(), other)

    return method


for _name, _op in {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "matmul": operator.matmul,
}.items():
    setattr(LazyResult, f"__{_name}__", _binary(_op))
    setattr(LazyResult, f"__r{_name}__", _binary(_op, reflected=True))
for _name, _op in {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}.items():
    setattr(LazyResult, f"__{_name}__", _binary(_op))

__all__ = ["LazyResult"]
