"""EnvSpec hashing, canonical requirements, refused input and failure reading (no I/O)."""

from __future__ import annotations

import pytest

from clearq.envs import EnvBuildError, EnvFailure, canonical_requirement, check_spec, env_key
from clearq.envs.failures import classify, failed_requirement, installer_error
from clearq.envs.process import installer_env
from clearq.envs.progress import NullProgress, terminal_progress
from clearq.models import EnvManager, EnvSpec


def test_key_ignores_order_whitespace_duplicates_and_name_spelling() -> None:
    a = EnvSpec(python="3.11", requirements=("numpy==2.0.0", "Pandas>=2,<3", "six"))
    b = EnvSpec(
        python="3.11",
        requirements=("  six ", "pandas <3, >=2", "", "NumPy == 2.0.0", "numpy==2.0.0"),
    )
    assert env_key(a) == env_key(b)


@pytest.mark.parametrize(
    "change",
    [
        {"python": "3.12"},
        {"requirements": ("numpy==2.0.1",)},
        {"requirements": ("numpy[extra]==2.0.0",)},
        {"manager": EnvManager.PIP},
        {"index_urls": ("https://download.pytorch.org/whl/cu121",)},
        {"lock_file": "x = 1"},
        {"project_file": "[tool.poetry]"},
    ],
)
def test_key_changes_with_what_the_env_holds(change: dict[str, object]) -> None:
    base = EnvSpec(python="3.11", requirements=("numpy==2.0.0",))
    assert env_key(base) != env_key(base.model_copy(update=change))


def test_index_url_order_counts_but_a_trailing_slash_does_not() -> None:
    a = EnvSpec(index_urls=("https://a.example/simple", "https://b.example/simple"))
    b = EnvSpec(index_urls=("https://b.example/simple", "https://a.example/simple"))
    c = EnvSpec(index_urls=("https://a.example/simple/", " https://b.example/simple"))
    assert env_key(a) != env_key(b)
    assert env_key(a) == env_key(c)


def test_lock_file_line_endings_and_trailing_blanks_do_not_count() -> None:
    a = EnvSpec(manager=EnvManager.POETRY, lock_file="[[package]]\nname = 'six'\n")
    b = EnvSpec(manager=EnvManager.POETRY, lock_file="[[package]]  \r\nname = 'six'\r\n\r\n")
    assert env_key(a) == env_key(b)


def test_key_is_a_readable_folder_name() -> None:
    key = env_key(EnvSpec(manager=EnvManager.PIP, python="3.11"))
    assert key.startswith("pip-py3.11-")
    assert "/" not in key


def test_no_python_means_the_running_one() -> None:
    import sys

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env_key(EnvSpec()) == env_key(EnvSpec(python=version))
    assert check_spec(EnvSpec()).python == version


@pytest.mark.parametrize(
    ("line", "canonical"),
    [
        ("Six >= 1.0", "six>=1.0"),
        ("zope.interface==5", "zope-interface==5"),
        ("requests[socks,Security] <3,>=2", "requests[security,socks]<3,>=2"),
        ("pkg @ https://example.org/pkg-1.0.tar.gz", "pkg @ https://example.org/pkg-1.0.tar.gz"),
        ('torch==2.3 ; sys_platform == "linux"', 'torch==2.3; sys_platform == "linux"'),
    ],
)
def test_canonical_requirement(line: str, canonical: str) -> None:
    assert canonical_requirement(line) == canonical


@pytest.mark.parametrize(
    "line",
    [
        "--index-url=https://evil.example/simple",
        "-e git+https://x/y.git",
        "-r other.txt",
        " --extra-index-url x",
    ],
)
def test_options_among_requirements_are_refused(line: str) -> None:
    with pytest.raises(EnvBuildError, match="installer option") as caught:
        check_spec(EnvSpec(requirements=("six", line)))
    assert caught.value.failure is EnvFailure.REQUIREMENT
    assert caught.value.requirement == line.strip()
    assert not caught.value.infra


@pytest.mark.parametrize("line", ["six ==", "six --hash=sha256:00", "not a requirement!"])
def test_lines_that_are_not_requirements_are_refused(line: str) -> None:
    with pytest.raises(EnvBuildError, match="is not a requirement"):
        check_spec(EnvSpec(requirements=(line,)))


def test_index_urls_must_be_urls_and_python_a_version() -> None:
    with pytest.raises(EnvBuildError, match="not a URL"):
        check_spec(EnvSpec(index_urls=("--trusted-host evil",)))
    with pytest.raises(EnvBuildError, match="not a Python version request") as caught:
        check_spec(EnvSpec(python="--system"))
    assert caught.value.failure is EnvFailure.PYTHON


UV_NOT_FOUND = (
    "error: No solution found when resolving dependencies\n  cause: Because "
    "nonexistent-pkg was not found in the package registry and you require nonexistent-pkg"
)
UV_NO_VERSION = "cause: Because there is no version of six==99.0 and you require six==99.0"
UV_OFFLINE = (
    "error: Request failed after 3 retries\n  cause: Failed to fetch: http://127.0.0.1:9/\n"
    "  cause: tcp connect error\n  cause: Connection refused (os error 111)"
)
PIP_OFFLINE = (
    "WARNING: Retrying ... NewConnectionError: Failed to establish a new connection\n"
    "ERROR: Could not find a version that satisfies the requirement six (from versions: none)"
)
PIP_NOT_FOUND = "ERROR: No matching distribution found for Flask_Login"


@pytest.mark.parametrize(
    ("output", "failure"),
    [
        (UV_NOT_FOUND, EnvFailure.REQUIREMENT),
        (UV_NO_VERSION, EnvFailure.REQUIREMENT),
        (UV_OFFLINE, EnvFailure.NETWORK),
        (PIP_OFFLINE, EnvFailure.NETWORK),
        (PIP_NOT_FOUND, EnvFailure.REQUIREMENT),
        ("OSError: [Errno 28] No space left on device", EnvFailure.SYSTEM),
        ("error: No interpreter found for Python 3.99", EnvFailure.PYTHON),
        ("something else entirely", EnvFailure.INSTALLER),
    ],
)
def test_installer_output_is_classified(output: str, failure: EnvFailure) -> None:
    assert classify(output) is failure


def test_the_failed_requirement_is_named() -> None:
    lines = ["six==1.16", "nonexistent-pkg>=1", "idna"]
    assert failed_requirement(UV_NOT_FOUND, lines) == "nonexistent-pkg>=1"
    assert failed_requirement(UV_NO_VERSION, ["sixer", "six==99.0"]) == "six==99.0"
    assert failed_requirement(PIP_NOT_FOUND, ["flask-login==0.6"]) == "flask-login==0.6"
    error = installer_error("uv", "installing requirements", UV_NOT_FOUND, lines)
    assert error.requirement == "nonexistent-pkg>=1"
    assert "nonexistent-pkg>=1" in str(error)
    assert "was not found in the package registry" in str(error)
    assert (
        error.summary
        == "installing requirements: requirement 'nonexistent-pkg>=1' cannot be installed"
    )


def test_network_failures_are_infra() -> None:
    error = installer_error("uv", "installing requirements", UV_OFFLINE, ["six"])
    assert error.failure is EnvFailure.NETWORK
    assert error.infra
    assert "Connection refused" in str(error)


def test_installers_get_the_proxy_settings_under_each_others_names() -> None:
    env = installer_env(
        {
            "PATH": "/usr/bin",
            "PIP_INDEX_URL": "https://mirror.example/simple",
            "PIP_EXTRA_INDEX_URL": "https://extra.example/simple",
            "PIP_CERT": "/etc/corp.pem",
            "VIRTUAL_ENV": "/somewhere/.venv",
            "PYTHONPATH": "/somewhere",
        }
    )
    assert env["UV_INDEX_URL"] == "https://mirror.example/simple"
    assert env["UV_EXTRA_INDEX_URL"] == "https://extra.example/simple"
    assert env["SSL_CERT_FILE"] == "/etc/corp.pem"
    assert env["PIP_CERT"] == "/etc/corp.pem"
    assert "VIRTUAL_ENV" not in env
    assert "PYTHONPATH" not in env


def test_an_installers_own_setting_wins() -> None:
    env = installer_env({"PIP_INDEX_URL": "https://a/simple", "UV_INDEX_URL": "https://b/simple"})
    assert env["UV_INDEX_URL"] == "https://b/simple"
    assert env["PIP_INDEX_URL"] == "https://a/simple"


def test_no_terminal_no_display() -> None:
    with terminal_progress("uv-py3.11-x") as progress:
        assert isinstance(progress, NullProgress)


def test_the_rich_display_survives_markup_in_installer_output() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress

    from clearq.envs import RichProgress

    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=True)) as progress:
        shown = RichProgress(progress, progress.add_task("x", total=None), "uv-[key]")
        shown.stage("installing 2 requirements")
        shown.output("Collecting requests[socks] [/bold]\n")
    assert "requests[socks]" in out.getvalue()


def test_the_public_face_is_complete() -> None:
    import clearq.envs

    assert [n for n in clearq.envs.__all__ if not hasattr(clearq.envs, n)] == []
    assert sorted(clearq.envs.__all__) == clearq.envs.__all__


def test_clearq_itself_is_never_installed_from_an_index() -> None:
    with_clearq = EnvSpec(requirements=("six", "ClearQ==0.1.0"))
    assert check_spec(with_clearq).requirements == ("six",)
    assert env_key(with_clearq) == env_key(EnvSpec(requirements=("six",)))
