"""How a submodule's URL is resolved against its parent's and checked (no I/O)."""

from __future__ import annotations

import pytest

from clearq.models import Submodule
from clearq.runtime.submodules import resolve_url, submodule_url
from clearq.runtime.workspace import WorkspaceError

COMMIT = "ab" * 20


@pytest.mark.parametrize(
    ("url", "parent", "expected"),
    [
        ("../lib.git", "https://host/org/app.git", "https://host/org/lib.git"),
        ("../../other/lib.git", "https://host/org/app.git", "https://host/other/lib.git"),
        ("./lib.git", "https://host/org/app.git", "https://host/org/app.git/lib.git"),
        ("../lib.git", "https://host:8443/org/app.git/", "https://host:8443/org/lib.git"),
        ("../lib.git", "git@host:org/app.git", "git@host:org/lib.git"),
        ("../lib.git", "git@host:app.git", "git@host:lib.git"),
        ("../lib.git", "ssh://git@host/org/app.git", "ssh://git@host/org/lib.git"),
        ("../lib.git", "/srv/repos/app.git", "/srv/repos/lib.git"),
        ("https://other/x.git", "https://host/org/app.git", "https://other/x.git"),
        ("git@other:x.git", "https://host/org/app.git", "git@other:x.git"),
    ],
)
def test_relative_urls_resolve_as_git_resolves_them(url: str, parent: str, expected: str) -> None:
    assert resolve_url(url, parent) == expected


@pytest.mark.parametrize(
    ("url", "parent", "reason"),
    [
        ("../../x.git", "https://host/app.git", "climbs above"),
        ("../../x.git", "git@host:app.git", "climbs above"),
        ("./a/../../x.git", "https://host/org/app.git", "'..' segment"),
        ("https://host/a/../b.git", "https://host/org/app.git", "'..' segment"),
    ],
)
def test_urls_that_climb_out_are_refused(url: str, parent: str, reason: str) -> None:
    with pytest.raises(WorkspaceError, match=reason):
        resolve_url(url, parent)


def test_a_relative_submodule_follows_its_parents_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLEARQ_GIT_PREFER", "ssh")
    lib = Submodule(path="lib", repository="../lib.git", commit=COMMIT)
    assert submodule_url(lib, "git@host:org/app.git", allow_local=False) == "git@host:org/lib.git"
    absolute = Submodule(path="lib", repository="https://host/org/lib.git", commit=COMMIT)
    assert submodule_url(absolute, "git@host:org/app.git", allow_local=False) == (
        "git@host:org/lib.git"
    )


def test_a_local_submodule_url_needs_the_operators_leave() -> None:
    lib = Submodule(path="lib", repository="/srv/lib.git", commit=COMMIT)
    with pytest.raises(WorkspaceError, match="local repositories"):
        submodule_url(lib, "https://host/org/app.git", allow_local=False)
    assert submodule_url(lib, "https://host/org/app.git", allow_local=True) == "/srv/lib.git"
