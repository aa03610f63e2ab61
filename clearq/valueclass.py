"""Frozen dataclasses without dataclasses' code generation, for the run's own path.

``@dataclass`` writes each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``,
``__setattr__`` and ``__delattr__`` as source text and compiles it when the class is
defined: five to six ``exec`` calls a class, about a quarter of the instructions
``Task.init`` added to a script (``benchmarks/task_init_instructions.py``). A
``@value_class`` class behaves as a frozen dataclass does (keyword or positional
construction in field order, defaults, equality and hashing by value, a repr, no
assignment) through methods shared by every class, so defining one compiles nothing;
type checkers read it as a frozen dataclass (``dataclass_transform``).

For records made a few times a run. A ``__post_init__`` the class defines runs after
the fields are set (to check them), a ``__repr__`` it defines is kept (to hide a
secret), and :func:`replace` / :func:`fields` stand for ``dataclasses.replace`` /
``dataclasses.fields``. Not supported: ``field()``, inheritance between value classes,
and ``asdict`` (use a dataclass where those are wanted). Defining or using one imports
neither ``dataclasses`` nor ``inspect`` (the run's path does without both).
"""

from __future__ import annotations

from typing import Any, TypeVar, dataclass_transform

__all__ = ["fields", "replace", "value_class"]

_T = TypeVar("_T")
_FIELDS = "__value_fields__"
_DEFAULTS = "__value_defaults__"


@dataclass_transform(frozen_default=True)
def value_class(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen record of its annotated fields (ClassVars left out)."""
    # Its own annotations (strings under __future__), as inspect.get_annotations reads
    # them: inspect is no import for a training script to pay.
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
    names = tuple(
        name
        for name, kind in annotations.items()
        if not str(kind).replace("typing.", "").startswith("ClassVar")
    )
    if any(hasattr(base, _FIELDS) for base in cls.__mro__[1:]):
        raise TypeError(f"{cls.__qualname__}: a value class cannot extend another")
    setattr(cls, _FIELDS, names)
    setattr(cls, _DEFAULTS, {n: cls.__dict__[n] for n in names if n in cls.__dict__})
    for method in (__init__, __repr__, __eq__, __hash__, __setattr__, __delattr__):
        if method is not __repr__ or "__repr__" not in cls.__dict__:
            setattr(cls, method.__name__, method)
    setattr(cls, "__match_args__", names)  # noqa: B010 - on a class mypy cannot see into
    return cls


def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names: tuple[str, ...] = getattr(cls, _FIELDS)
    if len(args) > len(names):
        raise TypeError(
            f"{cls.__qualname__}() takes {len(names)} positional arguments, {len(args)} given"
        )
    put = object.__setattr__
    for name, value in zip(names, args, strict=False):
        put(self, name, value)
    for name, value in kwargs.items():
        if name not in names[len(args) :]:
            raise TypeError(f"{cls.__qualname__}() got an unexpected or repeated {name!r}")
        put(self, name, value)
    if len(args) + len(kwargs) < len(names):
        defaults: dict[str, Any] = getattr(cls, _DEFAULTS)
        for name in names[len(args) :]:
            if name in kwargs:
                continue
            if name not in defaults:
                raise TypeError(f"{cls.__qualname__}() missing the argument {name!r}")
            put(self, name, defaults[name])
    check = getattr(cls, "__post_init__", None)
    if check is not None:
        check(self)


def fields(cls: type[Any]) -> tuple[str, ...]:
    """The names of a value class's fields, in order."""
    names: tuple[str, ...] = getattr(cls, _FIELDS)
    return names


def replace(value: _T, **changes: Any) -> _T:
    """A copy of ``value`` with ``changes`` (checked by its ``__post_init__`` again)."""
    kept = {name: getattr(value, name) for name in fields(type(value))}
    return type(value)(**{**kept, **changes})


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, name) for name in getattr(type(self), _FIELDS))


def __repr__(self: Any) -> str:
    names: tuple[str, ...] = getattr(type(self), _FIELDS)
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
    return f"{type(self).__qualname__}({shown})"


def __eq__(self: Any, other: object) -> Any:
    if type(other) is not type(self):
        return NotImplemented
    return _values(self) == _values(other)


def __hash__(self: Any) -> int:
    return hash(_values(self))


def __setattr__(self: Any, name: str, value: Any) -> None:
    from dataclasses import FrozenInstanceError  # only when refusing

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def __delattr__(self: Any, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")
