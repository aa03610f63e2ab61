"""Task environments on this machine, from the shared cache of ``clearq.envs``.

Every agent on the machine uses the same cache under ``CLEARQ_HOME/envs``: an env that
one built is reused in place by the next task with the same spec (a hit costs a lock and
a rename check), and is held in use while a task runs so that eviction skips it. The
build's stages and the installer's output go to the task's log.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from clearq.config import Settings
from clearq.envs import EnvCache, check_spec
from clearq.models import EnvSpec
from clearq.runtime.taskenv import PreparedEnv

LOCAL_ENV_FOLDER = "env"
"""A task's own env (a clone that holds its repository), in the attempt's folder."""


class _TaskLogProgress:
    """Sends a build's progress to the task's log."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log

    def stage(self, text: str) -> None:
        self._log(text)

    def output(self, line: str) -> None:
        self._log(line)


class HostEnvs:
    """An EnvProvider over the machine's env cache."""

    def __init__(self, cache: EnvCache) -> None:
        self._cache = cache

    @classmethod
    def from_settings(cls, settings: Settings) -> HostEnvs:
        """The provider over the cache under the settings' home."""
        return cls(EnvCache.from_settings(settings))

    @contextmanager
    def prepare(
        self, spec: EnvSpec, *, log: Callable[[str], None], workspace: Path | None = None
    ) -> Iterator[PreparedEnv]:
        """The spec's environment, built if the cache lacks it, held while in use.

        A spec that installs the task's repository (``-e .``) gets a hard-link clone of
        the cached entry beside ``workspace`` (in the attempt's own folder, removed with
        it) with the repository installed there.
        """
        clone_to = None
        if workspace is not None and check_spec(spec).local:
            clone_to = workspace.parent / LOCAL_ENV_FOLDER
            if clone_to.exists():
                shutil.rmtree(clone_to)  # left by an earlier agent for this attempt
        progress = _TaskLogProgress(log)
        lease = self._cache.acquire(spec, progress=progress, clone_to=clone_to, workspace=workspace)
        with lease as env:
            how = "reused" if env.hit else f"built in {env.build_seconds:.1f} s"
            log(f"environment {env.key} {how}")
            if env.local:
                log(f"installed {', '.join(env.local)} from the workspace into the task's own env")
            yield PreparedEnv(
                python=env.python,
                key=env.key,
                hit=env.hit,
                build_seconds=env.build_seconds,
                manager=env.manager,
                local=env.local,
            )
