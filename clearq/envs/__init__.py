"""Environment builders and their cache; pure: an EnvSpec in, an interpreter out.

::

    from clearq.envs import EnvCache

    cache = EnvCache.from_settings(settings)          # <CLEARQ_HOME>/envs
    with cache.acquire(task.env) as env:              # built once, then reused in place
        run([str(env.python), "train.py"])            # env.key, env.hit, env.build_seconds

Builders (uv, pip, poetry, conda) share one interface, ``Builder``; a failed build
raises ``EnvBuildError`` whose ``failure`` says why and ``infra`` whether a retry may
help. Docker mode lives beside them (``clearq.envs.docker``): ``DockerRunner`` runs a
task's env and process in a container on a ``ContainerEngine`` (``connect_engine()``
is the Docker daemon, through the ``docker`` SDK, imported only then).

The names below are imported on first use, so that a light submodule (``layout``,
``spec``) does not load every builder, poetry's and Docker's modules with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clearq.envs.builder import Builder, default_builders, env_python
    from clearq.envs.cache import EnvCache, EnvLease, ReadyEnv
    from clearq.envs.conda import CondaBuilder
    from clearq.envs.docker import (
        DockerConfig,
        DockerRunner,
        DockerTask,
        connect_engine,
        database_mounts,
        describe_exit,
    )
    from clearq.envs.docker_run import DockerRun
    from clearq.envs.docker_spec import ContainerEngine, ContainerHandle, ContainerSpec, Mount
    from clearq.envs.layout import CacheEntry
    from clearq.envs.pip import PipBuilder
    from clearq.envs.poetry import PoetryBuilder
    from clearq.envs.progress import BuildProgress, NullProgress, RichProgress, terminal_progress
    from clearq.envs.spec import CheckedSpec, canonical_requirement, check_spec, env_key
    from clearq.envs.uv import UvBuilder
    from clearq.errors import (
        ContainerError,
        ContainerInterrupted,
        ContainerStepFailed,
        DockerArgsRefused,
        EngineUnavailable,
        EnvBuildError,
        EnvFailure,
        ImageNotFound,
    )

_HOMES = {
    "BuildProgress": "clearq.envs.progress",
    "Builder": "clearq.envs.builder",
    "CacheEntry": "clearq.envs.layout",
    "CheckedSpec": "clearq.envs.spec",
    "CondaBuilder": "clearq.envs.conda",
    "ContainerEngine": "clearq.envs.docker_spec",
    "ContainerError": "clearq.errors",
    "ContainerHandle": "clearq.envs.docker_spec",
    "ContainerInterrupted": "clearq.errors",
    "ContainerSpec": "clearq.envs.docker_spec",
    "ContainerStepFailed": "clearq.errors",
    "DockerArgsRefused": "clearq.errors",
    "DockerConfig": "clearq.envs.docker",
    "DockerRun": "clearq.envs.docker_run",
    "DockerRunner": "clearq.envs.docker",
    "DockerTask": "clearq.envs.docker",
    "EngineUnavailable": "clearq.errors",
    "EnvBuildError": "clearq.errors",
    "EnvCache": "clearq.envs.cache",
    "EnvFailure": "clearq.errors",
    "EnvLease": "clearq.envs.cache",
    "ImageNotFound": "clearq.errors",
    "Mount": "clearq.envs.docker_spec",
    "NullProgress": "clearq.envs.progress",
    "PipBuilder": "clearq.envs.pip",
    "PoetryBuilder": "clearq.envs.poetry",
    "ReadyEnv": "clearq.envs.cache",
    "RichProgress": "clearq.envs.progress",
    "UvBuilder": "clearq.envs.uv",
    "canonical_requirement": "clearq.envs.spec",
    "check_spec": "clearq.envs.spec",
    "connect_engine": "clearq.envs.docker",
    "database_mounts": "clearq.envs.docker",
    "default_builders": "clearq.envs.builder",
    "describe_exit": "clearq.envs.docker",
    "env_key": "clearq.envs.spec",
    "env_python": "clearq.envs.builder",
    "terminal_progress": "clearq.envs.progress",
}

__all__ = [
    "BuildProgress",
    "Builder",
    "CacheEntry",
    "CheckedSpec",
    "CondaBuilder",
    "ContainerEngine",
    "ContainerError",
    "ContainerHandle",
    "ContainerInterrupted",
    "ContainerSpec",
    "ContainerStepFailed",
    "DockerArgsRefused",
    "DockerConfig",
    "DockerRun",
    "DockerRunner",
    "DockerTask",
    "EngineUnavailable",
    "EnvBuildError",
    "EnvCache",
    "EnvFailure",
    "EnvLease",
    "ImageNotFound",
    "Mount",
    "NullProgress",
    "PipBuilder",
    "PoetryBuilder",
    "ReadyEnv",
    "RichProgress",
    "UvBuilder",
    "canonical_requirement",
    "check_spec",
    "connect_engine",
    "database_mounts",
    "default_builders",
    "describe_exit",
    "env_key",
    "env_python",
    "terminal_progress",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'clearq.envs' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
