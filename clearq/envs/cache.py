"""The env cache: one built environment per canonical spec, shared by every agent.

``EnvCache.acquire(spec)`` returns a lease on a ready environment: a hit when the
cache holds it (used in place, or hard-link cloned with ``clone_to``), else a miss
that builds it first. A build goes to a temporary folder beside the cache and is
renamed into place when complete, all under a file lock per key, so two processes that
need the same environment build it once and neither sees half of it. A build that
fails, or a process killed mid-build, leaves nothing that counts as an entry; its
temporary folder is removed by the next build of that key or the next eviction pass.
After every build the least recently used entries go while the cache holds more than
``max_entries`` entries or ``max_bytes`` bytes, except those in use.

A spec that installs the task's own repository (``-e .``) gets the entry of the rest of
its spec, cloned for the task, with the repository installed into the clone only
(``clearq.envs.local``): no entry ever holds a task's code.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from clearq.config import DEFAULT_ENV_CACHE_MAX_BYTES, DEFAULT_ENV_CACHE_MAX_ENTRIES, Settings
from clearq.envs.builder import Builder, default_builders, env_python
from clearq.envs.evict import evict, evict_unused_for, remove_stale_builds
from clearq.envs.inuse import UseLock
from clearq.envs.layout import CacheEntry, CacheLayout, hardlink_clone
from clearq.envs.local import install_local
from clearq.envs.progress import BuildProgress, terminal_progress
from clearq.envs.spec import CheckedSpec, check_spec, env_key
from clearq.errors import EnvBuildError, EnvFailure
from clearq.models import EnvManager, EnvSpec

__all__ = ["EnvCache", "EnvLease", "ReadyEnv"]

ProgressFactory = Callable[[str], AbstractContextManager[BuildProgress]]


@dataclass(frozen=True)
class ReadyEnv:
    """An environment ready to run: what a task records about the one it got."""

    key: str
    """The cache key (``<manager>-py<version>-<digest>``)."""
    path: Path
    """The environment's folder: the cache entry, or the clone."""
    python: Path
    """``path/bin/python``: run the task with it."""
    hit: bool
    """True when the cache held it already."""
    build_seconds: float
    """Time spent building it for this request (0.0 on a hit)."""
    manager: str = "uv"
    """The spec's manager (``uv``, ``pip``, ``poetry``, ``conda``)."""
    cloned: bool = False
    """True when ``path`` is a hard-link clone of the entry, the task's own."""
    local: tuple[str, ...] = ()
    """The spec's lines installed into the clone from the task's workspace (``-e .``)."""


class EnvLease:
    """A ready environment, kept from eviction until released (or the ``with`` ends)."""

    def __init__(self, env: ReadyEnv, use: UseLock | None) -> None:
        self.env = env
        self._use = use

    def release(self) -> None:
        """Let the cache evict the environment again (a clone was never held)."""
        if self._use is not None:
            self._use.release()

    def __enter__(self) -> ReadyEnv:
        return self.env

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class EnvCache:
    """Built environments under ``root``, one per canonical spec."""

    def __init__(
        self,
        root: Path,
        *,
        max_entries: int = DEFAULT_ENV_CACHE_MAX_ENTRIES,
        max_bytes: int = DEFAULT_ENV_CACHE_MAX_BYTES,
        builders: Mapping[EnvManager, Builder] | None = None,
        progress: ProgressFactory = terminal_progress,
    ) -> None:
        self.layout = CacheLayout(root.expanduser().absolute())
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._builders = dict(default_builders() if builders is None else builders)
        self._progress = progress

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        builders: Mapping[EnvManager, Builder] | None = None,
        progress: ProgressFactory = terminal_progress,
    ) -> EnvCache:
        """The cache under ``settings.envs_dir``, with the settings' limits."""
        return cls(
            settings.envs_dir,
            max_entries=settings.env_cache_max_entries,
            max_bytes=settings.env_cache_max_bytes,
            builders=builders,
            progress=progress,
        )

    @property
    def root(self) -> Path:
        """The cache's folder."""
        return self.layout.root

    def key(self, spec: EnvSpec) -> str:
        """The cache key ``spec`` builds under."""
        return env_key(spec)

    def acquire(
        self,
        spec: EnvSpec,
        *,
        clone_to: Path | None = None,
        progress: BuildProgress | None = None,
        workspace: Path | None = None,
    ) -> EnvLease:
        """The environment ``spec`` describes, built if the cache lacks it, held in use.

        With ``clone_to`` (a folder that must not exist) the task gets a hard-link clone
        of its own there, and the lease holds nothing. A spec that installs the task's
        repository from a path (``-e .``) needs both ``clone_to`` and ``workspace`` (the
        checked-out repository): the entry is built without it, and the repository is
        installed into the clone alone. ``progress`` receives the build's stages and
        installer output (default: the cache's, a terminal display). Raises
        EnvBuildError when the environment cannot be built.
        """
        checked = check_spec(spec)
        if checked.local and (clone_to is None or workspace is None):
            raise EnvBuildError(
                EnvFailure.REQUIREMENT,
                f"requirement {checked.local[0].line!r} installs the task's repository: "
                "it needs the task's workspace and an env of the task's own (clone_to)",
                requirement=checked.local[0].line,
            )
        key = self.key(spec)
        self.layout.prepare()
        with self._key_lock(key, progress):
            built = self._ensure(spec, key, progress)
            use = UseLock.try_acquire(self.layout.use_file(key), exclusive=False)
            assert use is not None, "only an evicter holding the build lock locks exclusively"
        if built is not None:
            self.evict(keep=(key,))
        entry = self.layout.entry(key)
        env = ReadyEnv(
            key=key,
            path=entry,
            python=env_python(entry),
            hit=built is None,
            build_seconds=built if built is not None else 0.0,
            manager=spec.manager.value,
        )
        if clone_to is None:
            return EnvLease(env, use)
        try:
            hardlink_clone(entry, clone_to)
        finally:
            use.release()
        clone = replace(env, path=clone_to, python=env_python(clone_to), cloned=True)
        if checked.local:
            assert workspace is not None
            self._install_local(checked, clone, workspace, progress)
            clone = replace(clone, local=tuple(r.line for r in checked.local))
        return EnvLease(clone, None)

    def ensure(self, spec: EnvSpec, *, progress: BuildProgress | None = None) -> ReadyEnv:
        """The environment ``spec`` describes, built if missing, without holding it."""
        lease = self.acquire(spec, progress=progress)
        lease.release()
        return lease.env

    def entries(self) -> list[CacheEntry]:
        """The complete entries, least recently used first."""
        return self.layout.entries()

    def evict(self, *, keep: tuple[str, ...] = ()) -> list[str]:
        """Remove least recently used entries past the limits; return their keys.

        Entries in use, being built, and those in ``keep`` stay.
        """
        removed = evict(self.layout, self.max_entries, self.max_bytes, keep=keep)
        remove_stale_builds(self.layout)
        return removed

    def _install_local(
        self, checked: CheckedSpec, clone: ReadyEnv, workspace: Path, progress: BuildProgress | None
    ) -> None:
        """Install the repository into ``clone``; a failed install removes the clone."""
        try:
            if progress is not None:
                self._install_into(checked, clone, workspace, progress)
            else:
                with self._progress(clone.key) as shown:
                    self._install_into(checked, clone, workspace, shown)
        except BaseException:
            shutil.rmtree(clone.path, ignore_errors=True)
            raise

    @staticmethod
    def _install_into(
        checked: CheckedSpec, clone: ReadyEnv, workspace: Path, progress: BuildProgress
    ) -> None:
        install_local(
            clone.python,
            checked.local,
            workspace,
            manager=checked.spec.manager,
            index_urls=checked.index_urls,
            progress=progress,
        )

    def evict_unused_for(self, seconds: float, *, dry_run: bool = False) -> list[CacheEntry]:
        """Remove entries no one used for ``seconds`` (in use or being built: they stay)."""
        return evict_unused_for(self.layout, seconds, dry_run=dry_run)

    def _ensure(self, spec: EnvSpec, key: str, progress: BuildProgress | None) -> float | None:
        """Under the key's lock: None when the entry is complete, else build it (seconds)."""
        if self.layout.record(key) is not None:
            return None
        checked = check_spec(spec)
        builder = self._builders.get(spec.manager)
        if builder is None:
            raise EnvBuildError(EnvFailure.TOOL, f"no builder for manager {spec.manager.value}")
        remove_stale_builds(self.layout, key=key)
        entry = self.layout.entry(key)
        if entry.exists():  # an unfinished in-place build
            self.layout.discard(entry)
        started = time.monotonic()
        target = entry if not builder.relocatable else self._tmp_path(key)
        try:
            if progress is not None:
                builder.build(checked, target, progress)
            else:
                with self._progress(key) as shown:
                    builder.build(checked, target, shown)
            seconds = time.monotonic() - started
            self.layout.write_record(target, key, seconds)
            if target != entry:
                os.rename(target, entry)
        except OSError as exc:
            self.layout.discard(target)
            raise EnvBuildError(
                EnvFailure.SYSTEM, f"building {key} under {self.root} failed: {exc}"
            ) from exc
        except BaseException:
            self.layout.discard(target)
            raise
        return seconds

    @contextmanager
    def _key_lock(self, key: str, progress: BuildProgress | None) -> Iterator[None]:
        """Hold ``key``'s build lock; say so when another process holds it first."""
        lock = FileLock(self.layout.build_lock(key))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress is not None:
                progress.stage(f"waiting: another process is building {key}")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _tmp_path(self, key: str) -> Path:
        return self.layout.tmp / f"{key}.{os.getpid()}.{secrets.token_hex(4)}"
