"""What ``clearq gc`` removes from a home folder: unused environments, unreferenced git
mirrors, folders of deleted tasks; and what it must leave."""

from __future__ import annotations

import fcntl
import os
import time
import uuid
from pathlib import Path

from clearq.envs.evict import evict_unused_for
from clearq.envs.layout import CacheLayout
from clearq.runtime.gitsafe import reset_mirror_config
from clearq.runtime.housekeeping import deleted_task_folders, unreferenced_mirrors

DAY = 86400.0


def _aged(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when))


def _env(layout: CacheLayout, key: str, used_days_ago: float) -> None:
    env = layout.entry(key)
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_bytes(b"x" * 100)
    layout.prepare()
    layout.write_record(env, key, build_seconds=1.0)
    record = layout.record(key)
    assert record is not None
    built = time.time() - used_days_ago * DAY
    (env / ".clearq-env.json").write_text(
        (env / ".clearq-env.json").read_text().replace(str(record["built_at"]), str(built))
    )
    layout.use_file(key).touch()
    _aged(layout.use_file(key), used_days_ago)


def test_environments_unused_for_the_retention_go_unless_in_use(tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path / "envs")
    _env(layout, "old", 40)
    _env(layout, "busy", 40)
    _env(layout, "fresh", 1)
    with open(layout.use_file("busy"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_SH)  # a task is using it
        assert {e.key for e in evict_unused_for(layout, 30 * DAY, dry_run=True)} == {"old", "busy"}
        assert layout.entry("old").is_dir()  # a dry run removes nothing
        gone = evict_unused_for(layout, 30 * DAY)
    assert [e.key for e in gone] == ["old"]
    assert gone[0].size_bytes >= 100
    assert not layout.entry("old").exists()
    assert layout.entry("busy").is_dir()
    assert layout.entry("fresh").is_dir()


def _mirror(root: Path, name: str, url: str, used_days_ago: float) -> Path:
    mirror = root / f"{name}.git"
    (mirror / "objects").mkdir(parents=True)
    (mirror / "objects" / "pack").write_bytes(b"p" * 50)
    reset_mirror_config(mirror, url)
    _aged(mirror / "config", used_days_ago)
    return mirror


def test_mirrors_go_when_no_task_names_them_and_no_clone_used_them(tmp_path: Path) -> None:
    root = tmp_path / "git-mirrors"
    named = _mirror(root, "named", "https://git.example/org/named", 90)
    orphan = _mirror(root, "orphan", "https://git.example/org/orphan", 90)
    in_use = _mirror(root, "submodule", "https://git.example/org/sub", 1)
    locked = _mirror(root, "locked", "https://git.example/org/locked", 90)
    (root / "unfinished.git.partial").mkdir()
    referenced = {"https://git.example/org/named"}
    would = unreferenced_mirrors(root, referenced, unused_seconds=30 * DAY, dry_run=True)
    assert sorted(r.path.name for r in would) == ["locked.git", "orphan.git"]
    assert orphan.is_dir()
    with open(locked.with_name("locked.git.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a clone is fetching into it
        gone = unreferenced_mirrors(root, referenced, unused_seconds=30 * DAY)
    assert [r.path.name for r in gone] == ["orphan.git"]
    assert gone[0].size_bytes >= 50
    assert "https://git.example/org/orphan" in gone[0].why
    assert not orphan.exists()
    assert named.is_dir()
    assert in_use.is_dir()
    assert locked.is_dir()
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "locked.git",
        "named.git",
        "submodule.git",
        "unfinished.git.partial",
    ]


def test_folders_of_deleted_tasks_go_and_nothing_else(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    alive, dead = uuid.uuid4(), uuid.uuid4()
    for task_id in (alive, dead):
        (root / str(task_id) / "weights").mkdir(parents=True)
        (root / str(task_id) / "weights" / "w.bin").write_bytes(b"w" * 10)
    (root / "not-a-task").mkdir()
    (root / str(uuid.uuid4()).upper()).mkdir()  # not the form clearq writes
    asked: list[list[uuid.UUID]] = []

    def existing(ids: list[uuid.UUID]) -> set[uuid.UUID]:
        asked.append(ids)
        return {alive} & set(ids)

    would = deleted_task_folders(root, existing, dry_run=True)
    assert [(r.path.name, r.size_bytes) for r in would] == [(str(dead), 10)]
    assert (root / str(dead)).is_dir()
    assert [r.path.name for r in deleted_task_folders(root, existing)] == [str(dead)]
    assert not (root / str(dead)).exists()
    assert (root / str(alive) / "weights" / "w.bin").is_file()
    assert (root / "not-a-task").is_dir()
    assert sorted(asked[0]) == sorted([alive, dead])
    assert deleted_task_folders(tmp_path / "missing", existing) == []
