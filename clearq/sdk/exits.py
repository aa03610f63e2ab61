"""How this process will exit, as Python decides it: what a run started by hand records.

Python gives the process its exit status after the script's last line: 0 when the main
module ran to its end, the code of an uncaught ``SystemExit`` (``None`` is 0, an int is
itself, anything else is printed and is 1), and 1 for any other uncaught exception.
``atexit`` callbacks run after that decision but are not told of it, so the watch sees
each part where it happens, changing nothing about how the script runs:

- the ``__main__`` module's frame, kept from when the watch starts: at exit, the
  instruction it stopped at says whether it returned (ran to its end: a ``SystemExit``
  raised and caught on the way does not count) or was unwound by an exception;
- ``sys.last_value``, which Python sets for an uncaught exception other than
  ``SystemExit`` (whatever ``sys.excepthook`` the script installed);
- each ``SystemExit`` on its way: ``sys.exit``, ``exit()`` and ``quit()`` are wrapped,
  and ``raise SystemExit(...)`` in the script itself is seen through a subclass bound to
  the name ``SystemExit`` in the script's own namespace (never in ``builtins``). That
  binding is made only when the script uses the name for nothing but ``raise``: an
  ``except SystemExit`` in it keeps meaning the builtin class.

A ``SystemExit`` raised directly by other code (a library's own ``raise SystemExit``)
is not seen: the run then says the exit status is unknown rather than guess it.
"""

from __future__ import annotations

import ast
import builtins
import opcode
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, NoReturn

from clearq.valueclass import value_class

_RETURNS = frozenset(
    code for code, name in enumerate(opcode.opname) if name in ("RETURN_VALUE", "RETURN_CONST")
)
_BUILTIN_SYSTEM_EXIT = builtins.SystemExit


@value_class
class ExitStatus:
    """The exit status the process gets (None: unknown), and why, for the task's reason."""

    code: int | None
    reason: str = ""
    exception: BaseException | None = None
    """The uncaught exception (not ``SystemExit``) that ended the process, if one did."""


_COMPLETED = ExitStatus(0)
_UNKNOWN = ExitStatus(
    None, "ended by a SystemExit raised outside the script, whose exit status is not known"
)


class ExitWatch:
    """Sees how the process is exiting; :meth:`status` says it (call it from atexit)."""

    def __init__(self) -> None:
        self._main: FrameType | None = None
        self._namespace: dict[str, Any] | None = None
        self._last_value: object = None
        self._code: object = None
        self._noted = False
        self._saved: list[tuple[Any, str, Any]] = []

    def install(self) -> None:
        """Start watching (once): keep the main frame, wrap the exits."""
        if self._saved:
            return
        main = sys.modules.get("__main__")
        self._main = _main_module_frame(main)
        self._last_value = getattr(sys, "last_value", None)
        self._replace(sys, "exit", self._wrap(sys.exit))
        for name in ("exit", "quit"):  # site's helpers, where the interpreter has them
            if callable(helper := getattr(builtins, name, None)):
                self._replace(builtins, name, self._wrap(helper))
        if main is not None and _raises_only(main):
            self._namespace = vars(main)
            self._replace_in_namespace(self._noting_system_exit())

    def uninstall(self) -> None:
        """Put every wrapped name back (idempotent)."""
        while self._saved:
            owner, name, original = self._saved.pop()
            if isinstance(owner, dict):
                if original is _ABSENT:
                    owner.pop(name, None)
                else:
                    owner[name] = original
            else:
                setattr(owner, name, original)

    def status(self) -> ExitStatus:
        """The exit status Python gives the process, as far as it is known now."""
        if self._main is not None and _returned(self._main):
            return _COMPLETED
        uncaught = getattr(sys, "last_value", None)
        if isinstance(uncaught, BaseException) and uncaught is not self._last_value:
            message = f"{type(uncaught).__name__}: {uncaught}".strip().rstrip(":")
            return ExitStatus(1, f"uncaught exception: {message}", uncaught)
        if self._noted:
            return _from_code(self._code)
        return _UNKNOWN if self._main is not None else _COMPLETED

    def note(self, code: object) -> None:
        """A ``SystemExit`` with this code is on its way (the last one counts)."""
        self._noted = True
        self._code = code

    def _wrap(self, exit_function: Callable[..., Any]) -> Callable[..., NoReturn]:
        def noting_exit(code: object = None) -> NoReturn:
            self.note(code)
            exit_function(code)
            raise _BUILTIN_SYSTEM_EXIT(code)  # only if the original returned

        noting_exit.__doc__ = exit_function.__doc__
        return noting_exit

    def _replace(self, owner: object, name: str, value: object) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def _replace_in_namespace(self, value: type[SystemExit]) -> None:
        assert self._namespace is not None
        self._saved.append(
            (self._namespace, "SystemExit", self._namespace.get("SystemExit", _ABSENT))
        )
        self._namespace["SystemExit"] = value

    def _noting_system_exit(self) -> type[SystemExit]:
        watch = self

        class SystemExit(_BUILTIN_SYSTEM_EXIT):  # the script's raise, seen
            __doc__ = _BUILTIN_SYSTEM_EXIT.__doc__

            def __init__(self, *args: object) -> None:
                super().__init__(*args)
                watch.note(self.code)

            def __reduce__(self) -> tuple[type[BaseException], tuple[Any, ...]]:
                return _BUILTIN_SYSTEM_EXIT, self.args  # pickles as the builtin

        return SystemExit


_ABSENT = object()


def _from_code(code: object) -> ExitStatus:
    """What Python makes of ``SystemExit(code)``: the status the process exits with."""
    if code is None:
        return _COMPLETED
    if isinstance(code, int):
        status = code & 0xFF  # what the operating system keeps of it
        return ExitStatus(status, f"exited with {code}" if status else "")
    return ExitStatus(1, str(code))  # Python prints the message and exits 1


def _main_module_frame(main: ModuleType | None) -> FrameType | None:
    """The outermost frame running the ``__main__`` module's code (None: not found)."""
    ident = threading.main_thread().ident
    if main is None or ident is None:
        return None
    frame = sys._current_frames().get(ident)
    found = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            found = frame
        frame = frame.f_back
    return found


def _returned(frame: FrameType) -> bool:
    """True once the frame has run to a return (an exception leaves it elsewhere)."""
    code = frame.f_code.co_code
    return 0 <= frame.f_lasti < len(code) and code[frame.f_lasti] in _RETURNS


def _raises_only(main: ModuleType) -> bool:
    """True when the script's source names ``SystemExit`` only to raise it."""
    file = getattr(main, "__file__", None)
    if not file:
        return False
    try:
        tree = ast.parse(Path(file).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return False
    raised = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise):
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                raised.add(id(target))
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "SystemExit"]
    return bool(names) and all(id(n) in raised for n in names)
