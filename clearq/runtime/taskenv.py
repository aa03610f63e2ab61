"""What a task's process gets from the agent: its interpreter, clearq, its variables.

The environment itself comes from an :class:`EnvProvider` (``clearq.envs`` on the host,
or Docker mode). Its requirements are the task's own plus the SDK's dependencies pinned
to the agent's versions; clearq itself is never installed from a package index (the
name there may belong to someone else): the task imports the agent's own copy through a
folder on ``PYTHONPATH`` that holds nothing but a link to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Protocol

import clearq
from clearq.models import EnvSpec

SDK_DEPENDENCIES = ("sqlalchemy", "pydantic", "psycopg", "psycopg-binary", "packaging", "psutil")
"""What the SDK imports inside a task (Task.init's resource monitor imports psutil; the
rest of the Task API needs the others)."""

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class PreparedEnv:
    """An interpreter ready for a task, and how it was had."""

    python: Path
    key: str
    hit: bool
    build_seconds: float
    manager: str
    local: tuple[str, ...] = ()
    """Requirement lines installed from the task's workspace into an env of its own."""

    def facts(self) -> dict[str, object]:
        """What the task's record keeps about its environment."""
        facts: dict[str, object] = {
            "key": self.key,
            "hit": self.hit,
            "build_seconds": round(self.build_seconds, 3),
            "manager": self.manager,
            "python": str(self.python),
        }
        if self.local:
            facts["installed_from_workspace"] = list(self.local)
        return facts


class EnvProvider(Protocol):
    """Gives a task an environment for its EnvSpec, held while the task uses it."""

    def prepare(
        self, spec: EnvSpec, *, log: Callable[[str], None], workspace: Path | None = None
    ) -> AbstractContextManager[PreparedEnv]:
        """The env for ``spec``; ``workspace`` is the task's checked-out repository, which a
        spec's ``-e .`` lines install from."""
        ...


def with_sdk_requirements(spec: EnvSpec) -> EnvSpec:
    """``spec`` plus the SDK's dependencies at the agent's versions, unless the task names them."""
    lines = (*spec.requirements, *spec.install_first, *spec.no_build_isolation)
    named = {_canonical(m.group(1)) for line in lines if (m := _NAME.match(line))}
    added = []
    for name in SDK_DEPENDENCIES:
        if _canonical(name) in named:
            continue
        try:
            added.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue  # not installed beside the agent (psycopg-binary is optional)
    return spec.model_copy(update={"requirements": (*spec.requirements, *added)})


def clearq_path_entry(home: Path) -> Path:
    """A folder holding only a link to this agent's clearq package, for ``PYTHONPATH``."""
    package = Path(clearq.__file__).resolve().parent
    folder = home / "agent-lib" / _slug(str(package))
    link = folder / "clearq"
    if link.is_symlink() and link.resolve() == package:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".clearq-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(package, target_is_directory=True)
    temporary.replace(link)  # atomic: another agent may be doing the same
    return folder


PASSED_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "TZ",
        "TMPDIR",
        "LANG",
        "LANGUAGE",
        "LD_LIBRARY_PATH",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "PIP_CERT",
    }
)
"""The agent's own variables a task sees: its search path, home, locale, proxies and
certificate settings (with ``LC_*``, ``CUDA_*`` and ``NVIDIA_*``). Nothing else of the
agent's environment (credentials, tokens, the database's URL) reaches a task."""
PASSED_PREFIXES = ("LC_", "CUDA_", "NVIDIA_")


def allowed_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The part of ``base`` (the agent's environment) that a task may see."""
    return {k: v for k, v in base.items() if k in PASSED_VARIABLES or k.startswith(PASSED_PREFIXES)}


def task_environment(
    base: Mapping[str, str],
    *,
    python: Path | None,
    clearq_path: Path | None,
    settings: Mapping[str, str],
    gpus: Sequence[str] | None,
    own: Mapping[str, str] | None = None,
    forced: Mapping[str, str] | None = None,
    import_paths: Sequence[Path] = (),
) -> dict[str, str]:
    """A task process's variables, later layers winning: the allow-listed part of the
    agent's (``base``), the task's ``own`` environment, what the operator ``forced``,
    then the agent's (the interpreter's folder first on PATH, the GPUs, ``settings``).
    ``python`` None: the setup script, which gets no interpreter.

    ``PYTHONPATH`` is extended, never replaced: clearq's folder, then ``import_paths``
    (the repository's root and the working folder, as importable as in a checkout),
    then whatever the task or the operator set it to (a ``src`` layout's ``src``)."""
    env = allowed_environment(base)
    env.update({k: v for k, v in (own or {}).items() if not k.startswith("CLEARQ_")})
    env.update(forced or {})
    if python is not None:
        env["PATH"] = os.pathsep.join([str(python.parent), env.get("PATH", os.defpath)])
    env_paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    added = [str(clearq_path)] if clearq_path is not None else []
    paths = list(dict.fromkeys([*added, *map(str, import_paths), *env_paths]))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"  # output reaches the log as it is printed
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    env.update(settings)
    return env


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _slug(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SystemInterpreter:
    """Runs every task with the agent's own interpreter, installing nothing.

    For images and machines prepared by hand (``clearq agent --skip-env``): the task's
    requirements must already be there.
    """

    @contextmanager
    def prepare(
        self, spec: EnvSpec, *, log: Callable[[str], None], workspace: Path | None = None
    ) -> Iterator[PreparedEnv]:
        """The agent's interpreter, as is (``workspace`` unused: nothing is installed)."""
        log(f"using the agent's own Python ({sys.executable}): nothing is installed")
        yield PreparedEnv(
            python=Path(sys.executable), key="system", hit=True, build_seconds=0.0, manager="none"
        )
