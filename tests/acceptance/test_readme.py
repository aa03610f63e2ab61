"""Every Python snippet of the README runs as a newcomer would paste it.

Each snippet is saved as a script of its own and run, in README order, on one
newcomer's machine: one ``CLEARQ_HOME`` (the zero-setup SQLite default) shared by all
of them, so a later snippet finds the tasks an earlier one stored. A comment on the line
before a snippet's fence tells this test what else it needs; nothing else is assumed:

- ``<!-- snippet: continues -->``: it goes on from the snippet before it (pasted into the
  same script), so it may use the names that one made;
- ``<!-- snippet: agent: QUEUE -->``: an agent serves QUEUE while it runs
  (``clearq queue create QUEUE`` and ``clearq agent -q QUEUE --skip-env``, as the README
  shows);
- ``<!-- snippet: skip: REASON -->``: it needs what a test here does not start (several
  agents, a Docker image); it is still checked for names it never defines.

The skipped set is printed by ``test_the_skipped_snippets_say_why`` and kept small.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^(?P<indent> *)```python\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
_MARK = re.compile(r"<!-- snippet: (?P<what>.*?) -->\s*$")
MAX_SKIPPED = 4


@dataclass(frozen=True)
class Snippet:
    """One Python snippet: where it is, its code and what its marker says."""

    line: int
    code: str
    continues: bool
    skip: str | None
    agent: str | None = None


def snippets() -> list[Snippet]:
    """The README's Python snippets, in order."""
    text = README.read_text()
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = _MARK.search(before)
        what = [w.strip() for w in mark.group("what").split(";")] if mark else []
        skip = _option(what, "skip:")
        agent = _option(what, "agent:")
        indent = len(match.group("indent"))
        code = "\n".join(row[indent:] for row in match.group("body").splitlines())
        found.append(Snippet(line, code + "\n", "continues" in what, skip, agent))
    return found


def _option(what: list[str], prefix: str) -> str | None:
    return next((w.removeprefix(prefix).strip() for w in what if w.startswith(prefix)), None)


def scripts() -> list[tuple[Snippet, str]]:
    """Each snippet with the whole script it belongs to (the snippets it continues).

    A skipped snippet is not part of what later ones continue: it is never run.
    """
    out: list[tuple[Snippet, str]] = []
    chain = ""
    for s in snippets():
        script = (chain if s.continues else "") + s.code
        out.append((s, script))
        if s.skip is None:
            chain = script
    return out


def _ids(items: list[tuple[Snippet, str]]) -> list[str]:
    return [f"README.md:{s.line}" for s, _ in items]


ALL = scripts()
_RUN = [(s, script) for s, script in ALL if s.skip is None]
# A snippet that the next one run continues is run as part of that one.
RUNNABLE = [
    item for i, item in enumerate(_RUN) if i + 1 == len(_RUN) or not _RUN[i + 1][0].continues
]


@pytest.mark.parametrize(("snippet", "script"), ALL, ids=_ids(ALL))
def test_every_snippet_defines_what_it_uses(snippet: Snippet, script: str) -> None:
    """No snippet uses a name it (or the snippet it continues) never defines or imports."""
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--select",
            "F821",
            "--output-format",
            "concise",
            "--stdin-filename",
            "snippet.py",
            "-",
        ],
        input=script,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="session")
def machine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One newcomer's environment: a fresh CLEARQ_HOME, none of this machine's settings.

    Session-scoped: under pytest-xdist a worker may run another module's tests between
    two snippets, which would end a module-scoped home (and the queue an earlier snippet
    made) before the next snippet runs.
    """
    home = tmp_path_factory.mktemp("newcomer")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARQ_")}
    env.update(CLEARQ_HOME=str(home / "home"), PYTHONPATH=str(README.parent))
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.mark.parametrize(("snippet", "script"), RUNNABLE, ids=_ids(RUNNABLE))
def test_the_snippet_runs_as_pasted(
    snippet: Snippet, script: str, machine: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "snippet.py").write_text(script)
    with ExitStack() as stack:
        if snippet.agent:
            stack.enter_context(_serving(snippet.agent, machine, tmp_path))
        done = subprocess.run(
            [sys.executable, "snippet.py"],
            cwd=tmp_path,
            env=machine,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    log = (tmp_path / "agent.log").read_text() if snippet.agent else ""
    assert done.returncode == 0, f"README.md:{snippet.line}\n{done.stdout}\n{done.stderr}\n{log}"


@contextmanager
def _serving(queue: str, env: dict[str, str], folder: Path) -> Iterator[None]:
    """``clearq queue create QUEUE`` and ``clearq agent -q QUEUE --skip-env`` meanwhile."""
    clearq = str(Path(sys.executable).with_name("clearq"))
    subprocess.run([clearq, "queue", "create", queue], env=env, capture_output=True, check=False)
    with (folder / "agent.log").open("wb") as log:
        agent = subprocess.Popen(
            [clearq, "agent", "--queue", queue, "--skip-env"],
            env=env,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield
        finally:
            agent.terminate()
            agent.wait(timeout=60)


def test_the_skipped_snippets_say_why() -> None:
    skipped = [(s.line, s.skip) for s in snippets() if s.skip is not None]
    assert all(reason for _, reason in skipped)
    assert len(skipped) <= MAX_SKIPPED, f"too many README snippets are not run: {skipped}"
    assert len(RUNNABLE) >= 3
