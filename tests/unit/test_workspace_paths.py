"""Which paths a Script may name inside a workspace (no I/O)."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from clearq.runtime.workspace import WorkspaceError, WorkspaceStep, checked_path


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("train.py", PurePosixPath("train.py")),
        ("a/b/c.txt", PurePosixPath("a/b/c.txt")),
        ("./a//b", PurePosixPath("a/b")),
        ("données/é à.txt", PurePosixPath("données/é à.txt")),
        ("a/.gitignore", PurePosixPath("a/.gitignore")),
        ("..hidden", PurePosixPath("..hidden")),
    ],
)
def test_relative_paths_inside_are_accepted(value: str, expected: PurePosixPath) -> None:
    assert checked_path(value, what="file") == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("a/..", "'..'"),
        ("/etc/passwd", "absolute"),
        ("//host/share", "absolute"),
        ("C:/x", "absolute"),
        ("a\\..\\x", "backslash"),
        ("a\0b", "NUL"),
        (".git/config", ".git"),
        ("sub/.GIT/hooks/pre-commit", ".git"),
        ("", "empty"),
        (".", "empty"),
    ],
)
def test_paths_that_could_leave_the_workspace_are_refused(value: str, reason: str) -> None:
    with pytest.raises(WorkspaceError, match=reason) as caught:
        checked_path(value, what="file")
    assert caught.value.step is WorkspaceStep.PATHS


def test_the_root_itself_is_a_valid_working_folder() -> None:
    assert checked_path(".", what="working folder", allow_root=True) == PurePosixPath(".")
