"""A task imports its repository as in a checkout: the root, the working folder and the
``PYTHONPATH`` it set itself (a ``src`` layout) all reach ``sys.path``, with clearq's."""

from __future__ import annotations

from pathlib import Path

from clearq.models import Script, TaskSpec, TaskStatus
from clearq.scheduler import Store
from tests.acceptance.conftest import Agents
from tests.acceptance.test_agent import logs_of
from tests.gitrepo import published

TRAIN = """
import common, settings, mylib
from clearq import Task

Task.init()
print(f"root={common.VALUE} working={settings.VALUE} src={mylib.VALUE}", flush=True)
"""

FILES = {
    "tools/train.py": TRAIN,
    "common.py": "VALUE = 'root-module'\n",
    "configs/settings.py": "VALUE = 'working-module'\n",
    "src/mylib/__init__.py": "VALUE = 'src-layout'\n",
}
"""The entry point in a subfolder; what it imports lives beside it nowhere."""

EXPECTED = "root=root-module working=working-module src=src-layout"


def test_a_task_imports_the_repository_root_working_folder_and_its_own_path(
    store: Store, agents: Agents, tmp_path: Path
) -> None:
    repository = published(tmp_path, FILES)
    script = Script(
        repository=str(repository.origin),
        commit=repository.commit,
        entry_point="tools/train.py",
        working_dir="configs",
    )
    # The task's own PYTHONPATH (relative to its working folder) is kept, not replaced.
    spec = TaskSpec(
        project="imports", name="imports", script=script, environment={"PYTHONPATH": "../src"}
    )
    task_id = store.tasks.create(spec).id
    store.queues.create("q")
    store.queues.enqueue(task_id, "q")
    out = agents.run("-q", "q", "--once")
    assert f"task {task_id} completed" in out, out
    assert store.tasks.get(task_id).status is TaskStatus.COMPLETED
    assert EXPECTED in logs_of(store, task_id)
