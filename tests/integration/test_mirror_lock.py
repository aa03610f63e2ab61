"""A mirror held by a frozen process on this machine does not block the next clone for ever.

Real git, a real second process holding the mirror's lock (as a SIGSTOPped agent in the
middle of its fetch does): the clone gives up after its wait as an infrastructure failure
(the agent requeues the task), and clones again once the holder lets go.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clearq.models import Script
from clearq.runtime import workspace_git
from clearq.runtime.workspace import WorkspaceError, WorkspaceStep, build_workspace
from tests.gitrepo import published

HOLD = """
import fcntl, sys
with open(sys.argv[1], "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def test_a_mirror_locked_by_a_stuck_process_fails_the_clone_as_the_machines_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo").mkdir()
    repo = published(tmp_path / "repo", {"train.py": "print('hi')\n"})
    mirrors = tmp_path / "mirrors"
    script = Script(repository=str(repo.origin), commit=repo.commit, entry_point="train.py")
    build_workspace(script, tmp_path / "first", mirror_cache=mirrors, allow_local=True)
    (lock,) = mirrors.glob("*.git.lock")
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        monkeypatch.setattr(workspace_git, "MIRROR_LOCK_TIMEOUT_SECONDS", 1.0)
        with pytest.raises(WorkspaceError) as refused:
            build_workspace(
                script,
                tmp_path / "second",
                mirror_cache=mirrors,
                allow_local=True,
            )
        assert refused.value.infra
        assert refused.value.step is WorkspaceStep.CLONE
        assert f"another process on this machine has held {lock}" in str(refused.value)
        assert holder.stdin is not None
        holder.stdin.close()  # the holder lets go
        holder.wait(timeout=60)
    run_in = build_workspace(script, tmp_path / "third", mirror_cache=mirrors, allow_local=True)
    assert (run_in / "train.py").read_text() == "print('hi')\n"
