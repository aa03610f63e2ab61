"""Package capture on real trees against the real environment, checked against pip."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from clearq.models import EnvSpec, TaskSpec
from clearq.sdk.capture.packages import FREEZE_EXCLUDED, PackageSource, capture_packages
from clearq.sdk.capture.packages_requirements import canonical_name, sort_requirements
from clearq.sdk.capture.packages_scan import scan_imports

REPO = Path(__file__).resolve().parents[2]


def pin(dist: str) -> str:
    """``dist==<installed version>`` under the distribution's own spelling."""
    meta = importlib.metadata.metadata(dist)
    return f"{meta['Name']}=={meta['Version']}"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A research repository as people lay them out: src package, scripts, run folders."""
    write(
        tmp_path,
        {
            "README.md": "# proj\n",
            "scripts/train.py": """
                import argparse
                import logging

                from proj.data import load
                from proj import model as m

                def main():
                    parser = argparse.ArgumentParser()
                    parser.add_argument("--lr", type=float, default=0.1)
                    load(parser.parse_args())

                if __name__ == "__main__":
                    main()
            """,
            "src/proj/__init__.py": '"""The project."""\n',
            "src/proj/data.py": """
                from .utils import seed

                def load(args):
                    import yaml
                    return yaml.safe_load("a: 1")
            """,
            "src/proj/utils.py": """
                try:
                    from sqlalchemy import create_engine
                except ImportError:
                    create_engine = None
                try:
                    import horovod_not_installed_xyz
                except ImportError:
                    horovod_not_installed_xyz = None

                def seed():
                    from . import model
            """,
            "src/proj/model.py": "from pydantic import BaseModel\nfrom .data import load\n",
            "src/proj/unused.py": "import torch_not_reached_xyz\n",
            "tests/test_model.py": "import pytest\nfrom proj import model\n",
            "wandb/run-1/files/config.yaml": "lr: 0.1\n",
            "configs/base.yaml": "lr: 0.1\n",
        },
    )
    return tmp_path


def test_research_repository_is_captured_from_its_imports(project: Path) -> None:
    pytest.importorskip("yaml")
    capture = capture_packages(project / "scripts" / "train.py", repo_root=project)
    assert capture.source is PackageSource.IMPORTS
    assert capture.env.requirements == (pin("pydantic"), pin("PyYAML"), pin("SQLAlchemy"))
    assert capture.warnings == ()
    scanned = scan_imports(project / "scripts" / "train.py", root=project).files
    assert (project / "src" / "proj" / "unused.py").resolve() not in scanned


def test_captured_env_survives_storage_as_json(project: Path) -> None:
    capture = capture_packages(
        project / "scripts" / "train.py",
        repo_root=project,
        add=["torch==2.3.1"],
        index_urls=["https://download.pytorch.org/whl/cu121"],
    )
    spec = TaskSpec(project="p", name="n", env=capture.env)
    again = TaskSpec.model_validate_json(spec.model_dump_json())
    assert again.env == capture.env
    assert EnvSpec.model_validate(capture.env.model_dump()) == capture.env


def test_this_repository_is_captured_from_its_pyproject() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    capture = capture_packages(REPO / "clearq" / "__init__.py", repo_root=REPO)
    assert capture.source is PackageSource.PYPROJECT
    assert capture.env.requirements == sort_requirements(declared)


def test_scan_of_this_package_treats_clearq_as_local() -> None:
    scan = scan_imports(REPO / "clearq" / "sdk" / "capture" / "packages.py", root=REPO)
    assert "clearq" not in {imp.name for imp in scan.imports}
    reached = {p.relative_to(REPO).as_posix() for p in scan.files}
    assert {
        "clearq/__init__.py",
        "clearq/models.py",
        "clearq/sdk/capture/packages_scan.py",
        "clearq/sdk/capture/packages_files.py",
    } <= reached


def test_freeze_agrees_with_pip_freeze(tmp_path: Path) -> None:
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed here")
    (tmp_path / "train.py").write_text("")
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = {
        canonical_name(line.split("==")[0]): line.split("==")[1]
        for line in frozen.splitlines()
        if "==" in line
    }
    capture = capture_packages(tmp_path / "train.py", mode="freeze")
    got = {canonical_name(n): v for n, v in (line.split("==") for line in capture.env.requirements)}
    want = {name: version for name, version in expected.items() if name not in FREEZE_EXCLUDED}
    assert got == want
    assert list(capture.env.requirements) == sorted(
        capture.env.requirements, key=lambda line: canonical_name(line.split("==")[0])
    )
