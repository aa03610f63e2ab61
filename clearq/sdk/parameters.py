"""Parameters as flat ``Section/name`` strings, and back to the types the code uses.

``connect({"lr": 0.01, "model": {"layers": 3}}, name="General")`` stores
``General/lr = "0.01"`` and ``General/model/layers = "3"``. When an agent runs the task
with overridden values, each stored string is cast back to the type of the code's own
default (bool, int, float, str, list, tuple, dict, None), so the script sees ``0.1``
where it wrote ``0.01``, never the string ``"0.1"``.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from clearq.errors import InvalidInput

SEPARATOR = "/"
DEFAULT_SECTION = "General"
ARGS_SECTION = "Args"
_TRUE = frozenset({"true", "1", "yes", "y", "on"})
_FALSE = frozenset({"false", "0", "no", "n", "off", ""})


def to_text(value: Any) -> str:
    """The stored form of one value."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    if isinstance(value, list | tuple | dict):
        try:
            return json.dumps(value)
        except TypeError:
            return repr(value)
    return str(value)


def literal(text: str) -> Any:
    """The value a stored text spells (JSON, then a Python literal), else the text."""
    return _literal(text)


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def cast_like(text: str, default: Any, *, name: str = "") -> Any:
    """Turn a stored string into a value of the default's type.

    Raises InvalidInput naming the parameter when the string cannot be that type.
    """
    try:
        return _cast(text, default)
    except (ValueError, TypeError) as e:
        kind = type(default).__name__
        raise InvalidInput(
            f"parameter {name or '?'} = {text!r} cannot be used as {kind} "
            f"(the code's default is {default!r}): fix the override"
        ) from e


def _cast(text: str, default: Any) -> Any:
    if isinstance(default, bool):
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if isinstance(default, int):
        return int(float(text)) if text.strip().lower().endswith(".0") else int(text)
    if isinstance(default, float):
        return float(text)
    if isinstance(default, str):
        return text
    if default is None:
        return None if text in ("None", "") else _literal(text)
    if isinstance(default, list | tuple | dict):
        value = _literal(text)
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, type(default)):
            raise TypeError(f"not a {type(default).__name__}: {text!r}")
        return value
    return type(default)(text)


def flatten(values: Mapping[str, Any], section: str) -> dict[str, str]:
    """Nested mappings -> ``{"Section/a/b": "text"}``."""
    return {f"{section}{SEPARATOR}{key}": to_text(value) for key, value in _walk(values)}


def _walk(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        if SEPARATOR in str(key):
            raise InvalidInput(f"parameter name {key!r} contains {SEPARATOR!r}: rename it")
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _walk(value, f"{path}{SEPARATOR}")
        else:
            yield path, value


def apply_overrides(
    target: MutableMapping[str, Any], stored: Mapping[str, str], section: str
) -> None:
    """Set each key of ``target`` (nested too) that ``stored`` has to the stored value."""
    for key, default in list(target.items()):
        path = f"{section}{SEPARATOR}{key}"
        if isinstance(default, MutableMapping) and default:
            apply_overrides(default, stored, path)
        elif path in stored:
            target[key] = cast_like(stored[path], default, name=path)


def object_fields(obj: Any) -> dict[str, Any]:
    """The public attributes of an object (an instance, a class, a Namespace) to connect."""
    source = vars(obj) if hasattr(obj, "__dict__") else {}
    return {
        k: v
        for k, v in source.items()
        if not k.startswith("_")
        and not callable(v)
        and not isinstance(v, classmethod | staticmethod)
    }


def section_of(params: Mapping[str, str], section: str) -> dict[str, str]:
    """The entries of one section with the section prefix removed."""
    prefix = f"{section}{SEPARATOR}"
    return {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
