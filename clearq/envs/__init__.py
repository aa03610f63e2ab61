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
"""

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
