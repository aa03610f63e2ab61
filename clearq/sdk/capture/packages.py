"""Capture the Python packages a training script needs, so an agent can rebuild them.

``capture_packages(entry, repo_root=...)`` returns an ``EnvSpec`` and where its list
came from. In ``"imports"`` mode (the default) a project's own file wins
(``uv.lock`` with its ``pyproject.toml``, ``requirements.txt``, ``poetry.lock``,
``environment.yml``, PEP 621 ``pyproject.toml``, see ``packages_files``); without
one, the script and the local modules it reaches are scanned for imports
(``packages_scan``, never executed) and each outside import is pinned to the
installed distribution that provides it (``yaml`` -> ``PyYAML==6.0.2``).
``"freeze"`` mode pins every distribution installed, like ``pip freeze``, and is taken
as the user's explicit choice over any project file.

``add`` (``Task.add_requirements``) overrides lines of the same name; ``ignore``
(``Task.ignore_requirements``) removes names. clearq itself is never pinned: the agent
gives each task its own clearq. ``parse_requirements`` reads a list a user gives
(``Task.create(packages=...)``) under the same rules: no pip options, one PEP 508
requirement per line.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from clearq.enums import EnvManager
from clearq.errors import InvalidInput
from clearq.sdk.capture.packages_files import PackageList, PackageSource, find_project_packages
from clearq.sdk.capture.packages_installed import Installed
from clearq.sdk.capture.packages_requirements import (
    CLEARQ,
    check_requirements,
    merge_requirements,
    parse_requirements,
    sort_requirements,
    without_clearq,
)
from clearq.sdk.capture.packages_scan import ImportScan, scan_imports
from clearq.secrets import scrub_env_fields
from clearq.valueclass import replace, value_class

__all__ = [
    "FREEZE_EXCLUDED",
    "CaptureMode",
    "PackageCapture",
    "PackageSource",
    "capture_packages",
    "parse_requirements",
    "python_version",
]

CaptureMode = Literal["imports", "freeze"]
"""``imports``: project file, else an import scan; ``freeze``: everything installed."""

FREEZE_EXCLUDED = frozenset({CLEARQ, "pip", "setuptools", "wheel"})
"""Canonical names a freeze leaves out: the installer's own tools, and clearq."""

if TYPE_CHECKING:
    from clearq.models import EnvSpec

_INDEX_URL_SCHEMES = ("https://", "http://", "file://")


@value_class
class PackageCapture:
    """A captured environment, where its package list came from, and what was passed over."""

    fields: dict[str, Any]
    """The EnvSpec as stored (its JSON form): built without pydantic, for Task.init's speed."""
    source: PackageSource
    warnings: tuple[str, ...] = ()

    @property
    def env(self) -> EnvSpec:
        """The captured environment as a typed EnvSpec."""
        from clearq.models import EnvSpec

        return EnvSpec.model_validate(self.fields)


def capture_packages(
    entry: Path,
    *,
    repo_root: Path | None = None,
    mode: CaptureMode = "imports",
    add: Sequence[str] = (),
    ignore: Sequence[str] = (),
    index_urls: Sequence[str] = (),
    installed: Installed | None = None,
    first: Sequence[str] = (),
    no_build_isolation: Sequence[str] = (),
) -> PackageCapture:
    """Capture what the script ``entry`` needs to run again elsewhere.

    ``repo_root`` bounds the scan and is where project files are looked for (the
    entry's folder without one). ``installed`` defaults to the running interpreter's
    distributions. ``first`` and ``no_build_isolation`` are requirement lines for the
    env's install steps before and after the others (``EnvSpec.install_first``,
    ``EnvSpec.no_build_isolation``); a line of the same name leaves the main list.
    Raises InvalidInput for an entry outside ``repo_root``, a pip option
    or an unreadable requirement in any list, or an index URL that is not a URL.
    """
    entry, root = _locate(entry, repo_root)
    urls = _check_index_urls(index_urls)
    if mode == "freeze":
        found = _freeze(installed or Installed.from_environment())
    elif mode == "imports":
        found = _project_or_scan(entry, root, installed)
    else:
        raise InvalidInput(f"unknown package capture mode {mode!r}: use 'imports' or 'freeze'")
    steps = _Steps(
        first=sort_requirements(check_requirements(first, source="install_first")),
        no_build_isolation=sort_requirements(
            check_requirements(no_build_isolation, source="no_build_isolation")
        ),
    )
    return _finish(found, add=add, ignore=ignore, index_urls=urls, steps=steps)


@value_class
class _Steps:
    """The install steps before and after the main list."""

    first: tuple[str, ...] = ()
    no_build_isolation: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """Every line of both steps (their names leave the main list)."""
        return [*self.first, *self.no_build_isolation]


def _locate(entry: Path, repo_root: Path | None) -> tuple[Path, Path]:
    entry = entry.resolve()
    if not entry.is_file():
        raise InvalidInput(f"entry point {entry} is not a file; give the script that runs")
    root = repo_root.resolve() if repo_root is not None else entry.parent
    if not entry.is_relative_to(root):
        raise InvalidInput(f"entry point {entry} is outside the repository {root}")
    return entry, root


def _check_index_urls(urls: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(url.strip() for url in urls if url.strip())
    for url in checked:
        if not url.startswith(_INDEX_URL_SCHEMES):
            raise InvalidInput(
                f"index URL {url!r} is not a URL; give one such as https://pypi.org/simple"
            )
    return checked


def _project_or_scan(entry: Path, root: Path, installed: Installed | None) -> PackageList:
    project, warnings = find_project_packages(root)
    if project is not None:
        return replace(project, warnings=warnings)
    scan = scan_imports(entry, root=root)
    wanted = {i.name for i in scan.imports if i.name != CLEARQ}
    scanned = _from_scan(scan, installed or Installed.providing(wanted))
    return replace(scanned, warnings=(*warnings, *scanned.warnings))


def _from_scan(scan: ImportScan, installed: Installed) -> PackageList:
    pins: list[str] = []
    warnings = list(scan.warnings)
    for imported in scan.imports:
        if imported.name == CLEARQ:
            continue
        dists = installed.for_import(imported.name, imported.modules)
        if not dists and not imported.optional:
            warnings.append(
                f"'{imported.name}' is imported but no installed distribution provides it; "
                "not pinned (name it in add_requirements if the task needs it)"
            )
        for dist in dists:
            if dist.local:
                warnings.append(_local_warning(dist.name))
            elif dist.key != CLEARQ:
                pins.append(dist.pin)
    return PackageList(PackageSource.IMPORTS, EnvManager.UV, tuple(pins), warnings=tuple(warnings))


def _freeze(installed: Installed) -> PackageList:
    pins: list[str] = []
    warnings: list[str] = []
    for key, dist in installed.dists.items():
        if key in FREEZE_EXCLUDED:
            continue
        if dist.local:
            warnings.append(_local_warning(dist.name))
        else:
            pins.append(dist.pin)
    return PackageList(PackageSource.FREEZE, EnvManager.UV, tuple(pins), warnings=tuple(warnings))


def _finish(
    found: PackageList,
    *,
    add: Sequence[str],
    ignore: Sequence[str],
    index_urls: tuple[str, ...],
    steps: _Steps,
) -> PackageCapture:
    warnings = list(found.warnings)
    if found.lock_file is not None:
        # A lock file is taken whole; additions are installed on top of it.
        lines = sort_requirements(check_requirements(add, source="add_requirements"))
        if ignore:
            warnings.append(
                f"ignore_requirements cannot remove packages from {found.lock_kind}; "
                f"edit the file itself to drop {', '.join(ignore)}"
            )
    else:
        lines = merge_requirements(found.requirements, add=add, ignore=[*ignore, *steps.names()])
    lines, dropped = without_clearq(lines)
    warnings.extend(
        f"{line!r} left out: the agent gives every task its own clearq" for line in dropped
    )
    env = {
        "manager": found.manager.value,
        "python": python_version(),
        "requirements": list(lines),
        "lock_file": found.lock_file,
        "lock_kind": found.lock_kind,
        "project_file": found.project_file,
        "index_urls": list(index_urls),
        "install_first": list(without_clearq(steps.first)[0]),
        "no_build_isolation": list(without_clearq(steps.no_build_isolation)[0]),
    }
    env, scrubbed = scrub_env_fields(env, "the captured packages")
    warnings.extend(scrubbed)
    return PackageCapture(fields=env, source=found.source, warnings=tuple(warnings))


def python_version() -> str:
    """The running interpreter's version as ``major.minor``."""
    major, minor, *_ = platform.python_version_tuple()
    return f"{major}.{minor}"


def _local_warning(name: str) -> str:
    return (
        f"'{name}' is installed from a local path, which an agent cannot install from an "
        "index; not pinned (put its code in the repository or publish it)"
    )
