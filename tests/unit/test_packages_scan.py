"""Package capture: the import scan, requirement lines, project files, add/ignore, freeze.

Scans read small trees written to ``tmp_path``; pins are checked against the versions
``importlib.metadata`` reports for this environment, never against fixed numbers.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import textwrap
from pathlib import Path

import pytest

from clearq.errors import InvalidInput
from clearq.models import EnvManager
from clearq.sdk.capture import packages
from clearq.sdk.capture.packages import PackageSource, capture_packages
from clearq.sdk.capture.packages_installed import Dist, Installed
from clearq.sdk.capture.packages_requirements import (
    canonical_name,
    merge_requirements,
    parse_requirements,
    requirement_name,
)
from clearq.sdk.capture.packages_scan import ImportScan, scan_imports


def write(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` (relative path -> source) under ``root``; return ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def outside(scan: ImportScan) -> dict[str, bool]:
    """Outside import name -> optional."""
    return {imp.name: imp.optional for imp in scan.imports}


def pin(dist: str) -> str:
    """``dist==<installed version>`` under the distribution's own spelling."""
    meta = importlib.metadata.metadata(dist)
    return f"{meta['Name']}=={meta['Version']}"


# --- the scan ------------------------------------------------------------------------


def test_package_imported_only_in_a_helper_is_found(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import helper\n", "helper.py": "import yaml\n"})
    scan = scan_imports(tmp_path / "train.py", root=tmp_path)
    assert outside(scan) == {"yaml": False}
    assert [p.name for p in scan.files] == ["train.py", "helper.py"]


def test_relative_imports_reach_sibling_and_parent_modules(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": "from pkg.sub import worker\n",
            "pkg/__init__.py": "from . import base\n",
            "pkg/base.py": "import sqlalchemy\n",
            "pkg/models.py": "import pydantic\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/worker.py": "from ..models import Thing\nfrom .. import extra\n",
            "pkg/extra/__init__.py": "import typing_extensions\n",
        },
    )
    scan = scan_imports(tmp_path / "train.py", root=tmp_path)
    assert outside(scan) == {"pydantic": False, "sqlalchemy": False, "typing_extensions": False}
    scanned = {p.relative_to(tmp_path.resolve()).as_posix() for p in scan.files}
    assert scanned == {
        "train.py",
        "pkg/__init__.py",
        "pkg/base.py",
        "pkg/models.py",
        "pkg/sub/__init__.py",
        "pkg/sub/worker.py",
        "pkg/extra/__init__.py",
    }


def test_from_package_import_submodule_scans_the_submodule(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": "from tools import data, VERSION\n",
            "tools/__init__.py": "VERSION = 1\n",
            "tools/data.py": "import yaml\n",
        },
    )
    assert outside(scan_imports(tmp_path / "train.py", root=tmp_path)) == {"yaml": False}


def test_import_cycle_scans_each_file_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": "import a\n",
            "a.py": "import b\nimport yaml\n",
            "b.py": "import a\nfrom train import main\nimport pydantic\n",
        },
    )
    scan = scan_imports(tmp_path / "train.py", root=tmp_path)
    assert sorted(p.name for p in scan.files) == ["a.py", "b.py", "train.py"]
    assert outside(scan) == {"pydantic": False, "yaml": False}


def test_standard_library_is_ignored(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": """
                from __future__ import annotations
                import os, sys, json
                import collections.abc
                from concurrent.futures import ThreadPoolExecutor
                import importlib.metadata as md
            """
        },
    )
    assert scan_imports(tmp_path / "train.py", root=tmp_path).imports == ()


def test_local_module_is_scanned_not_reported(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import my_helpers_xyz\n", "my_helpers_xyz.py": "x = 1\n"})
    scan = scan_imports(tmp_path / "train.py", root=tmp_path)
    assert scan.imports == ()
    assert [p.name for p in scan.files] == ["train.py", "my_helpers_xyz.py"]


def test_local_module_next_to_the_script_shadows_the_standard_library(tmp_path: Path) -> None:
    # Python puts the script's folder first on sys.path, so this queue.py is the one run.
    write(tmp_path, {"train.py": "import queue\n", "queue.py": "import yaml\n"})
    assert outside(scan_imports(tmp_path / "train.py", root=tmp_path)) == {"yaml": False}


def test_imports_in_functions_are_required_and_in_try_optional(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": """
                from typing import TYPE_CHECKING
                try:
                    import ujson_not_installed
                except ImportError:
                    ujson_not_installed = None
                if TYPE_CHECKING:
                    import pydantic
                def main():
                    import yaml
                    from sqlalchemy import orm
                try:
                    import typing_extensions
                except ImportError:
                    pass
                import typing_extensions
            """
        },
    )
    assert outside(scan_imports(tmp_path / "train.py", root=tmp_path)) == {
        "pydantic": True,
        "sqlalchemy": False,
        "typing_extensions": False,
        "ujson_not_installed": True,
        "yaml": False,
    }


def test_scan_stops_at_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(
        tmp_path,
        {
            "outside_helper.py": "import yaml\n",
            "repo/pkg/__init__.py": "",
            "repo/pkg/train.py": "from ... import outside_helper\nfrom . import near\n",
            "repo/pkg/near.py": "import pydantic\n",
        },
    )
    scan = scan_imports(repo / "pkg" / "train.py", root=repo)
    assert outside(scan) == {"pydantic": False}
    assert all(p.is_relative_to(repo.resolve()) for p in scan.files)


def test_src_layout_package_is_local(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "scripts/train.py": "import mylib.core\n",
            "src/mylib/__init__.py": "",
            "src/mylib/core.py": "import yaml\n",
        },
    )
    scan = scan_imports(tmp_path / "scripts" / "train.py", root=tmp_path)
    assert outside(scan) == {"yaml": False}


def test_folder_without_python_files_does_not_hide_a_package(tmp_path: Path) -> None:
    # wandb writes a wandb/ run folder next to the script; `import wandb` is still wandb.
    write(tmp_path, {"train.py": "import wandb\n", "wandb/run-1/output.log": "loss 1\n"})
    assert outside(scan_imports(tmp_path / "train.py", root=tmp_path)) == {"wandb": False}


def test_namespace_package_with_code_is_local(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import nsutil.io\n", "nsutil/io.py": "import yaml\n"})
    assert outside(scan_imports(tmp_path / "train.py", root=tmp_path)) == {"yaml": False}


def test_unparseable_module_is_a_warning(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import broken\nimport yaml\n", "broken.py": "def (:\n"})
    scan = scan_imports(tmp_path / "train.py", root=tmp_path)
    assert outside(scan) == {"yaml": False}
    assert len(scan.warnings) == 1
    assert "broken.py" in scan.warnings[0]


def test_scan_never_runs_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(
        tmp_path,
        {
            "train.py": f"open({str(marker)!r}, 'w').close()\nimport side\n",
            "side.py": f"open({str(marker)!r}, 'w').close()\nraise SystemExit(3)\n",
        },
    )
    scan_imports(tmp_path / "train.py", root=tmp_path)
    assert not marker.exists()


def test_dotted_names_are_recorded(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import sqlalchemy.orm\nfrom sqlalchemy.sql import expression\n"})
    (found,) = scan_imports(tmp_path / "train.py", root=tmp_path).imports
    assert found.modules == {"sqlalchemy.orm", "sqlalchemy.sql", "sqlalchemy.sql.expression"}


# --- import names to pinned distributions ----------------------------------------------


def test_imports_map_to_installed_distributions_with_their_versions(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    write(
        tmp_path,
        {
            "train.py": "import yaml\nimport helper\n",
            "helper.py": "from sqlalchemy import select\nimport pydantic, typing_extensions\n",
        },
    )
    capture = capture_packages(tmp_path / "train.py")
    assert capture.source is PackageSource.IMPORTS
    assert capture.env.manager is EnvManager.UV
    assert capture.env.requirements == (
        pin("pydantic"),
        pin("PyYAML"),
        pin("SQLAlchemy"),
        pin("typing_extensions"),
    )
    assert capture.warnings == ()


def test_import_of_nothing_installed_is_skipped_with_a_warning(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": """
                import pydantic
                import not_a_real_package_xyz
                try:
                    import optional_missing_xyz
                except ImportError:
                    pass
            """
        },
    )
    capture = capture_packages(tmp_path / "train.py")
    assert capture.env.requirements == (pin("pydantic"),)
    assert len(capture.warnings) == 1
    assert "not_a_real_package_xyz" in capture.warnings[0]


def test_clearq_itself_is_never_pinned(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import clearq\nfrom clearq import Task\nimport pydantic\n"})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.env.requirements == (pin("pydantic"),)
    assert capture.warnings == ()


def fake_installed() -> Installed:
    dists = [
        Dist("protobuf", "5.0", modules=frozenset({"google.protobuf"})),
        Dist("google-auth", "2.0", modules=frozenset({"google.auth", "google.oauth2"})),
        Dist("mylib", "0.1", local=True),
        Dist("Pillow", "10.0"),
    ]
    return Installed(
        dists={d.key: d for d in dists},
        providers={
            "google": ("protobuf", "google-auth"),
            "mylib": ("mylib",),
            "PIL": ("pillow",),
        },
    )


def test_namespace_import_picks_the_distribution_holding_the_module(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "from google.protobuf import message\nfrom PIL import Image\n"})
    capture = capture_packages(tmp_path / "train.py", installed=fake_installed())
    assert capture.env.requirements == ("Pillow==10.0", "protobuf==5.0")


def test_bare_namespace_import_keeps_every_provider(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import google\n"})
    capture = capture_packages(tmp_path / "train.py", installed=fake_installed())
    assert capture.env.requirements == ("google-auth==2.0", "protobuf==5.0")


def test_distribution_installed_from_a_local_path_is_not_pinned(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import mylib\n"})
    capture = capture_packages(tmp_path / "train.py", installed=fake_installed())
    assert capture.env.requirements == ()
    assert "mylib" in capture.warnings[0]
    assert "local path" in capture.warnings[0]


# --- project files ---------------------------------------------------------------------


def test_requirements_txt_wins_over_the_scan(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": "import yaml\n",
            "requirements.txt": """
                # training
                torch>=2.1  # the GPU build comes from index_urls
                numpy==1.26.4
                pandas \\
                  >=2

                Pillow ; sys_platform == "linux"
            """,
        },
    )
    capture = capture_packages(tmp_path / "train.py", repo_root=tmp_path)
    assert capture.source is PackageSource.REQUIREMENTS_TXT
    assert capture.env.manager is EnvManager.UV
    assert capture.env.requirements == (
        "numpy==1.26.4",
        "pandas   >=2",
        'Pillow ; sys_platform == "linux"',
        "torch>=2.1",
    )


def test_requirements_txt_is_looked_for_at_the_repository_root(tmp_path: Path) -> None:
    write(tmp_path, {"scripts/train.py": "import yaml\n", "requirements.txt": "numpy\n"})
    capture = capture_packages(tmp_path / "scripts" / "train.py", repo_root=tmp_path)
    assert capture.env.requirements == ("numpy",)


def test_empty_requirements_txt_is_passed_over(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import pydantic\n", "requirements.txt": "# nothing yet\n"})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.source is PackageSource.IMPORTS
    assert capture.env.requirements == (pin("pydantic"),)
    assert "lists no packages" in capture.warnings[0]


@pytest.mark.parametrize(
    "line",
    [
        "-e git+https://x/y.git",
        "--index-url https://evil.example/simple",
        "-r other.txt",
        "-f ./wheels",
        "  -e git+https://x/y.git",
    ],
)
def test_pip_option_in_requirements_txt_is_refused(tmp_path: Path, line: str) -> None:
    write(tmp_path, {"train.py": "", "requirements.txt": f"numpy\n{line}\n"})
    with pytest.raises(InvalidInput) as raised:
        capture_packages(tmp_path / "train.py")
    message = str(raised.value)
    assert line.strip() in message
    assert "line 2" in message
    assert "EnvSpec.index_urls" in message


def test_unparseable_requirement_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "", "requirements.txt": "numpy\nnot a requirement!!\n"})
    with pytest.raises(InvalidInput, match=r"line 2: cannot read 'not a requirement!!'"):
        capture_packages(tmp_path / "train.py")


def test_poetry_lock_is_taken_whole(tmp_path: Path) -> None:
    lock = '[[package]]\nname = "numpy"\nversion = "1.26.4"\n'
    write(
        tmp_path,
        {
            "train.py": "import yaml\n",
            "poetry.lock": lock,
            "pyproject.toml": '[tool.poetry]\nname = "x"\n',
        },
    )
    capture = capture_packages(tmp_path / "train.py", add=["wandb"], ignore=["numpy"])
    assert capture.source is PackageSource.POETRY_LOCK
    assert capture.env.manager is EnvManager.POETRY
    assert capture.env.lock_file == lock
    assert capture.env.lock_kind == "poetry.lock"
    assert capture.env.requirements == ("wandb",)
    assert "cannot remove" in capture.warnings[0]


def test_poetry_lock_without_pyproject_is_passed_over(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import pydantic\n", "poetry.lock": "[[package]]\n"})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.source is PackageSource.IMPORTS
    assert capture.env.lock_file is None
    assert "pyproject.toml" in capture.warnings[0]


def test_requirements_txt_comes_before_poetry_lock(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "train.py": "",
            "requirements.txt": "numpy\n",
            "poetry.lock": "",
            "pyproject.toml": "",
        },
    )
    assert capture_packages(tmp_path / "train.py").source is PackageSource.REQUIREMENTS_TXT


@pytest.mark.parametrize("name", ["environment.yml", "environment.yaml"])
def test_conda_environment_file(tmp_path: Path, name: str) -> None:
    text = "name: t\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip:\n    - x\n"
    write(tmp_path, {"train.py": "import yaml\n", name: text})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.source is PackageSource.ENVIRONMENT_YML
    assert capture.env.manager is EnvManager.CONDA
    assert capture.env.lock_file == text
    assert capture.env.lock_kind == "environment.yml"


def test_pip_option_in_conda_file_is_refused(tmp_path: Path) -> None:
    text = "dependencies:\n  - pip:\n    - --extra-index-url https://evil.example\n    - x\n"
    write(tmp_path, {"train.py": "", "environment.yml": text})
    with pytest.raises(InvalidInput, match=r"--extra-index-url.*EnvSpec\.index_urls"):
        capture_packages(tmp_path / "train.py")


def test_pyproject_dependencies(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["torch>=2", "Numpy==1.26.4"]\n'
    write(tmp_path, {"train.py": "import yaml\n", "pyproject.toml": pyproject})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.source is PackageSource.PYPROJECT
    assert capture.env.requirements == ("Numpy==1.26.4", "torch>=2")


def test_pyproject_without_dependencies_falls_back_to_the_scan(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import pydantic\n", "pyproject.toml": "[tool.ruff]\n"})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.source is PackageSource.IMPORTS
    assert capture.env.requirements == (pin("pydantic"),)


def test_pyproject_with_pip_option_is_refused(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "x"\ndependencies = ["--index-url=https://x"]\n'
    write(tmp_path, {"train.py": "", "pyproject.toml": pyproject})
    with pytest.raises(InvalidInput, match="pip option"):
        capture_packages(tmp_path / "train.py")


def test_invalid_pyproject_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "", "pyproject.toml": "[project\n"})
    with pytest.raises(InvalidInput, match="not valid TOML"):
        capture_packages(tmp_path / "train.py")


def test_clearq_in_a_requirements_file_is_dropped(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "", "requirements.txt": "ClearQ==0.1\nnumpy\n"})
    capture = capture_packages(tmp_path / "train.py")
    assert capture.env.requirements == ("numpy",)
    assert "ClearQ==0.1" in capture.warnings[0]


# --- add / ignore ----------------------------------------------------------------------


def test_add_overrides_a_scanned_pin_by_normalised_name(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "import sqlalchemy\nimport pydantic\nimport typing_extensions\n"})
    capture = capture_packages(
        tmp_path / "train.py",
        add=["sqlalchemy>=2", "wandb==0.17.0", "rich"],
        ignore=["Typing.Extensions"],
    )
    assert capture.env.requirements == (
        pin("pydantic"),
        "rich",
        "sqlalchemy>=2",
        "wandb==0.17.0",
    )


def test_add_and_ignore_apply_to_requirements_txt(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "", "requirements.txt": "numpy==1.0\ntorch\nPandas\n"})
    capture = capture_packages(tmp_path / "train.py", add=["numpy==2.0"], ignore=["pandas"])
    assert capture.env.requirements == ("numpy==2.0", "torch")


@pytest.mark.parametrize("line", ["-e git+https://x/y", "--index-url=https://x"])
def test_pip_option_in_add_is_refused(tmp_path: Path, line: str) -> None:
    write(tmp_path, {"train.py": ""})
    with pytest.raises(InvalidInput, match=r"add_requirements.*EnvSpec\.index_urls"):
        capture_packages(tmp_path / "train.py", add=[line])


def test_merge_requirements_sorts_case_insensitively_and_drops_duplicates() -> None:
    merged = merge_requirements(["zeta", "Alpha==1", "beta", "beta"], add=["Gamma"])
    assert merged == ("Alpha==1", "beta", "Gamma", "zeta")


# --- freeze ----------------------------------------------------------------------------


def test_freeze_pins_everything_installed_but_clearq_and_installer_tools(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": "", "requirements.txt": "numpy\n"})
    capture = capture_packages(tmp_path / "train.py", mode="freeze")
    assert capture.source is PackageSource.FREEZE
    assert pin("SQLAlchemy") in capture.env.requirements
    assert pin("pydantic") in capture.env.requirements
    names = {requirement_name(line) for line in capture.env.requirements}
    assert names.isdisjoint({"clearq", "pip", "setuptools", "wheel"})
    assert "numpy" not in capture.env.requirements


# --- the rest of the EnvSpec, and bad input ----------------------------------------------


def test_python_version_and_index_urls(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": ""})
    capture = capture_packages(
        tmp_path / "train.py", index_urls=["https://download.pytorch.org/whl/cu121", " "]
    )
    major, minor, _ = platform.python_version_tuple()
    assert capture.env.python == f"{major}.{minor}"
    assert capture.env.index_urls == ("https://download.pytorch.org/whl/cu121",)


def test_index_url_must_be_a_url(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": ""})
    with pytest.raises(InvalidInput, match="not a URL"):
        capture_packages(tmp_path / "train.py", index_urls=["--trusted-host x"])


def test_entry_outside_the_repository_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"elsewhere/train.py": "", "repo/README": ""})
    with pytest.raises(InvalidInput, match="outside the repository"):
        capture_packages(tmp_path / "elsewhere" / "train.py", repo_root=tmp_path / "repo")


def test_missing_entry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a file"):
        capture_packages(tmp_path / "nope.py")


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    write(tmp_path, {"train.py": ""})
    with pytest.raises(InvalidInput, match="unknown package capture mode"):
        capture_packages(tmp_path / "train.py", mode="conda")  # type: ignore[arg-type]


# --- requirement lines -----------------------------------------------------------------


def test_canonical_names_follow_pep_503() -> None:
    assert canonical_name("Typing.Extensions") == "typing-extensions"
    assert canonical_name("Py__YAML") == "py-yaml"
    assert requirement_name("SQLAlchemy[asyncio]>=2 ; python_version >= '3.8'") == "sqlalchemy"


def test_url_fragments_are_not_comments() -> None:
    lines = parse_requirements("pkg @ https://host/pkg.zip#sha256=ab  # note\n", source="r")
    assert lines == ("pkg @ https://host/pkg.zip#sha256=ab",)


def test_parse_requirements_takes_lines_as_task_create_gives_them() -> None:
    lines = ["torch==2.3.1", "", "# comment", "numpy>=1  # pinned loosely"]
    assert packages.parse_requirements(lines) == ("torch==2.3.1", "numpy>=1")
    with pytest.raises(InvalidInput, match=r"requirements, line 2: '-r x\.txt' is a pip option"):
        packages.parse_requirements(["numpy", "-r x.txt"])


def test_public_names_exist() -> None:
    assert all(hasattr(packages, name) for name in packages.__all__)


def test_names_are_read_without_packaging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "packaging.requirements", None)  # as if not installed
    assert requirement_name("Typing_Extensions>=4") == "typing-extensions"
    with pytest.raises(InvalidInput, match="does not start with a package name"):
        requirement_name("!!")
    with pytest.raises(InvalidInput, match="pip option"):
        requirement_name("--index-url x")
