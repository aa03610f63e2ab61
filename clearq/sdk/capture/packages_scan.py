"""Which outside modules a script imports: a static scan, never an import.

The entry script is parsed with ``ast``, and so is every local module it reaches, as
far as the repository root: ``import a.b``, ``from a import b``, ``from . import c``,
packages (their ``__init__.py`` runs on import, so it is scanned too) and imports
inside functions and ``try`` blocks. Local modules are looked up where Python would
find them when the script runs: the entry's folder first, then the repository root and
its ``src/``. A name that is neither local nor in the standard library is an outside
import, reported by its top-level name with the dotted names seen under it.

An import inside a ``try`` body or under ``if TYPE_CHECKING:`` is *optional*: the
script runs without it, so it is kept only when it is installed.
"""

from __future__ import annotations

import ast
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from clearq.valueclass import value_class

_ALWAYS_BUILTIN = frozenset(sys.builtin_module_names)
_STDLIB = frozenset(sys.stdlib_module_names)


@value_class
class ExternalImport:
    """An outside top-level module the scanned code imports."""

    name: str
    """Top-level import name, such as ``yaml`` or ``sklearn``."""
    modules: frozenset[str]
    """Every dotted name imported under it (``sklearn.linear_model``, ...)."""
    optional: bool
    """True when every import of it is guarded (``try`` body, ``TYPE_CHECKING``)."""


@value_class
class ImportScan:
    """What a scan found."""

    imports: tuple[ExternalImport, ...]
    """Outside imports, sorted by name."""
    files: tuple[Path, ...]
    """The local files scanned, entry first."""
    warnings: tuple[str, ...] = ()
    """Files that could not be read or parsed."""


@value_class
class _Import:
    module: str
    level: int
    names: tuple[str, ...]
    optional: bool


class _Collector(ast.NodeVisitor):
    """Every import statement in a module, anywhere in it, with its guard."""

    def __init__(self) -> None:
        self.found: list[_Import] = []
        self._guarded = 0

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append(_Import(alias.name, 0, (), self._guarded > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        names = tuple(alias.name for alias in node.names if alias.name != "*")
        self.found.append(_Import(node.module or "", node.level, names, self._guarded > 0))

    def visit_Try(self, node: ast.Try) -> None:
        self._visit_guarded(node.body)
        for child in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(child)

    def visit_TryStar(self, node: ast.TryStar) -> None:
        self._visit_guarded(node.body)
        for child in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(child)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self._visit_guarded(node.body)
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def _visit_guarded(self, body: list[ast.stmt]) -> None:
        self._guarded += 1
        for child in body:
            self.visit(child)
        self._guarded -= 1


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


class _Found:
    """What the scan saw of one outside import: its dotted names, and whether every
    import of it is guarded (optional)."""

    def __init__(self) -> None:
        self.modules: set[str] = set()
        self.optional = True


class _Scanner:
    """Walks local modules breadth first from the entry, once per file."""

    def __init__(self, entry: Path, root: Path) -> None:
        self.entry = entry.resolve()
        self.root = root.resolve()
        self.search = _search_path(self.entry.parent, self.root)
        self.queue: deque[Path] = deque([self.entry])
        self.seen: set[Path] = {self.entry}
        self.files: list[Path] = []
        self.external: dict[str, _Found] = {}
        self.warnings: list[str] = []

    def run(self) -> ImportScan:
        while self.queue:
            path = self.queue.popleft()
            self.files.append(path)
            for imp in self._imports_of(path):
                self._follow(path, imp)
        imports = tuple(
            ExternalImport(name, frozenset(found.modules), found.optional)
            for name, found in sorted(self.external.items())
        )
        return ImportScan(imports, tuple(self.files), tuple(self.warnings))

    def _imports_of(self, path: Path) -> list[_Import]:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError) as exc:
            self.warnings.append(f"could not scan {path} for imports: {exc}")
            return []
        collector = _Collector()
        collector.visit(tree)
        return collector.found

    def _follow(self, path: Path, imp: _Import) -> None:
        if imp.level:
            base = _relative_base(path, imp.level, self.root)
            if base is not None:
                self._local(base, imp.module.split(".") if imp.module else [], imp.names)
            return
        top, *rest = imp.module.split(".")
        if top in _ALWAYS_BUILTIN or top.startswith("__"):
            return
        located = self._find_top(top)
        if located is not None:
            self._enqueue_package(located)
            self._local(located, rest, imp.names)
        elif top not in _STDLIB:
            self._external(top, imp)

    def _external(self, top: str, imp: _Import) -> None:
        found = self.external.setdefault(top, _Found())
        found.modules.add(imp.module)
        found.modules.update(f"{imp.module}.{name}" for name in imp.names)
        found.optional = found.optional and imp.optional

    def _local(self, base: Path, parts: list[str], names: tuple[str, ...]) -> None:
        """Scan what importing ``parts`` below ``base`` runs, and ``names`` as submodules."""
        here: Path | None = base
        for part in parts:
            here = self._descend(here, part) if here is not None else None
        if here is None or not here.is_dir():
            return
        for name in names:
            self._descend(here, name)

    def _descend(self, here: Path, part: str) -> Path | None:
        if not here.is_dir():
            return None
        package, module = here / part, here / f"{part}.py"
        if (package / "__init__.py").is_file():
            self._enqueue(package / "__init__.py")
            return package
        if module.is_file():
            self._enqueue(module)
            return module
        return package if package.is_dir() else None

    def _find_top(self, name: str) -> Path | None:
        # As Python's path finder does: a regular package or module anywhere on the
        # path wins over a namespace folder met earlier.
        for folder in self.search:
            package, module = folder / name, folder / f"{name}.py"
            if (package / "__init__.py").is_file():
                return package
            if module.is_file():
                return module
        for folder in self.search:
            if _is_namespace_package(folder / name):
                return folder / name
        return None

    def _enqueue_package(self, located: Path) -> None:
        self._enqueue(located / "__init__.py" if located.is_dir() else located)

    def _enqueue(self, path: Path) -> None:
        if not path.is_file():
            return
        resolved = path.resolve()
        if resolved in self.seen or not resolved.is_relative_to(self.root):
            return
        self.seen.add(resolved)
        self.queue.append(resolved)


def scan_imports(entry: Path, *, root: Path | None = None) -> ImportScan:
    """Scan ``entry`` and the local modules it reaches under ``root`` for outside imports.

    ``root`` (the repository root) defaults to the entry's folder; nothing outside it is
    read. The code is parsed, never imported or run.
    """
    return _Scanner(entry, root if root is not None else entry.parent).run()


def _search_path(entry_dir: Path, root: Path) -> tuple[Path, ...]:
    folders = [entry_dir, root, root / "src"]
    unique = dict.fromkeys(f for f in folders if f.is_dir() and f.is_relative_to(root))
    return tuple(unique)


def _relative_base(path: Path, level: int, root: Path) -> Path | None:
    base = path.parent
    for _ in range(level - 1):
        base = base.parent
    return base if base.is_relative_to(root) else None


def _is_namespace_package(folder: Path) -> bool:
    """A folder without ``__init__.py`` that holds Python code (not a data folder)."""
    return folder.is_dir() and any(_python_files(folder))


def _python_files(folder: Path) -> Iterator[Path]:
    yield from folder.glob("*.py")
    yield from folder.glob("*/__init__.py")
