"""Every task records who made it: ``CLEARQ_USER``, else the OS user; lists filter by it."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from clearq.scheduler import Store
from tests.acceptance.conftest import Cli, run_script

SCRIPT = """
from clearq import Task

mine = Task.get_tasks(user="alice")
print(sorted(t.name for t in mine))
print(Task.get_tasks(user="nobody"))
"""


def test_tasks_record_their_maker_and_lists_filter_by_it(
    cli: Cli, store: Store, tmp_path: Path
) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('job')\n")
    create = ("task", "create", "--project", "p", "--script", str(script), "--json")
    made = cli.run(*create, "--name", "a1", env={"CLEARQ_USER": "alice"}).stdout
    alice = cli.json("task", "show", made.split('"id": "')[1].split('"')[0])
    assert alice["user"] == "alice"
    env_without_user = {k: v for k, v in cli.env.items() if k != "CLEARQ_USER"}
    os_made = Cli(env_without_user).json(*create[:-1], "--name", "os")
    assert os_made["user"] == getpass.getuser()
    # A clone is its cloner's.
    cloned = cli.run("task", "clone", alice["id"], "--json", env={"CLEARQ_USER": "bob"}).stdout
    assert '"user": "bob"' in cloned
    listed = cli.json("task", "list", "--user", "alice")
    assert [t["name"] for t in listed] == ["a1"]
    assert cli.json("task", "list", "--user", "nobody") == []
    out = run_script(tmp_path / "sdk", "find.py", SCRIPT, {**os.environ, **cli.env})
    assert out.splitlines() == ["['a1']", "[]"]
    assert [t.name for t in store.tasks.list(user="bob")] == ["a1 (clone)"]
