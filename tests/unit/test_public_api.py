"""Each package's public face: ``__all__`` names exist and say what the package offers."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "clearq",
    "clearq.scheduler",
    "clearq.sdk",
    "clearq.runtime",
    "clearq.envs",
    "clearq.automation",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []
    assert len(set(module.__all__)) == len(module.__all__)


def test_the_user_facing_names() -> None:
    import clearq

    assert {"Task", "Logger"} <= set(clearq.__all__)
    assert clearq.Task is importlib.import_module("clearq.sdk.task").Task


def test_layers_do_not_import_upwards() -> None:
    """Dependencies point down only (DESIGN.md, Layers)."""
    import ast
    from pathlib import Path

    root = Path(importlib.import_module("clearq").__file__).parent  # type: ignore[arg-type]
    forbidden = {
        "scheduler": (
            "clearq.sdk",
            "clearq.runtime",
            "clearq.cli",
            "clearq.envs",
            "clearq.ui",
            "clearq.automation",
        ),
        "sdk": ("clearq.runtime", "clearq.cli"),
        "envs": ("clearq.scheduler", "clearq.sdk", "clearq.runtime", "clearq.cli"),
        "runtime": ("clearq.cli",),
        # Written on the SDK's public names: no scheduler, no SDK internals.
        "automation": (
            "clearq.runtime",
            "clearq.cli",
            "clearq.ui",
            "clearq.scheduler",
            "clearq.sdk.",
        ),
    }
    found = []
    for layer, banned in forbidden.items():
        for path in (root / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                found += [f"{path}: {n}" for n in names if n.startswith(banned)]
    assert found == []


def test_automation_uses_only_the_sdks_public_names() -> None:
    """Pipelines and HPO are written on what a user can import (DESIGN.md, Layers)."""
    import ast
    from pathlib import Path

    import clearq
    import clearq.sdk

    public = {"clearq": set(clearq.__all__), "clearq.sdk": set(clearq.sdk.__all__)}
    root = Path(clearq.__file__).parent / "automation"
    found = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in public:
                names = {a.name for a in node.names}
                found += [f"{path.name}: {node.module}.{n}" for n in names - public[node.module]]
    assert found == []


PRINTS_ON_PURPOSE = {
    "cli",  # the command decides what to show
    "sdk/logger.py",  # report_text prints to the console, as ClearML's does
    "envs/docker_bootstrap.py",  # a program of its own, run inside the container
}


def test_library_diagnostics_go_through_logging() -> None:
    """No print() in the library: the command (or the script) decides what to show."""
    import ast
    from pathlib import Path

    root = Path(importlib.import_module("clearq").__file__).parent  # type: ignore[arg-type]
    found = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root).as_posix()
        if any(relative == p or relative.startswith(p + "/") for p in PRINTS_ON_PURPOSE):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                found.append(f"{relative}:{node.lineno}")
    assert found == []
