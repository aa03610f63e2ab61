"""Task environments on this machine, from the shared cache of ``clearq.envs``.

Every agent on the machine uses the same cache under ``CLEARQ_HOME/envs``: an env that
one built is reused in place by the next task with the same spec (a hit costs a lock and
a rename check), and is held in use while a task runs so that eviction skips it. The
build's stages and the installer's output go to the task's log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from clearq.config import Settings
from clearq.envs import EnvCache
from clearq.models import EnvSpec
from clearq.runtime.taskenv import PreparedEnv


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
    def prepare(self, spec: EnvSpec, *, log: Callable[[str], None]) -> Iterator[PreparedEnv]:
        """The spec's environment, built if the cache lacks it, held while in use."""
        with self._cache.acquire(spec, progress=_TaskLogProgress(log)) as env:
            how = "reused" if env.hit else f"built in {env.build_seconds:.1f} s"
            log(f"environment {env.key} {how}")
            yield PreparedEnv(
                python=env.python,
                key=env.key,
                hit=env.hit,
                build_seconds=env.build_seconds,
                manager=env.manager,
            )
