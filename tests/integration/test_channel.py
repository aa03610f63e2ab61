"""The attempt channel: a task's writes reach only its own attempt, and only with its token.

Each test runs on the in-memory twin as well as on SQLite and PostgreSQL (the channel
takes a ``ChannelStore``; ``tests/contract/test_results_contract.py`` holds the twin's
answers to the real store's), so the channel's decisions are also checked without a
database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clearq.errors import ChannelRefused, InvalidInput, LeaseLost
from clearq.models import Artifact, Fence, TaskStatus
from clearq.runtime.channel import AttemptChannel
from clearq.scheduler import Store
from clearq.scheduler.runlink import RunFence
from clearq.sdk.channel import ChannelLink
from tests.contract.test_store_contract import any_store  # noqa: F401 - the fixture
from tests.integration.helpers import new_task

WORKER = "host:agent"


@pytest.fixture
def store(any_store: Store) -> Store:  # noqa: F811
    """The twin, SQLite or PostgreSQL: every test here runs on each."""
    return any_store


@pytest.fixture
def attempt(store: Store) -> Fence:
    task_id = new_task(store, "mine", parameters={"General/lr": "0.1"})
    return store.tasks.start(task_id, worker=WORKER)


@pytest.fixture
def channel(store: Store, attempt: Fence, tmp_path: Path) -> Iterator[AttemptChannel]:
    # A deep folder: the socket's path is past the 108 bytes of a socket address.
    folder = tmp_path / ("runs-" + "x" * 80) / f"{attempt.task_id}-{attempt.attempt}"
    with AttemptChannel(store, attempt, folder) as opened:
        yield opened


_OPENED: list[ChannelLink] = []


@pytest.fixture(autouse=True)
def _close_links() -> Iterator[None]:
    yield
    while _OPENED:
        _OPENED.pop().close()


def _link(channel: AttemptChannel, token: str | None = None) -> ChannelLink:
    link = ChannelLink(channel.path, token if token is not None else channel.token)
    _OPENED.append(link)
    return link


def _fence(f: Fence) -> RunFence:
    return RunFence(task_id=f.task_id, attempt=f.attempt, worker=f.worker)


def test_a_task_reads_and_writes_its_own_attempt_through_the_channel(
    store: Store, attempt: Fence, channel: AttemptChannel
) -> None:
    link, fence = _link(channel), _fence(attempt)
    assert link.read(attempt.task_id).parameters == {"General/lr": "0.1"}
    assert link.update_parameters(fence, {"General/epochs": "3"})["General/epochs"] == "3"
    link.append(fence, [("stdout", "hello\n")], [("loss", "train", 1, 0.5)])
    assert link.heartbeat(fence).held
    link.close()
    task = store.tasks.get(attempt.task_id)
    assert task.parameters == {"General/lr": "0.1", "General/epochs": "3"}
    assert [line.text for line in store.outputs.logs(attempt.task_id)] == ["hello\n"]
    assert [(p.title, p.value) for p in store.outputs.scalars(attempt.task_id)] == [("loss", 0.5)]


def test_the_channel_refuses_another_tasks_rows(
    store: Store, attempt: Fence, channel: AttemptChannel
) -> None:
    victim = new_task(store, "victim", parameters={"General/api_key": "secret"})
    other = RunFence(task_id=victim, attempt=attempt.attempt, worker=WORKER)
    link = _link(channel)
    with pytest.raises(ChannelRefused, match="serves task"):
        link.read(victim)
    with pytest.raises(ChannelRefused, match="another task's rows"):
        link.update_parameters(other, {"General/api_key": "stolen"})
    with pytest.raises(ChannelRefused):
        link.append(other, [("stdout", "spoofed\n")], [])
    assert store.tasks.get(victim).parameters == {"General/api_key": "secret"}
    assert store.outputs.logs(victim) == []


def test_the_channel_refuses_a_wrong_token_another_attempt_and_what_no_task_may_do(
    store: Store, attempt: Fence, channel: AttemptChannel
) -> None:
    fence = _fence(attempt)
    with pytest.raises(ChannelRefused, match="token"):
        _link(channel, token="guessed").update_parameters(fence, {"General/lr": "9"})
    link = _link(channel)
    earlier = RunFence(task_id=attempt.task_id, attempt=attempt.attempt + 1, worker=WORKER)
    with pytest.raises(ChannelRefused, match="attempt"):
        link.append(earlier, [("stdout", "x\n")], [])
    with pytest.raises(ChannelRefused, match="allow-controllers"):
        link.call("enqueue", fence, queue="default")
    with pytest.raises(ChannelRefused, match="agent records"):
        link.finish(fence, TaskStatus.COMPLETED, exit_code=0, reason="")
    with pytest.raises(InvalidInput, match="writes only"):
        link.append(fence, [("agent", "clearq agent: all fine\n")], [])
    outside = Artifact(name="x", uri=str(channel.path.parent / "elsewhere" / "x.json"))
    with pytest.raises(ChannelRefused, match="outside this task's folder"):
        link.call("add_artifact", fence, artifact=outside.model_dump(mode="json"))
    assert store.tasks.get(attempt.task_id).parameters == {"General/lr": "0.1"}
    assert store.outputs.logs(attempt.task_id) == []


def test_a_superseded_attempts_writes_are_refused_by_the_fence(
    store: Store, attempt: Fence, channel: AttemptChannel
) -> None:
    store.leases.finish(attempt, TaskStatus.FAILED, reason="taken over")
    with pytest.raises(LeaseLost):
        _link(channel).append(_fence(attempt), [("stdout", "late\n")], [])
    assert not _link(channel).heartbeat(_fence(attempt)).held


def test_an_artifact_in_the_tasks_own_folder_is_recorded(
    store: Store, attempt: Fence, channel: AttemptChannel
) -> None:
    link = _link(channel)
    root = Path(link.call("artifacts_root", _fence(attempt)))
    uri = str(root / str(attempt.task_id) / "model" / "model.json")
    artifact = Artifact(name="model", uri=uri, kind="json")
    link.call("add_artifact", _fence(attempt), artifact=artifact.model_dump(mode="json"))
    assert [a.uri for a in store.outputs.artifacts(attempt.task_id)] == [uri]


def test_a_closed_channel_leaves_no_socket(store: Store, attempt: Fence, tmp_path: Path) -> None:
    opened = AttemptChannel(store, attempt, tmp_path / "run").start()
    assert opened.path.exists()
    opened.close()
    assert not opened.path.exists()
    assert opened.environment() == {
        "CLEARQ_CHANNEL": str(opened.path),
        "CLEARQ_CHANNEL_TOKEN": opened.token,
    }


def test_a_pipeline_step_reads_the_records_and_artifacts_of_its_pipelines_steps_only(
    store: Store, tmp_path: Path
) -> None:
    producer = new_task(store, "prepare")
    store.outputs.add_artifact(
        store.tasks.start(producer), Artifact(name="data", uri=str(tmp_path / "data.json"))
    )
    stranger = new_task(store, "stranger", parameters={"General/api_key": "secret"})
    pipeline = new_task(store, "pipeline", parameters={"Pipeline/steps/prepare": str(producer)})
    step = new_task(store, "train", parent_id=pipeline)
    store.tasks.update_parameters(pipeline, {"Pipeline/steps/train": str(step)})
    fence = store.tasks.start(step, worker=WORKER)
    with AttemptChannel(store, fence, tmp_path / "run") as opened:
        link = _link(opened)
        mine = _fence(fence)
        assert link.call("record", mine, of=str(producer))["name"] == "prepare"
        assert [a["name"] for a in link.call("artifacts", mine, of=str(producer))] == ["data"]
        with pytest.raises(ChannelRefused, match="neither this task nor a step"):
            link.call("record", mine, of=str(stranger))
        with pytest.raises(ChannelRefused, match="neither this task nor a step"):
            link.call("artifacts", mine, of=str(pipeline))


def test_a_task_reads_the_artifacts_of_the_tasks_it_depends_on(
    store: Store, tmp_path: Path
) -> None:
    store.queues.create("q")
    producer = new_task(store, "load")
    store.outputs.add_artifact(
        store.tasks.start(producer), Artifact(name="rows", uri=str(tmp_path / "rows.json"))
    )
    consumer = new_task(store, "fit")
    store.queues.enqueue(consumer, "q", depends_on=[producer], continue_on_failure=True)
    store.queues.dequeue(consumer)
    fence = store.tasks.start(consumer, worker=WORKER)
    with AttemptChannel(store, fence, tmp_path / "run") as opened:
        found = _link(opened).call("artifacts", _fence(fence), of=str(producer))
        assert [a["name"] for a in found] == ["rows"]
