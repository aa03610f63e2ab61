"""``clearq gc`` through the real command, on SQLite and PostgreSQL: ``--dry-run`` lists
what would go and changes nothing; then gc removes it, and only it."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from clearq.models import ScalarPoint, Script, TaskSpec, TaskStatus
from clearq.runtime.gitsafe import reset_mirror_config
from clearq.scheduler import Store
from tests.acceptance.conftest import Cli, run_script
from tests.acceptance.test_task_cleanup import TRIAL

DAY = 86400.0
# About 0.9 s: what a test can wait past, far above clock granularity.
RETENTION_DAYS = "0.00001"
RETENTION = {
    "CLEARQ_RETENTION_LOGS_DAYS": RETENTION_DAYS,
    "CLEARQ_RETENTION_METRICS_DAYS": RETENTION_DAYS,
    "CLEARQ_RETENTION_ARCHIVED_DAYS": RETENTION_DAYS,
}


def _aged(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when))


def _mirror(home: Path, name: str, url: str) -> Path:
    mirror = home / "git-mirrors" / f"{name}.git"
    mirror.mkdir(parents=True)
    reset_mirror_config(mirror, url)
    _aged(mirror / "config", 60)
    return mirror


def _ended_with_outputs(store: Store, name: str) -> uuid.UUID:
    task_id = store.tasks.create(TaskSpec(project="p", name=name)).id
    fence = store.tasks.start(task_id)
    store.outputs.append_logs(fence, [("stdout", "old line\n")])
    point = ScalarPoint(title="loss", series="train", iteration=1, value=0.5)
    store.outputs.append_scalars(fence, [point])
    store.leases.finish(fence, TaskStatus.COMPLETED, exit_code=0)
    return task_id


def test_gc_dry_run_then_gc(
    cli: Cli, store: Store, clearml_env: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    trial = uuid.UUID(run_script(tmp_path / "run", "trial.py", TRIAL, clearml_env).split()[-1])
    folder = home / "artifacts" / str(trial)
    assert folder.is_dir()
    out = cli.run("task", "delete", str(trial), "--keep-files").stdout
    assert "deleted 1 task(s) and 0 file(s)" in out
    assert folder.is_dir()  # left for gc
    ended = _ended_with_outputs(store, "ended")
    archived = store.tasks.create(TaskSpec(project="p", name="archived")).id
    store.cleanup.archive([archived])
    used = "https://git.example/org/used.git"
    store.tasks.create(TaskSpec(project="p", name="repo", script=Script(repository=used)))
    kept_mirror = _mirror(home, "used", used)
    orphan_mirror = _mirror(home, "orphan", "https://git.example/org/orphan.git")
    time.sleep(2)

    dry = cli.run("gc", "--dry-run", env=RETENTION).stdout
    assert "would remove 1 log line(s)" in dry
    assert "would remove 1 scalar point(s)" in dry
    assert "would remove 1 task(s) archived" in dry
    assert str(folder) in dry
    assert str(orphan_mirror) in dry
    assert str(kept_mirror) not in dry
    assert "would remove 2 item(s)" in dry
    assert folder.is_dir()
    assert orphan_mirror.is_dir()
    assert len(store.outputs.logs(ended)) == 1
    assert store.tasks.get(archived).archived

    done = cli.run("gc", env=RETENTION).stdout
    assert "removed 1 log line(s)" in done
    assert "removed 1 task(s) archived" in done
    assert "removed 2 item(s)" in done
    assert not folder.exists()
    assert not orphan_mirror.exists()
    assert kept_mirror.is_dir()
    assert store.outputs.logs(ended) == []
    assert store.outputs.scalars(ended) == []
    assert [s.last for s in store.outputs.summary(ended)] == [0.5]
    assert [t.id for t in store.tasks.list(archived=None, project="p") if t.id == archived] == []
    assert store.tasks.get(ended).status is TaskStatus.COMPLETED

    again = cli.run("gc", env=RETENTION).stdout
    assert "removed no files" in again
    # Without retention settings gc keeps every row.
    assert "log line" not in cli.run("gc", "--dry-run").stdout
