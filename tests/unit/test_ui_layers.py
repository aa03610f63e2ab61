"""The UI's place in the layers: it reads and acts through the scheduler, and only the
command line imports it (DESIGN.md, Layers)."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(importlib.import_module("clearq").__file__).parent  # type: ignore[arg-type]
UI_MAY_IMPORT = ("clearq.ui", "clearq.scheduler", "clearq.models", "clearq.config")
UI_MAY_IMPORT += ("clearq.errors", "clearq.enums")


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_the_ui_imports_only_the_scheduler_and_the_models() -> None:
    found = [
        f"{path}: {name}"
        for path in (ROOT / "ui").rglob("*.py")
        for name in _imports(path)
        if name.startswith("clearq") and not name.startswith(UI_MAY_IMPORT)
    ]
    assert found == []


def test_only_the_command_line_imports_the_ui() -> None:
    found = [
        f"{path}: {name}"
        for path in ROOT.rglob("*.py")
        if path.parent.name not in ("ui", "cli")
        for name in _imports(path)
        if name.startswith("clearq.ui")
    ]
    assert found == []


def test_the_ui_exports_what_it_names() -> None:
    ui = importlib.import_module("clearq.ui")
    assert [n for n in ui.__all__ if not hasattr(ui, n)] == []
