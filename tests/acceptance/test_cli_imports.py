"""The command loads what its subcommand needs, and no more.

Every ``clearq`` process (a person's, a script's, each test's) pays its imports before it
does anything: ``--help`` and the command tree must not load the store, the runtime, the
environment builders, pydantic or rich; a store command loads the store but not the
runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import Cli

HEAVY = (
    "sqlalchemy",
    "pydantic",
    "rich",
    "psutil",
    "cronsim",
    "clearq.models",
    "clearq.ports",
    "clearq.scheduler.store",
    "clearq.runtime.agent",
    "clearq.runtime.executor",
    "clearq.envs",
    "clearq.sdk",
    "clearq.ui",
)

PROBE = """
import atexit, json, sys
heavy = {heavy!r}
atexit.register(lambda: print(json.dumps(sorted(m for m in heavy if m in sys.modules)),
                              file=sys.stderr))
sys.argv = ["clearq", *{args!r}]
from clearq.cli import main
main()
"""


def loaded(cli: Cli, *args: str) -> list[str]:
    """The heavy modules ``clearq ARGS`` had loaded when it exited (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, args=args)],
        env=dict(cli.env),
        cwd=Path(cli.env["CLEARQ_HOME"]).parent,  # `python -c` puts the folder on sys.path
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return found


@pytest.fixture
def sqlite_cli(sqlite_url: str, tmp_path: Path) -> Cli:
    """The command on a SQLite file: for what touches no database."""
    return Cli.for_database(sqlite_url, tmp_path / "home")


# typer's own: it prints help with rich, and its parameter adapters import pydantic
# where it is installed.
TYPERS = {"rich", "pydantic"}


def test_help_loads_nothing_heavy(sqlite_cli: Cli) -> None:
    for args in (["--help"], ["task", "--help"], ["agent", "--help"], ["--version"]):
        assert set(loaded(sqlite_cli, *args)) <= TYPERS, args


def test_every_subcommand_is_registered_without_loading_its_work(sqlite_cli: Cli) -> None:
    cli = sqlite_cli
    code = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from clearq.cli.app import app\n"
        "get_command(app)\n"  # what typer does before running any command
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(cli.env),
        cwd=Path(cli.env["CLEARQ_HOME"]).parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "[]"


def test_a_store_command_loads_the_store_but_not_the_runtime(cli: Cli) -> None:
    cli.run("queue", "create", "light")
    found = loaded(cli, "queue", "list", "--json")
    assert {"sqlalchemy", "clearq.scheduler.store"} <= set(found)
    assert not {"clearq.runtime.agent", "clearq.envs", "clearq.sdk", "rich"} & set(found)
