"""Environment builders and their cache; pure: an EnvSpec in, an interpreter out.

::

    from clearq.envs import EnvCache

    cache = EnvCache.from_settings(settings)          # <CLEARQ_HOME>/envs
    with cache.acquire(task.env) as env:              # built once, then reused in place
        run([str(env.python), "train.py"])            # env.key, env.hit, env.build_seconds

Builders (uv, pip, poetry, conda) share one interface, ``Builder``; a failed build
raises ``EnvBuildError`` whose ``failure`` says why and ``infra`` whether a retry may
help. Docker mode lives beside them (``clearq.envs.docker``).
"""

from clearq.envs.builder import Builder, default_builders, env_python
from clearq.envs.cache import EnvCache, EnvLease, ReadyEnv
from clearq.envs.conda import CondaBuilder
from clearq.envs.layout import CacheEntry
from clearq.envs.pip import PipBuilder
from clearq.envs.poetry import PoetryBuilder
from clearq.envs.progress import BuildProgress, NullProgress, RichProgress, terminal_progress
from clearq.envs.spec import CheckedSpec, canonical_requirement, check_spec, env_key
from clearq.envs.uv import UvBuilder
from clearq.errors import EnvBuildError, EnvFailure

__all__ = [
    "BuildProgress",
    "Builder",
    "CacheEntry",
    "CheckedSpec",
    "CondaBuilder",
    "EnvBuildError",
    "EnvCache",
    "EnvFailure",
    "EnvLease",
    "NullProgress",
    "PipBuilder",
    "PoetryBuilder",
    "ReadyEnv",
    "RichProgress",
    "UvBuilder",
    "canonical_requirement",
    "check_spec",
    "default_builders",
    "env_key",
    "env_python",
    "terminal_progress",
]
