"""PYTHONPATH for a task: extended with clearq and the repository, never replaced."""

from __future__ import annotations

import os
from pathlib import Path

from clearq.runtime.taskenv import task_environment


def _pythonpath(**kwargs: object) -> list[str]:
    env = task_environment(
        {"PYTHONPATH": "/agent/own", "PATH": "/bin"},
        python=Path("/venv/bin/python"),
        settings={},
        gpus=None,
        **kwargs,  # type: ignore[arg-type]
    )
    return env["PYTHONPATH"].split(os.pathsep)


def test_clearq_then_the_repository_then_the_tasks_own_entries() -> None:
    paths = _pythonpath(
        clearq_path=Path("/lib"),
        own={"PYTHONPATH": f"src{os.pathsep}/opt/extra"},
        import_paths=(Path("/ws/code"), Path("/ws/code/configs")),
    )
    assert paths == ["/lib", "/ws/code", "/ws/code/configs", "src", "/opt/extra"]


def test_the_agents_own_pythonpath_never_reaches_a_task() -> None:
    assert _pythonpath(clearq_path=Path("/lib")) == ["/lib"]


def test_an_operators_forced_entry_is_kept_and_nothing_repeats() -> None:
    paths = _pythonpath(
        clearq_path=Path("/lib"),
        forced={"PYTHONPATH": "/site"},
        import_paths=(Path("/ws/code"), Path("/ws/code")),
    )
    assert paths == ["/lib", "/ws/code", "/site"]
