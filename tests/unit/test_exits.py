"""The exit watch: what Python makes of a SystemExit, and when the script's name is bound."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from clearq.sdk.exits import ExitStatus, _from_code, _raises_only


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (None, ExitStatus(0)),
        (0, ExitStatus(0)),
        (3, ExitStatus(3, "exited with 3")),
        (256, ExitStatus(0)),  # the operating system keeps 8 bits
        (True, ExitStatus(1, "exited with True")),
        ("no data", ExitStatus(1, "no data")),
    ],
)
def test_a_system_exit_code_becomes_the_status_python_exits_with(
    code: object, status: ExitStatus
) -> None:
    assert _from_code(code) == status


@pytest.mark.parametrize(
    ("source", "bound"),
    [
        ("raise SystemExit('bye')\n", True),
        ("def f():\n    raise SystemExit\nf()\n", True),
        ("try:\n    f()\nexcept SystemExit:\n    pass\nraise SystemExit(1)\n", False),
        ("ok = isinstance(e, SystemExit)\n", False),
        ("SystemExit = None\n", False),
        ("print('no exit at all')\n", False),
    ],
)
def test_the_script_name_is_bound_only_where_it_is_only_raised(
    tmp_path: Path, source: str, bound: bool
) -> None:
    script = tmp_path / "script.py"
    script.write_text(source)
    main = types.ModuleType("__main__")
    main.__file__ = str(script)
    assert _raises_only(main) is bound


def test_a_script_without_a_file_is_never_bound() -> None:
    assert _raises_only(types.ModuleType("__main__")) is False
