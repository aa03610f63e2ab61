"""The distributions installed in the running interpreter, looked up by import name.

``importlib.metadata.packages_distributions()`` maps a top-level import name to the
distributions that provide it (``yaml`` -> ``PyYAML``, ``sklearn`` -> ``scikit-learn``).
Where several provide one name (namespace packages such as ``google``), the dotted names
the script imported pick the ones whose files hold them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from clearq.sdk.capture.packages_requirements import canonical_name
from clearq.valueclass import value_class

if TYPE_CHECKING:
    from importlib import metadata
# importlib.metadata (with email and zipfile) is imported where a lookup needs it: a
# script that imports nothing from outside its repository never pays for it.


@value_class
class Dist:
    """One installed distribution."""

    name: str
    version: str
    local: bool = False
    """Installed from a local folder or file (editable too): no index can rebuild it."""
    modules: frozenset[str] = frozenset()
    """Dotted names of its modules two levels deep, known only where it shares a
    top-level name with another distribution."""

    @property
    def key(self) -> str:
        """The canonical (PEP 503) name."""
        return canonical_name(self.name)

    @property
    def pin(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"


_NO_PROVIDERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})


@value_class
class Installed:
    """An environment's distributions, by canonical name and by import name."""

    dists: Mapping[str, Dist]
    """Canonical name -> distribution."""
    providers: Mapping[str, tuple[str, ...]] = _NO_PROVIDERS
    """Top-level import name -> canonical names of the distributions providing it."""

    @classmethod
    def from_environment(cls) -> Installed:
        """What the running interpreter has installed (first on ``sys.path`` wins)."""
        from importlib import metadata

        found: dict[str, metadata.Distribution] = {}
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name and canonical_name(name) not in found:
                found[canonical_name(name)] = dist
        providers = {
            top: tuple(dict.fromkeys(canonical_name(n) for n in names))
            for top, names in metadata.packages_distributions().items()
        }
        shared = {key for keys in providers.values() if len(keys) > 1 for key in keys}
        dists = {key: _dist(found[key], key in shared) for key in found}
        return cls(dists=dists, providers=providers)

    @classmethod
    def providing(cls, tops: Iterable[str]) -> Installed:
        """Only the distributions that provide the import names ``tops``.

        Reading every installed distribution's metadata costs about 0.1 s in a large
        environment, paid by every ``Task.init``; most imports are found directly by a
        distribution of the same name that lists them, and only the rest pay for the
        full ``packages_distributions()`` map.
        """
        providers: dict[str, tuple[str, ...]] = {}
        chosen: dict[str, metadata.Distribution] = {}
        missing = []
        for top in sorted(set(tops)):
            dist = _same_name(top)
            if dist is None:
                missing.append(top)
                continue
            providers[top] = (canonical_name(dist.metadata["Name"]),)
            chosen.setdefault(providers[top][0], dist)
        if missing:
            from importlib import metadata

            full = metadata.packages_distributions()
            for top in missing:
                names = tuple(dict.fromkeys(canonical_name(n) for n in full.get(top, ())))
                providers[top] = names
                for name in names:
                    if name not in chosen:
                        chosen[name] = metadata.distribution(name)
        shared = {key for keys in providers.values() if len(keys) > 1 for key in keys}
        dists = {key: _dist(dist, key in shared) for key, dist in chosen.items()}
        return cls(dists=dists, providers=providers)

    def for_import(self, top: str, modules: Iterable[str] = ()) -> tuple[Dist, ...]:
        """The distributions that provide import name ``top`` (empty when none does)."""
        candidates = [self.dists[key] for key in self.providers.get(top, ()) if key in self.dists]
        if len(candidates) < 2:
            return tuple(candidates)
        wanted = {_two_levels(name) for name in modules if "." in name}
        narrowed = [dist for dist in candidates if dist.modules & wanted]
        return tuple(narrowed or candidates)


def _same_name(top: str) -> metadata.Distribution | None:
    """The distribution named like import ``top``, if it really provides ``top``."""
    from importlib import metadata

    try:
        dist = metadata.distribution(top)
    except metadata.PackageNotFoundError:
        return None
    listed = dist.read_text("top_level.txt")
    if listed is not None:
        return dist if top in listed.split() else None
    files = dist.files or ()
    prefixes = (f"{top}/", f"{top}.")
    return dist if any(str(f).startswith(prefixes) for f in files) else None


def _dist(dist: metadata.Distribution, list_modules: bool) -> Dist:
    return Dist(
        name=dist.metadata["Name"],
        version=dist.version,
        local=_is_local(dist),
        modules=_modules(dist.files or ()) if list_modules else frozenset(),
    )


def _is_local(dist: metadata.Distribution) -> bool:
    """True for a distribution pip installed from a folder or a local file (PEP 610)."""
    text = dist.read_text("direct_url.json")
    if not text:
        return False
    try:
        origin = json.loads(text)
    except ValueError:
        return False
    url = origin.get("url", "") if isinstance(origin, dict) else ""
    return isinstance(url, str) and url.startswith("file:")


def _modules(files: Sequence[metadata.PackagePath]) -> frozenset[str]:
    names = set()
    for file in files:
        parts = file.parts
        if len(parts) >= 2 and file.suffix in (".py", ".pyi", ".so", ".pyd"):
            stem = parts[1] if len(parts) > 2 else parts[1].split(".")[0]
            names.add(f"{parts[0]}.{stem}")
    return frozenset(names)


def _two_levels(dotted: str) -> str:
    return ".".join(dotted.split(".")[:2])
