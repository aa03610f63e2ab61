"""An EnvSpec checked, put in canonical form, and hashed into a cache key.

Two specs that build the same environment get the same key: requirement lines are
compared as requirements (order, whitespace, duplicates and the spelling of names do
not count), lock and project files by their text with line endings and trailing blanks
normalised. Index URLs keep their order: it is the order the installer searches them.
The machine's platform is part of the key, so a cache folder shared between machines of
different kinds never hands one the other's binaries.

Nothing from a spec ever reaches a shell, and nothing from it may reach an installer as
an option: a requirement line starting with ``-`` (``--index-url``, ``-r``, ``-e`` of
anything but the repository) is refused, and so is a line that is not a PEP 508
requirement. A line naming clearq itself is dropped: the agent provides clearq, never a
package index.

Install order: ``install_first`` lines are a step of their own before the requirements,
``no_build_isolation`` lines one after them, built against the env as it stands. The
steps are part of the key (a line moved from one step to another builds another env),
and only when a spec has them, so keys made before they existed still hold.

Lines that install the task's own repository from a path (``-e .``, ``.``, ``./sub``;
``clearq.local_requirements``) are split off into ``CheckedSpec.local`` and are no part
of the key. That is sound because the cached entry never holds them: the agent builds
(or reuses) the entry from the rest of the spec, takes a hard-link clone of it for the
task alone and installs the repository into that clone from the task's workspace, on
every run (``clearq.envs.local``). An env that holds the repository is never shared,
so a task can never get another commit's code from the cache; the price is an install
of the repository per run (an editable one is a few files) and, where the repository's
own dependencies are not in the spec's other lines, their install per run too.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from clearq.errors import EnvBuildError, EnvFailure, InvalidInput
from clearq.local_requirements import LocalRequirement, local_requirement
from clearq.models import EnvManager, EnvSpec

__all__ = [
    "AGENT_PROVIDED",
    "KEY_VERSION",
    "CheckedSpec",
    "canonical_requirement",
    "check_spec",
    "default_python",
    "env_key",
]

AGENT_PROVIDED = "clearq"
"""Never installed from a package index (the name there may be someone else's): the
agent gives each task its own clearq, so a requirement line naming it is dropped."""
KEY_VERSION = 1
"""Bumped when the layout of a built environment changes, so old entries are not reused."""

_DIGEST_CHARS = 20
_STEPPED = frozenset({EnvManager.UV, EnvManager.PIP})
_INDEX_SCHEMES = ("https://", "http://", "file://")
_PYTHON_REQUEST = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._+-]*")


@dataclass(frozen=True)
class CheckedSpec:
    """A spec whose every value was checked; ``python`` is the version to build with."""

    spec: EnvSpec
    python: str
    requirements: tuple[str, ...]
    """The spec's requirement lines, stripped, without blank lines, clearq itself and
    the local path lines."""
    index_urls: tuple[str, ...]
    local: tuple[LocalRequirement, ...] = ()
    """Folders of the task's repository to install from its workspace, in order."""
    first: tuple[str, ...] = ()
    """``EnvSpec.install_first``, checked: installed before ``requirements``."""
    no_build_isolation: tuple[str, ...] = ()
    """``EnvSpec.no_build_isolation``, checked: installed last, without build isolation."""

    @property
    def steps(self) -> tuple[tuple[tuple[str, ...], bool], ...]:
        """The install steps in order, each (lines, without build isolation), empty ones out."""
        steps = ((self.first, False), (self.requirements, False), (self.no_build_isolation, True))
        return tuple((lines, unisolated) for lines, unisolated in steps if lines)


def default_python() -> str:
    """The running interpreter's ``major.minor``: what a spec without a version gets."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def check_spec(spec: EnvSpec) -> CheckedSpec:
    """``spec`` checked for use by an installer.

    Raises EnvBuildError (failure ``requirement``) for an option among the requirement
    lines, a line that is not a requirement, an index URL that is not a URL, or a Python
    version that is not a version request.
    """
    if spec.torch_backend is not None:
        check_torch_backend(spec.torch_backend)
        if spec.manager is not EnvManager.UV:
            raise EnvBuildError(
                EnvFailure.REQUIREMENT,
                f"a torch backend ({spec.torch_backend}) is uv's choice of PyTorch builds: "
                f"the {spec.manager.value} manager does not take one; use the uv manager",
            )
    python = (spec.python or default_python()).strip()
    if not _PYTHON_REQUEST.fullmatch(python):
        raise EnvBuildError(
            EnvFailure.PYTHON,
            f"python {spec.python!r} is not a Python version request; give one like '3.11'",
        )
    stripped = [line for line in (raw.strip() for raw in spec.requirements) if line]
    local = tuple(found for line in stripped if (found := _local(line)) is not None)
    if local and spec.manager is EnvManager.CONDA:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            f"requirement {local[0].line!r} installs the repository, which a conda env "
            "does not do here: use the uv or pip manager, or list it in environment.yml",
            requirement=local[0].line,
        )
    paths = {found.line for found in local}
    lines = tuple(
        line
        for line in stripped
        if line not in paths and canonicalize_name(_parse(line).name) != AGENT_PROVIDED
    )
    urls = tuple(url.strip() for url in spec.index_urls if url.strip())
    for url in urls:
        if not url.startswith(_INDEX_SCHEMES):
            raise EnvBuildError(
                EnvFailure.REQUIREMENT,
                f"index URL {url!r} is not a URL; give one such as https://pypi.org/simple",
            )
    first, no_isolation = _step(spec.install_first), _step(spec.no_build_isolation)
    if (first or no_isolation) and spec.manager not in _STEPPED:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            f"install_first and no_build_isolation are installed by the uv and pip managers, "
            f"not {spec.manager.value}: use one of those, or list the packages in its file",
        )
    return CheckedSpec(
        spec=spec,
        python=python,
        requirements=lines,
        index_urls=urls,
        local=local,
        first=first,
        no_build_isolation=no_isolation,
    )


def _step(raw: tuple[str, ...]) -> tuple[str, ...]:
    """One install step's lines: stripped, checked as requirements, without clearq."""
    lines = (line for line in (item.strip() for item in raw) if line)
    return tuple(line for line in lines if canonicalize_name(_parse(line).name) != AGENT_PROVIDED)


def canonical_requirement(line: str) -> str:
    """One requirement line in canonical form: ``Six >= 1.0`` -> ``six>=1.0``.

    Raises EnvBuildError (failure ``requirement``) for an option or a malformed line.
    """
    requirement = _parse(line.strip())
    text: str = canonicalize_name(requirement.name)
    if requirement.extras:
        text += "[" + ",".join(sorted(canonicalize_name(e) for e in requirement.extras)) + "]"
    if requirement.url:
        text += f" @ {requirement.url}"
    else:
        text += ",".join(sorted(str(s) for s in requirement.specifier))
    if requirement.marker is not None:
        text += f"; {requirement.marker}"
    return text


def env_key(spec: EnvSpec) -> str:
    """The cache key of ``spec``: ``<manager>-py<version>-<digest>``, safe as a folder name."""
    checked = check_spec(spec)
    canonical = {
        "v": KEY_VERSION,
        "platform": f"{sys.platform}-{platform.machine()}",
        "manager": spec.manager.value,
        "python": checked.python,
        "requirements": sorted({canonical_requirement(line) for line in checked.requirements}),
        "lock_kind": (spec.lock_kind or "").strip().lower(),
        "lock_file": _normalise_text(spec.lock_file),
        "project_file": _normalise_text(spec.project_file),
        "index_urls": [url.rstrip("/") for url in checked.index_urls],
    }
    if spec.torch_backend is not None:  # only when given, as below
        canonical["torch_backend"] = check_torch_backend(spec.torch_backend)
    # Only when given: every key made before these steps existed stays as it was.
    for name, lines in (("first", checked.first), ("no_isolation", checked.no_build_isolation)):
        if lines:
            canonical[name] = sorted({canonical_requirement(line) for line in lines})
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(blob).hexdigest()[:_DIGEST_CHARS]
    python = re.sub(r"[^A-Za-z0-9.]+", "_", checked.python)[:16]
    return f"{spec.manager.value}-py{python}-{digest}"


def _local(line: str) -> LocalRequirement | None:
    try:
        return local_requirement(line)
    except InvalidInput as exc:
        raise EnvBuildError(EnvFailure.REQUIREMENT, str(exc), requirement=line) from None


def _parse(line: str) -> Requirement:
    if line.startswith("-"):
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            f"requirement line {line!r} is an installer option; clearq refuses options in "
            "requirements (they could point the installer anywhere). Put index URLs in "
            "EnvSpec.index_urls.",
            requirement=line,
        )
    try:
        return Requirement(line)
    except InvalidRequirement as exc:
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            f"requirement line {line!r} is not a requirement (PEP 508): {exc}",
            requirement=line,
        ) from None


def _normalise_text(text: str | None) -> str:
    if text is None:
        return ""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


_TORCH_BACKEND = re.compile(r"auto|cpu|cu\d{3}|rocm\d+(\.\d+)*|xpu")


def check_torch_backend(value: str) -> str:
    """A torch backend as uv's ``--torch-backend`` takes it (``auto``, ``cpu``, ``cu126``,
    ``rocm6.3``, ``xpu``), lower-cased; EnvBuildError for anything else (it becomes an
    argument of the installer, so nothing else gets through)."""
    backend = value.strip().lower()
    if not _TORCH_BACKEND.fullmatch(backend):
        raise EnvBuildError(
            EnvFailure.REQUIREMENT,
            f"torch backend {value!r} is not one uv knows: give auto (the CUDA build for "
            "the agent's driver), cpu, cuNNN (cu126) or rocmX.Y",
        )
    return backend
