"""Reading poetry.lock entries and conda files into installer input (no I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq.envs import EnvBuildError
from clearq.envs.conda import _create_argv, _file_name
from clearq.envs.poetry import read_lock

LOCK = """
[[package]]
name = "six"
version = "1.16.0"
groups = ["main"]

[[package]]
name = "torch"
version = "2.3.0+cu121"
groups = ["main"]
markers = {main = "sys_platform == \\"linux\\"", dev = "python_version >= \\"3.12\\""}
[package.source]
type = "legacy"
url = "https://download.pytorch.org/whl/cu121"
reference = "torch"

[[package]]
name = "mylib"
version = "0.3.0"
category = "dev"
[package.source]
type = "git"
url = "https://github.com/example/mylib.git"
reference = "main"
resolved_reference = "0123abcd"

[[package]]
name = "clearq"
version = "0.1.0"
groups = ["main"]

[metadata]
lock-version = "2.1"
"""


def test_locked_packages_become_exact_requirements() -> None:
    six, torch, mylib = read_lock(LOCK)  # clearq is left out: the agent provides it
    assert six.requirement() == "six==1.16.0"
    assert six.from_an_index
    assert six.index_url is None
    assert torch.requirement() == 'torch==2.3.0+cu121 ; sys_platform == "linux"'
    assert torch.index_url == "https://download.pytorch.org/whl/cu121"
    assert mylib.requirement() == "mylib @ git+https://github.com/example/mylib.git@0123abcd"
    assert mylib.groups == ["dev"]
    assert not mylib.from_an_index


def test_a_local_path_package_is_refused() -> None:
    lock = '[[package]]\nname = "x"\nversion = "1"\n'
    lock += '[package.source]\ntype = "directory"\nurl = "../x"\n'
    (package,) = read_lock(lock)
    with pytest.raises(EnvBuildError, match="local path"):
        package.requirement()


def test_a_broken_lock_says_so() -> None:
    with pytest.raises(EnvBuildError, match=r"poetry\.lock cannot be read"):
        read_lock("[[package]\nname=")
    with pytest.raises(EnvBuildError, match=r"poetry\.lock cannot be read"):
        read_lock('[[package]]\nversion = "1"\n')


def test_conda_files_and_commands() -> None:
    assert _file_name("environment.yml") == "environment.yml"
    assert _file_name("conda-lock.yml") == "conda-lock.yml"
    assert _file_name(None) == "environment.yml"
    file, dest = Path("/s/environment.yml"), Path("/c/conda-py3.11-x")
    assert _create_argv(Path("/bin/micromamba"), file, dest, "3.11") == [
        "/bin/micromamba", "create", "--yes", "--prefix", str(dest), "--file", str(file),
        "python=3.11",
    ]  # fmt: skip
    assert _create_argv(Path("/bin/conda"), file, dest, "3.11") == [
        "/bin/conda", "env", "create", "--prefix", str(dest), "--file", str(file),
    ]  # fmt: skip
