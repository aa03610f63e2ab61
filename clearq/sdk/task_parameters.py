"""Class-based parameters, as ClearML's ``clearml.task_parameters``::

    from clearq.task_parameters import TaskParameters, param, percent_param

    class Params(TaskParameters):
        iterations = param(type=int, desc="Number of iterations to run", range=(0, 100000))
        target_accuracy = percent_param(desc="The target accuracy of the model")

    params = Params(iterations=100, target_accuracy=0.9)
    task.connect(params)     # recorded by hand; overridden values under an agent

A subclass's ``param`` attributes become its keyword-only constructor; each value is
checked against the param's type and range when it is set through the constructor,
``update_from_dict`` or ``connect`` (an override outside the range fails the run with a
message naming the parameter).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from clearq.errors import InvalidInput

Validator = Callable[[Any, "Param", Any], None]
"""``validator(instance, param, value)``: raises ValueError for a bad value (attrs' shape)."""

_MISSING: Any = object()


def range_validator(min_value: float | None, max_value: float | None) -> Validator:
    """A validator that checks ``min_value <= value <= max_value`` (None: no limit)."""

    def check(instance: Any, attribute: Param, value: Any) -> None:
        if value is None:
            return
        if (min_value is not None and value < min_value) or (
            max_value is not None and value > max_value
        ):
            raise ValueError(f"{attribute.name} must be in range [{min_value}, {max_value}]")

    return check


@dataclass
class Param:
    """One parameter of a TaskParameters class (made by :func:`param`)."""

    default: Any = _MISSING
    type: builtins.type | None = None
    validators: list[Validator] = field(default_factory=list)
    desc: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __set_name__(self, owner: builtins.type, name: str) -> None:
        self.name = name

    def check(self, instance: Any, value: Any) -> Any:
        """``value`` if it fits this parameter (an int is accepted for a float)."""
        if self.type is not None and value is not None:
            if self.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, self.type):
                raise ValueError(
                    f"{self.name} must be {self.type.__name__}, not {type(value).__name__} "
                    f"({value!r})"
                )
        for validator in self.validators:
            validator(instance, self, value)
        return value


def param(
    validator: Validator | list[Validator] | tuple[Validator, ...] | None = None,
    range: tuple[float | None, float | None] | None = None,
    type: type | None = None,
    desc: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    default: Any = _MISSING,
) -> Any:
    """A parameter of a TaskParameters class: its type, range, validators and default."""
    checks = list(validator) if isinstance(validator, list | tuple) else []
    if validator is not None and not isinstance(validator, list | tuple):
        checks.append(validator)
    if range is not None:
        checks.append(range_validator(*range))
    info = {**(metadata or {}), "desc": desc}
    return Param(default=default, type=type, validators=checks, desc=desc, metadata=info)


def percent_param(desc: str | None = None, default: Any = _MISSING, **kwargs: Any) -> Any:
    """A float parameter in [0, 1]."""
    return param(range=(0, 1), type=float, desc=desc, default=default, **kwargs)


class TaskParameters:
    """Base class of a parameter set to connect to a task (see the module's example)."""

    _params: ClassVar[dict[str, Param]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            found.update({k: v for k, v in vars(klass).items() if isinstance(v, Param)})
        cls._params = found

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(self._params))
        if unknown:
            raise InvalidInput(f"{type(self).__name__} has no parameters {unknown}")
        for name, spec in self._params.items():
            value = values.get(name, spec.default)
            if value is _MISSING:
                raise InvalidInput(f"{type(self).__name__} needs a value for {name!r}")
            self._set(name, value)

    def _set(self, name: str, value: Any) -> None:
        try:
            checked = self._params[name].check(self, value)
        except ValueError as e:
            raise InvalidInput(f"{type(self).__name__}: {e}") from e
        # The value lives in the instance's own dict, where ``connect`` finds it.
        self.__dict__[name] = checked

    def to_dict(self) -> dict[str, Any]:
        """The parameters' names and current values."""
        return {name: self.__dict__[name] for name in self._params}

    def update_from_dict(self, source_dict: Mapping[str, Any]) -> None:
        """Set parameters from a dict; an unknown key is an error naming it."""
        for key, value in source_dict.items():
            if key not in self._params:
                raise InvalidInput(f"Unknown key {key} in {type(self).__name__} object")
            self._set(key, value)

    def connect(self, task: Any) -> Any:
        """Connect to ``task`` (``task.connect(self)``)."""
        return task.connect(self)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._params:
            self._set(name, value)
        else:
            super().__setattr__(name, value)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


__all__ = ["Param", "TaskParameters", "param", "percent_param", "range_validator"]
