"""Fixtures for running the real ``clearq`` command as a user does: a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.scheduler import Store
from clearq.sdk.task import use_store
from tests import forkserver
from tests.conftest import DIALECTS
from tests.pgserver import PgServer, unique_database_name

CLEARQ = forkserver.CLEARQ
COMMAND_TIMEOUT = 60


@dataclass(frozen=True)
class Cli:
    """The ``clearq`` console script, pointed at one database and one home folder."""

    env: Mapping[str, str]

    @classmethod
    def for_database(cls, url: str, home: Path) -> Cli:
        """A Cli whose environment names only this database and home (no user settings)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
        env.pop("FORCE_COLOR", None)
        # The tests' repositories are local bare ones: their agents allow those.
        env.update(
            CLEARQ_DATABASE_URL=url, CLEARQ_HOME=str(home), CLEARQ_ALLOW_LOCAL_REPOSITORIES="1"
        )
        return cls(env=env)

    def run(
        self, *args: str, check: bool = True, env: Mapping[str, str] | None = None
    ) -> forkserver.Result:
        """Run ``clearq ARGS``; with ``check`` it must succeed and print no error."""
        result = forkserver.run(
            [str(CLEARQ), *args], env={**self.env, **(env or {})}, timeout=COMMAND_TIMEOUT
        )
        if check:
            assert result.returncode == 0, f"clearq {' '.join(args)}: {result.stderr}"
            assert result.stderr == ""
        return result

    def json(self, *args: str) -> Any:
        """Run ``clearq ARGS --json`` and parse its stdout, which must be JSON only."""
        return json.loads(self.run(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """Run a command that must fail cleanly; return its error, on one line."""
        result = self.run(*args, check=False)
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert result.stderr.startswith("error: ")
        assert "Traceback" not in result.stderr
        return " ".join(result.stderr.split())


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    """The command on this test's fresh database (the same one the ``store`` fixture opens)."""
    return Cli.for_database(store_url, tmp_path / "home")


@pytest.fixture(params=DIALECTS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    request.applymarker(pytest.mark.postgres)
    server: PgServer = request.getfixturevalue("pg_server")
    name = unique_database_name()
    url = server.create_database(name)
    yield url
    server.drop_database(name)


AGENT_WAIT_SECONDS = 120


class Agents:
    """``clearq agent`` processes started by a test, stopped at its end."""

    def __init__(self, cli: Cli, logs: Path) -> None:
        self._cli = cli
        self._logs = logs
        self.started: list[forkserver.Process] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> forkserver.Process:
        with (self._logs / f"agent-{len(self.started)}.log").open("wb") as log:
            proc = forkserver.spawn(
                [str(CLEARQ), "agent", "--skip-env", *args],
                env={**self._cli.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.started.append(proc)
        return proc

    def run(self, *args: str, env: dict[str, str] | None = None, code: int = 0) -> str:
        """Run an agent to its end (give --once or --idle-exit); its output.

        It must exit with ``code`` (``--once``: how its task ended).
        """
        proc = self.start(*args, env=env)
        assert proc.wait(timeout=AGENT_WAIT_SECONDS) == code, self.output(len(self.started) - 1)
        return self.output(len(self.started) - 1)

    def output(self, index: int) -> str:
        return (self._logs / f"agent-{index}.log").read_text()

    def wait_for_output(self, index: int, text: str) -> str:
        """Wait until agent ``index`` has said ``text``; its output so far."""
        deadline = time.monotonic() + AGENT_WAIT_SECONDS
        while text not in (out := self.output(index)):
            assert time.monotonic() < deadline, f"agent {index} never said {text!r}: {out}"
            time.sleep(0.1)
        return out

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def agents(cli: Cli, tmp_path: Path) -> Iterator[Agents]:
    running = Agents(cli, tmp_path)
    yield running
    running.stop_all()


def read_marks(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def clearml_env(store_url: str, tmp_path: Path) -> dict[str, str]:
    """A by-hand script's environment: this test's database and home, nothing else."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    out.update(CLEARQ_DATABASE_URL=store_url, CLEARQ_HOME=str(tmp_path / "home"))
    return out


@pytest.fixture
def clearml_db(store_url: str, tmp_path: Path) -> Iterator[Store]:
    """The store the scripts report into, also the SDK's in this test."""
    with Store(store_url, settings=Settings(home=tmp_path / "home")) as store:
        use_store(store)
        yield store
        use_store(None)


def run_script(folder: Path, name: str, text: str, env: dict[str, str], *args: str) -> str:
    """Run a script by hand, as its user does; its stdout (it must succeed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    done = subprocess.run(
        [sys.executable, name, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout
