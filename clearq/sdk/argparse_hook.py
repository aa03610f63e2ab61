"""Connect argparse automatically: every parsed argument becomes ``Args/<dest>``.

Once a task is initialised, ``ArgumentParser.parse_known_args`` (which ``parse_args``
calls) is wrapped: a local run records the parsed values; a run started by an agent
gets the stored, possibly overridden, values instead, cast like the parsed ones.
argparse is wrapped when the script imports it (at once if it has): a script without
argparse does not pay for its import.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clearq.sdk.parameters import ARGS_SECTION, SEPARATOR, cast_like, to_text

if TYPE_CHECKING:
    import argparse

_original: Any = None
"""argparse's own ``parse_known_args``, once wrapped."""
_state = threading.local()

Recorder = Callable[[dict[str, str]], None]
"""Stores parsed values (``Args/name`` -> text) for a local run."""


class ArgparseHook:
    """What the wrapped parser does with the arguments it parsed."""

    def __init__(
        self,
        *,
        overrides: Mapping[str, str] | None,
        record: Recorder,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self._overrides = overrides
        self._record = record
        self._skip = skip

    def handle(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> None:
        """Record the parsed values, or replace them with the stored overrides."""
        # An action whose default is SUPPRESS (a --version flag) leaves no attribute.
        dests = [d for d in _dests(parser) if d not in self._skip and hasattr(namespace, d)]
        if self._overrides is None:
            values = {
                f"{ARGS_SECTION}{SEPARATOR}{d}": to_text(getattr(namespace, d)) for d in dests
            }
            self._record(values)
            return
        for dest in dests:
            key = f"{ARGS_SECTION}{SEPARATOR}{dest}"
            if key in self._overrides:
                current = getattr(namespace, dest, None)
                setattr(namespace, dest, _cast(parser, dest, self._overrides[key], current, key))


def _dests(parser: argparse.ArgumentParser) -> list[str]:
    import argparse

    return [
        a.dest
        for a in parser._actions
        if a.dest not in (argparse.SUPPRESS, "help") and not isinstance(a, argparse._HelpAction)
    ]


def _cast(parser: argparse.ArgumentParser, dest: str, text: str, current: Any, key: str) -> Any:
    if current is not None:
        return cast_like(text, current, name=key)
    action = next(a for a in parser._actions if a.dest == dest)
    if text == "None":
        return None
    return action.type(text) if callable(action.type) else text


_hook: ArgparseHook | None = None


def install(hook: ArgparseHook) -> None:
    """Wrap ``ArgumentParser.parse_known_args`` with ``hook``, now or when argparse is
    imported (idempotent)."""
    from clearq.sdk.frameworks import when_imported

    global _hook
    _hook = hook
    when_imported("argparse", _wrap)


def _wrap(argparse: ModuleType) -> None:
    global _original
    parser = argparse.ArgumentParser
    if parser.parse_known_args is not _parse_known_args:
        _original = parser.parse_known_args
        parser.parse_known_args = _parse_known_args


def uninstall() -> None:
    """Restore argparse (a wrapper still waiting for its import does nothing then)."""
    global _hook
    _hook = None
    argparse = sys.modules.get("argparse")
    if argparse is not None and argparse.ArgumentParser.parse_known_args is _parse_known_args:
        argparse.ArgumentParser.parse_known_args = _original


def _parse_known_args(
    self: argparse.ArgumentParser,
    args: Sequence[str] | None = None,
    namespace: argparse.Namespace | None = None,
) -> tuple[argparse.Namespace, list[str]]:
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        parsed, rest = _original(self, args, namespace)
    finally:
        _state.depth = depth
    # Subparsers parse through this too: only the outermost parse is connected.
    if depth == 0 and _hook is not None:
        _hook.handle(self, parsed)
    return parsed, rest
