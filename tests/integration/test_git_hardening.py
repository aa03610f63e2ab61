"""The agent's git over task-controlled repositories: a task cannot choose what it runs.

Real git, real repositories. The attack that got through: a task rewrote a cached
mirror's config (``protocol.ext.allow=always`` and an ``ext::sh -c ...`` URL) and the next
task with the same repository made the agent's own ``git fetch`` run that command.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clearq.models import Script
from clearq.runtime.workspace import WorkspaceError, WorkspaceStep, build_workspace
from tests.gitrepo import Published, git, published


@pytest.fixture
def repo(tmp_path: Path) -> Published:
    (tmp_path / "repo").mkdir()
    return published(tmp_path / "repo", {"train.py": "print('hi')\n"})


def _push_later(repo: Published) -> str:
    (repo.work / "later.py").write_text("print('later')\n")
    git(repo.work, "add", ".")
    git(repo.work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "later")
    git(repo.work, "push", "-q", "origin", "HEAD")
    return git(repo.work, "rev-parse", "HEAD")


def _only_mirror(mirrors: Path) -> Path:
    (mirror,) = mirrors.glob("*.git")
    return mirror


def test_a_rewritten_mirror_config_runs_nothing_on_the_next_fetch(
    repo: Published, tmp_path: Path
) -> None:
    mirrors = tmp_path / "mirrors"
    first = Script(repository=str(repo.origin), commit=repo.commit, entry_point="train.py")
    build_workspace(first, tmp_path / "one", mirror_cache=mirrors, allow_local=True)
    mirror, pwned = _only_mirror(mirrors), tmp_path / "pwned"
    # What the hostile task did from inside its container, with the mirror mounted.
    config = mirror / "config"
    config.write_text(
        config.read_text().replace(f"url = {repo.origin}", f"url = ext::sh -c touch% {pwned}")
        + '[protocol]\n\tallow = always\n[protocol "ext"]\n\tallow = always\n'
        + f'[core]\n\tfsmonitor = "touch {pwned}"\n'
        + f'[remote "origin"]\n\tuploadpack = "touch {pwned}; git-upload-pack"\n'
    )
    hook = mirror / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {pwned}\n")
    hook.chmod(0o755)
    later = _push_later(repo)  # the next task needs a commit the mirror lacks: a fetch
    second = Script(repository=str(repo.origin), commit=later, entry_point="later.py")
    run_in = build_workspace(second, tmp_path / "two", mirror_cache=mirrors, allow_local=True)
    assert (run_in / "later.py").is_file()
    assert not pwned.exists()


def test_an_ext_url_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    script = Script(repository=f"ext::sh -c touch% {pwned}", entry_point="x.py")
    for allow_local in (False, True):
        with pytest.raises(WorkspaceError) as caught:
            build_workspace(
                script,
                tmp_path / f"ws-{allow_local}",
                mirror_cache=tmp_path / "m",
                allow_local=allow_local,
            )
        assert caught.value.step is WorkspaceStep.CLONE
    assert not pwned.exists()


def test_a_local_repository_is_refused_unless_the_operator_allows_it(
    repo: Published, tmp_path: Path
) -> None:
    for url in (str(repo.origin), repo.origin.as_uri()):
        script = Script(repository=url, commit=repo.commit, entry_point="train.py")
        with pytest.raises(WorkspaceError, match="--allow-local-repositories") as caught:
            build_workspace(script, tmp_path / "refused", mirror_cache=tmp_path / "m")
        assert caught.value.step is WorkspaceStep.CLONE
        assert not (tmp_path / "m").exists() or not any((tmp_path / "m").glob("*.git"))


def test_the_global_git_config_is_not_read(
    repo: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pwned = tmp_path / "pwned"
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f"[core]\n\thooksPath = {home}\n")
    (home / "post-checkout").write_text(f"#!/bin/sh\ntouch {pwned}\n")
    (home / "post-checkout").chmod(0o755)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.hooksPath'='{home}'")
    script = Script(repository=str(repo.origin), commit=repo.commit, entry_point="train.py")
    build_workspace(script, tmp_path / "ws", allow_local=True)
    assert not pwned.exists()
    # The same hook does run for a plain git, so the test would see it.
    subprocess.run(["git", "clone", "-q", str(repo.origin), str(tmp_path / "plain")], check=True)
    assert pwned.exists()
