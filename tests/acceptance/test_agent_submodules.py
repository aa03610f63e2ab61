"""A script in a repository with a submodule, captured by ``Task.init`` with an edit and
an untracked file inside the submodule, queued with ``execute_remotely`` and run by a
real agent, which checks the submodule out from a mirror of its own, changes and all."""

from __future__ import annotations

from pathlib import Path

from clearq.models import TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents, run_script
from tests.acceptance.test_agent import logs_of
from tests.gitrepo import git, published

TRAIN = """
from clearq import Task

task = Task.init(project_name="submodules", task_name="vendored")
task.execute_remotely(queue_name="q")
from vendor.lib import core, extra
print(f"core={core.VALUE} extra={extra.VALUE}", flush=True)
"""

_LOCAL = ("-c", "protocol.file.allow=always")
_WHO = ("-c", "user.name=t", "-c", "user.email=t@t")


def test_an_agent_runs_a_task_with_its_submodule_and_the_changes_made_in_it(
    clearml_db: Store, clearml_env: dict[str, str], agents: Agents, tmp_path: Path
) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "app").mkdir()
    lib = published(tmp_path / "lib", {"core.py": "VALUE = 'pushed'\n"})
    app = published(tmp_path / "app", {"README": "app\n"})
    # Relative to app's origin (app/origin.git), as a team's .gitmodules would say it.
    git(app.work, *_LOCAL, "submodule", "--quiet", "add", "../../lib/origin.git", "vendor/lib")
    git(app.work, *_WHO, "commit", "-qm", "vendor lib")
    git(app.work, "push", "-q", "origin", "HEAD")
    (app.work / "vendor" / "lib" / "core.py").write_text("VALUE = 'edited'\n")
    (app.work / "vendor" / "lib" / "extra.py").write_text("VALUE = 'untracked'\n")
    clearml_db.queues.create("q")
    run_script(app.work, "train.py", TRAIN, clearml_env)

    [task] = clearml_db.tasks.list()
    [submodule] = task.script.submodules
    assert (submodule.path, submodule.repository) == ("vendor/lib", "../../lib/origin.git")
    assert submodule.commit == lib.commit
    out = agents.run("-q", "q", "--once")
    assert f"task {task.id} completed" in out, out
    assert clearml_db.tasks.get(task.id).status is TaskStatus.COMPLETED
    assert "core=edited extra=untracked" in logs_of(clearml_db, task.id)
    mirrors = tmp_path / "home" / "git-mirrors"
    assert len(list(mirrors.glob("*.git"))) == 2  # the app's and the submodule's own
