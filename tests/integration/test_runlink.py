"""A run's bare-driver link writes what the Store reads, fenced like the Store's writes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from clearq.config import Settings
from clearq.errors import ConfigError, InvalidInput, LeaseLost, NotFound
from clearq.models import EnvSpec, Fence, ScalarPoint, Script, TaskStatus
from clearq.scheduler import Store
from clearq.scheduler.runlink import RunFence, RunLink, open_run_link
from tests.integration.helpers import new_task

LEASE = 30.0
SCRIPT = Script(entry_point="train.py", arguments=("--lr", "1"), diff="d", python_version="3.11")
ENV = EnvSpec(requirements=("six==1.16.0",), python="3.11")


@pytest.fixture
def link(store: Store, store_url: str) -> Iterator[RunLink]:
    opened = open_run_link(store_url, lease_seconds=LEASE)
    yield opened
    opened.close()


def _start(link: RunLink, **extra: object) -> RunFence:
    return link.create_running(
        project="p",
        name="n",
        task_type="training",
        script=SCRIPT.model_dump(mode="json"),
        env=ENV.model_dump(mode="json"),
        tags=("a", "b"),
        max_attempts=2,
        **extra,  # type: ignore[arg-type]
    )


def _as_store_fence(fence: RunFence) -> Fence:
    return Fence(task_id=fence.task_id, attempt=fence.attempt, worker=fence.worker)


def test_a_created_run_reads_back_through_the_store(link: RunLink, store: Store) -> None:
    fence = _start(link, output_uri="file:///out")
    task = store.tasks.get(fence.task_id)
    assert task.status is TaskStatus.RUNNING
    assert (task.attempt, task.tries, task.worker) == (1, 1, None)
    assert task.script == SCRIPT
    assert task.env == ENV
    assert task.tags == ("a", "b")
    assert task.output_uri == "file:///out"
    assert task.max_attempts == 2
    assert task.started_at is not None
    assert task.lease_expires_at is not None
    assert abs(task.lease_expires_at - task.started_at - timedelta(seconds=LEASE)) < timedelta(
        seconds=1
    )
    assert [t.id for t in store.tasks.list(status=TaskStatus.RUNNING)] == [fence.task_id]


def test_parameters_merge_and_attach_reads_them(link: RunLink, store: Store) -> None:
    fence = _start(link)
    assert link.update_parameters(fence, {"General/lr": "0.1"}) == {"General/lr": "0.1"}
    merged = link.update_parameters(fence, {"Args/epochs": "3"})
    assert merged == {"General/lr": "0.1", "Args/epochs": "3"}
    assert store.tasks.get(fence.task_id).parameters == merged
    stored = link.read(fence.task_id)
    assert (stored.project, stored.name, stored.attempt) == ("p", "n", 1)
    assert stored.parameters == merged
    with pytest.raises(NotFound):
        link.read(uuid.uuid4())


def test_logs_and_scalars_land_like_the_stores_own_writes(link: RunLink, store: Store) -> None:
    fence = _start(link)
    points = [("loss", "train", 0, 3.0), ("loss", "train", 1, 1.0), ("acc", "val", 0, 0.5)]
    link.append(fence, [("stdout", "hello\n"), ("stderr", "oops\n")], points[:2])
    link.append(fence, [], points[2:])
    link.append(fence, [("stdout", "bye\n")], [("loss", "train", 2, 2.0)])
    logs = store.outputs.logs(fence.task_id)
    assert [(line.stream, line.text, line.attempt) for line in logs] == [
        ("stdout", "hello\n", 1),
        ("stderr", "oops\n", 1),
        ("stdout", "bye\n", 1),
    ]
    assert [(p.title, p.iteration, p.value) for p in store.outputs.scalars(fence.task_id)] == [
        ("loss", 0, 3.0),
        ("loss", 1, 1.0),
        ("acc", 0, 0.5),
        ("loss", 2, 2.0),
    ]
    # The same points through the Store give the same summary.
    twin = new_task(store, "twin")
    twin_fence = store.tasks.start(twin)
    store.outputs.append_scalars(
        twin_fence,
        [ScalarPoint(title=t, series=s, iteration=i, value=v) for t, s, i, v in points[:2]],
    )
    store.outputs.append_scalars(
        twin_fence, [ScalarPoint(title="acc", series="val", iteration=0, value=0.5)]
    )
    store.outputs.append_scalars(
        twin_fence, [ScalarPoint(title="loss", series="train", iteration=2, value=2.0)]
    )

    def summary(task_id: uuid.UUID) -> list[tuple[object, ...]]:
        return [
            (s.title, s.series, s.last, s.min, s.max, s.last_iteration)
            for s in store.outputs.summary(task_id)
        ]

    assert summary(fence.task_id) == summary(twin)
    assert ("loss", "train", 2.0, 1.0, 3.0, 2) in summary(fence.task_id)


def test_unknown_log_stream_is_refused(link: RunLink, store: Store) -> None:
    fence = _start(link)
    with pytest.raises(InvalidInput, match="unknown log streams"):
        link.append(fence, [("video", "x")], [])
    assert store.outputs.logs(fence.task_id) == []


def test_heartbeat_extends_the_lease_and_carries_a_stop_request(
    link: RunLink, store: Store
) -> None:
    fence = _start(link)
    first = store.tasks.get(fence.task_id).lease_expires_at
    time.sleep(0.05)
    beat = link.heartbeat(fence)
    assert (beat.held, beat.stop_requested) == (True, False)
    second = store.tasks.get(fence.task_id).lease_expires_at
    assert first is not None
    assert second is not None
    assert second > first
    store.leases.request_stop(fence.task_id)
    assert link.heartbeat(fence).stop_requested is True


def test_finish_records_the_end_once(link: RunLink, store: Store) -> None:
    fence = _start(link)
    link.finish(fence, TaskStatus.FAILED, exit_code=2, reason="exited with 2")
    task = store.tasks.get(fence.task_id)
    assert (task.status, task.exit_code, task.status_reason) == (
        TaskStatus.FAILED,
        2,
        "exited with 2",
    )
    assert task.finished_at is not None
    assert task.lease_expires_at is None
    with pytest.raises(LeaseLost, match="is failed at attempt 1"):
        link.finish(fence, TaskStatus.COMPLETED, exit_code=0, reason="")
    with pytest.raises(InvalidInput, match="not running"):
        link.finish(fence, TaskStatus.RUNNING, exit_code=None, reason="")


def test_writes_after_the_attempt_is_taken_are_rejected_and_lost(
    link: RunLink, store: Store
) -> None:
    fence = _start(link)
    store.leases.finish(_as_store_fence(fence), TaskStatus.STOPPED, reason="taken")
    with pytest.raises(LeaseLost, match="no longer current"):
        link.append(fence, [("stdout", "late\n")], [("loss", "train", 0, 1.0)])
    with pytest.raises(LeaseLost):
        link.update_parameters(fence, {"General/x": "1"})
    assert link.heartbeat(fence).held is False
    assert store.outputs.logs(fence.task_id) == []
    assert store.outputs.scalars(fence.task_id) == []
    assert store.tasks.get(fence.task_id).parameters == {}
    # A fence naming a worker never matches a local run's task, and vice versa.
    other = _start(link)
    with pytest.raises(LeaseLost, match="by w1"):
        link.append(RunFence(other.task_id, other.attempt, "w1"), [("stdout", "x")], [])


def test_opening_an_empty_database_creates_the_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh' / 'clearq.db'}"
    opened = open_run_link(url, lease_seconds=LEASE)
    try:
        fence = _start(opened)
    finally:
        opened.close()
    with Store(url, settings=Settings(home=tmp_path)) as store:
        assert store.tasks.get(fence.task_id).status is TaskStatus.RUNNING


@pytest.mark.parametrize(
    ("url", "words"),
    [("mysql://u@h/db", "not supported"), ("sqlite://", "in-memory"), ("nonsense", "cannot")],
)
def test_unusable_urls_say_why(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        open_run_link(url, lease_seconds=LEASE)
