"""What the store keeps holds no credentials, and a task's stored log no secrets."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.models import EnvSpec, Script, TaskSpec
from clearq.runtime.logsink import LogSink
from clearq.scheduler import Store

TOKEN = "ghp_s3cr3tT0ken"


def test_a_token_in_a_url_requirement_is_not_stored_and_the_warning_says_where(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    env = EnvSpec(
        requirements=("six==1.16.0", f"pkg @ git+https://user:{TOKEN}@git.example.com/pkg.git"),
        index_urls=(f"https://me:{TOKEN}@index.example.com/simple",),
    )
    script = Script(repository=f"https://{TOKEN}@github.com/o/r.git", entry_point="t.py")
    with caplog.at_level(logging.WARNING, logger="clearq.scheduler"):
        task = store.tasks.create(TaskSpec(project="p", name="train", env=env, script=script))
    stored = store.tasks.get(task.id)
    assert stored.env.requirements == ("six==1.16.0", "pkg @ git+https://git.example.com/pkg.git")
    assert stored.env.index_urls == ("https://index.example.com/simple",)
    assert stored.script.repository == "https://github.com/o/r.git"
    assert TOKEN not in stored.model_dump_json()
    said = caplog.text
    assert "task 'train': requirements[1]" in said
    assert "task 'train': index_urls[0]" in said
    assert "task 'train': repository" in said
    assert TOKEN not in said
    store.tasks.edit(task.id, env=EnvSpec(lock_file=f'url = "https://x:{TOKEN}@files/a.whl"\n'))
    assert TOKEN not in store.tasks.get(task.id).model_dump_json()


def test_a_secret_split_across_output_chunks_is_masked_in_the_stored_log(store: Store) -> None:
    task = store.tasks.create(TaskSpec(project="p", name="leaky"))
    fence = store.tasks.start(task.id, worker="box:a")
    sink = LogSink(store, fence, interval=60, secrets=[TOKEN, "db-password"])
    sink("stdout", "connecting with db-password\n")
    sink("stdout", f"token={TOKEN[:6]}")
    sink.flush()  # a write between the two halves
    sink("stdout", f"{TOKEN[6:]} done\n")
    sink("stderr", f"ends with {TOKEN[:9]}")
    sink.close()
    text = "".join(line.text for line in store.outputs.logs(task.id))
    assert TOKEN not in text
    assert "db-password" not in text
    assert TOKEN[:9] not in text
    assert "connecting with ***\n" in text
    assert "token=*** done\n" in text


def test_a_new_home_is_owner_only_and_so_is_the_sqlite_file(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    with Store(settings=Settings(home=home)):
        pass
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "clearq.db").stat().st_mode) == 0o600
    for companion in home.glob("clearq.db-*"):  # WAL and shared memory, when left
        assert stat.S_IMODE(companion.stat().st_mode) & 0o077 == 0


def test_captured_packages_lose_their_credentials_with_a_warning(tmp_path: Path) -> None:
    from clearq.sdk.capture.packages import capture_packages

    (tmp_path / "train.py").write_text("print('hi')\n")
    (tmp_path / "requirements.txt").write_text(
        f"six==1.16.0\npkg @ git+https://user:{TOKEN}@git.example.com/pkg.git\n"
    )
    captured = capture_packages(
        tmp_path / "train.py",
        repo_root=tmp_path,
        index_urls=[f"https://{TOKEN}@index.example.com/simple"],
    )
    assert TOKEN not in repr(captured.fields)
    assert "pkg @ git+https://git.example.com/pkg.git" in captured.fields["requirements"]
    assert captured.fields["index_urls"] == ["https://index.example.com/simple"]
    where = [w for w in captured.warnings if "credentials removed" in w]
    assert len(where) == 2
    assert any("the captured packages: requirements[" in w for w in where)


def test_a_tasks_own_environment_is_stored_cloned_edited_and_checked(store: Store) -> None:
    from clearq.errors import InvalidInput

    task = store.tasks.create(TaskSpec(project="p", name="e", environment={"HF_HOME": "/d"}))
    assert store.tasks.get(task.id).environment == {"HF_HOME": "/d"}
    clone = store.tasks.clone(task.id)
    assert clone.environment == {"HF_HOME": "/d"}
    store.tasks.edit(clone.id, environment={"A": "1"})
    assert store.tasks.get(clone.id).environment == {"A": "1"}
    store.tasks.edit(clone.id, environment={})
    assert store.tasks.get(clone.id).environment == {}
    for bad in ({"CLEARQ_DATABASE_URL": "x"}, {"1X": "y"}):
        with pytest.raises(InvalidInput, match="environment"):
            store.tasks.edit(clone.id, environment=bad)
    assert store.tasks.create(TaskSpec(project="p", name="none")).environment == {}
