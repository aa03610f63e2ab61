"""The host executor's decisions, on the in-memory store: how each way a run is cut short
becomes its outcome, before any process starts.

The store is ``clearq.testing``'s twin (``tests/contract`` keeps it honest); the env
provider is a fake that hands out this interpreter, or fails as told, or lets a stop
request arrive while it "builds". What a real venv, a real process and a real database
add is tested in ``tests/integration`` and ``tests/acceptance``.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clearq.config import Settings
from clearq.errors import EnvBuildError, EnvFailure, StoreUnavailable
from clearq.models import Claim, EnvSpec, Script, TaskSpec, TaskStatus
from clearq.runtime.executor import Control, Executor, ExecutorConfig, Outcome
from clearq.runtime.taskenv import PreparedEnv
from clearq.testing import MemoryStore

SCRIPT = Script(source="print('hi')\n", entry_point="train.py")


class FakeEnvs:
    """Hands out this interpreter; ``fail`` raises instead, ``during`` runs while it builds."""

    def __init__(
        self, *, fail: EnvBuildError | None = None, during: Callable[[], None] | None = None
    ) -> None:
        self.fail = fail
        self.during = during
        self.asked: list[EnvSpec] = []

    @contextmanager
    def prepare(
        self, spec: EnvSpec, *, log: Callable[[str], None], workspace: Path | None = None
    ) -> Iterator[PreparedEnv]:
        self.asked.append(spec)
        log("fake env: ready")
        if self.during is not None:
            self.during()
        if self.fail is not None:
            raise self.fail
        yield PreparedEnv(
            python=Path(sys.executable), key="fake", hit=True, build_seconds=0.0, manager="fake"
        )


@pytest.fixture
def store(tmp_path: Path) -> MemoryStore:
    twin = MemoryStore(settings=Settings(home=tmp_path / "home"))
    twin.queues.create("q")
    return twin


def _claimed(store: MemoryStore, **spec: Any) -> Claim:
    spec.setdefault("script", SCRIPT)
    task_id = store.tasks.create(TaskSpec(project="p", name="t", **spec)).id
    store.queues.enqueue(task_id, "q")
    [claim] = store.claimer("w", ["q"]).claim()
    return claim


def _run(
    store: Any, tmp_path: Path, claim: Claim, control: Control, envs: FakeEnvs | None = None
) -> Outcome:
    config = ExecutorConfig(home=tmp_path / "home", database_url="sqlite://", worker="w")
    executor = Executor(store, envs or FakeEnvs(), config, channel_store=store)
    return executor.run(claim, control, gpus=("0",))


def _log(store: MemoryStore, task_id: uuid.UUID) -> str:
    return "".join(line.text for line in store.outputs.logs(task_id))


def test_a_stop_requested_before_the_start_ends_stopped_without_an_environment(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    control = Control()
    control.stop("asked by alice")
    envs = FakeEnvs()
    outcome = _run(store, tmp_path, claim, control, envs)
    assert outcome == Outcome(TaskStatus.STOPPED, None, "asked by alice")
    assert envs.asked == []  # stopped after the workspace, before building anything
    assert not (tmp_path / "home" / "runs" / f"{claim.task_id}-1").exists()  # cleaned up


def test_a_stop_arriving_while_the_env_builds_still_records_the_runtime_facts(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    control = Control()
    envs = FakeEnvs(during=lambda: control.stop("stopped while building"))
    outcome = _run(store, tmp_path, claim, control, envs)
    assert outcome == Outcome(TaskStatus.STOPPED, None, "stopped while building")
    runtime = store.tasks.get(claim.task_id).runtime
    assert runtime["worker"] == "w"
    assert runtime["gpus"] == ["0"]
    assert runtime["env"]["manager"] == "fake"
    assert "fake env: ready" in _log(store, claim.task_id)


def test_a_preemption_before_the_start_is_a_requeue_that_spends_no_attempt(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    control = Control()
    control.requeue("preempted for a higher-priority gang")
    outcome = _run(store, tmp_path, claim, control)
    assert outcome == Outcome(
        None, reason="preempted for a higher-priority gang", requeue=True, preempted=True
    )
    assert not outcome.infra


def test_a_lost_lease_records_nothing(store: MemoryStore, tmp_path: Path) -> None:
    claim = _claimed(store)
    control = Control()
    control.lose()
    assert _run(store, tmp_path, claim, control) == Outcome(None, reason="lease lost")


def test_an_attempt_taken_over_in_the_store_is_a_lost_lease(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    store.leases.request_stop(claim.task_id, reason="ended from the page", force=True)
    envs = FakeEnvs()
    assert _run(store, tmp_path, claim, Control(), envs) == Outcome(None, reason="lease lost")
    assert envs.asked == []
    assert store.tasks.get(claim.task_id).status is TaskStatus.STOPPED  # as the page left it


def test_a_network_failure_of_the_env_build_requeues_as_infrastructure(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    down = EnvBuildError(EnvFailure.NETWORK, "the index did not answer", output="timed out")
    outcome = _run(store, tmp_path, claim, Control(), FakeEnvs(fail=down))
    assert outcome == Outcome(
        None, reason="environment failed: the index did not answer", requeue=True, infra=True
    )


def test_a_requirement_that_cannot_be_had_fails_the_task_with_the_installers_words(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    bad = EnvBuildError(
        EnvFailure.REQUIREMENT,
        "no version of nosuchpkg matches",
        requirement="nosuchpkg==9",
        manager="uv",
        output="No solution found when resolving dependencies",
    )
    outcome = _run(store, tmp_path, claim, Control(), FakeEnvs(fail=bad))
    assert outcome == Outcome(
        TaskStatus.FAILED, None, "environment failed: no version of nosuchpkg matches"
    )
    log = _log(store, claim.task_id)
    assert "No solution found when resolving dependencies" in log
    assert "environment failed: no version of nosuchpkg matches" in log


def test_a_task_with_no_code_fails_its_workspace_step_before_any_environment(
    store: MemoryStore, tmp_path: Path
) -> None:
    envs = FakeEnvs()
    for script in (Script(), Script(source="print(1)\n")):
        claim = _claimed(store, script=script)
        outcome = _run(store, tmp_path, claim, Control(), envs)
        assert outcome.status is TaskStatus.FAILED
        assert outcome.reason.startswith("workspace failed: ")
        assert outcome.reason in _log(store, claim.task_id)
    assert envs.asked == []


def test_a_reference_to_no_step_fails_the_parameters_step(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store, parameters={"General/data": "${prepare.artifacts.data.url}"})
    envs = FakeEnvs()
    outcome = _run(store, tmp_path, claim, Control(), envs)
    assert outcome.status is TaskStatus.FAILED
    assert outcome.reason.startswith("parameters failed: ")
    assert envs.asked == []


class _Unreachable:
    """The twin, with its task reads failing as a database that went away does."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self.outputs = store.outputs
        self.settings = store.settings

    @property
    def tasks(self) -> Any:
        store = self._store

        class Tasks:
            def __getattr__(self, name: str) -> Any:
                return getattr(store.tasks, name)

            def get(self, task_id: uuid.UUID) -> Any:
                raise StoreUnavailable("the database did not answer")

        return Tasks()


def test_a_store_outage_past_the_lease_gives_the_attempt_up(
    store: MemoryStore, tmp_path: Path
) -> None:
    claim = _claimed(store)
    control = Control()
    control.renewed(0.0)  # the agent's own give-up time for the lease is long past
    outcome = _run(_Unreachable(store), tmp_path, claim, control)
    assert outcome == Outcome(None, reason="lease outlived while the store was unreachable")
