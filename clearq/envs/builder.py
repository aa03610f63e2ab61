"""The one interface every environment builder has, and the registry of the real ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from clearq.envs.progress import BuildProgress
from clearq.envs.spec import CheckedSpec
from clearq.models import EnvManager

__all__ = ["Builder", "default_builders", "env_python"]


class Builder(Protocol):
    """Builds the environment a checked spec describes into a new folder."""

    @property
    def relocatable(self) -> bool:
        """True when the built folder still works after a rename (so it can be built aside)."""

    def build(self, spec: CheckedSpec, dest: Path, progress: BuildProgress) -> None:
        """Create ``dest`` (absent before) holding the environment, ``dest/bin/python`` in it.

        Raises EnvBuildError when the environment cannot be built.
        """


def env_python(env: Path) -> Path:
    """The interpreter of the environment in ``env``."""
    return env / "bin" / "python"


def default_builders() -> Mapping[EnvManager, Builder]:
    """The real builder for each manager."""
    from clearq.envs.conda import CondaBuilder
    from clearq.envs.pip import PipBuilder
    from clearq.envs.poetry import PoetryBuilder
    from clearq.envs.uv import UvBuilder

    return {
        EnvManager.UV: UvBuilder(),
        EnvManager.PIP: PipBuilder(),
        EnvManager.POETRY: PoetryBuilder(),
        EnvManager.CONDA: CondaBuilder(),
    }
