"""The agent's git credentials file and preferred transport."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearq.errors import ConfigError
from clearq.runtime.gitcreds import credential_config, preferred_url
from clearq.runtime.gitsafe import git_environment

SECRET = "s3cr3t-token"


def _file(tmp_path: Path, text: str, mode: int = 0o600) -> dict[str, str]:
    path = tmp_path / "creds"
    path.write_text(text)
    path.chmod(mode)
    return {"CLEARQ_GIT_CREDENTIALS": str(path)}


def test_the_helper_reads_the_file_and_the_token_is_in_no_variable(tmp_path: Path) -> None:
    environ = _file(tmp_path, f"https://bob:{SECRET}@git.example.com\n")
    env = git_environment(environ, allow_local=False)
    assert env["GIT_CONFIG_COUNT"] == "2"
    assert env["GIT_CONFIG_KEY_0"] == env["GIT_CONFIG_KEY_1"] == "credential.helper"
    assert env["GIT_CONFIG_VALUE_0"] == ""  # any earlier helper is cleared
    assert f"credential-store --file={tmp_path / 'creds'} get" in env["GIT_CONFIG_VALUE_1"]
    assert not any(SECRET in value for value in env.values())


def test_no_file_no_helper() -> None:
    assert credential_config({}) == {}
    assert "GIT_CONFIG_COUNT" not in git_environment({}, allow_local=False)


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    environ = _file(tmp_path, f"https://bob:{SECRET}@h\n", mode=0o640)
    with pytest.raises(ConfigError, match="chmod 600") as caught:
        credential_config(environ)
    assert "0640" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("git@host:org/repo", "not an https URL"),
        ("https://host", "no user and token"),
        (f"https://bob@host/{SECRET}", "no user and token"),
        (f"https://bob:{SECRET}@host:port", "not a URL"),
    ],
)
def test_a_bad_line_is_named_by_number_without_its_token(
    tmp_path: Path, line: str, reason: str
) -> None:
    environ = _file(tmp_path, f"https://bob:{SECRET}@ok.example.com\n\n{line}\n")
    with pytest.raises(ConfigError, match=f"line 3: {reason}") as caught:
        credential_config(environ)
    assert SECRET not in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        credential_config({"CLEARQ_GIT_CREDENTIALS": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    ("prefer", "url", "expected"),
    [
        ("https", "git@github.com:org/repo.git", "https://github.com/org/repo.git"),
        ("https", "ssh://git@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https", "https://github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("ssh", "https://github.com/org/repo.git", "git@github.com:org/repo.git"),
        ("ssh", "git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("", "git@github.com:org/repo.git", "git@github.com:org/repo.git"),
    ],
)
def test_the_preferred_transport_rewrites_the_remote(prefer: str, url: str, expected: str) -> None:
    assert preferred_url(url, {"CLEARQ_GIT_PREFER": prefer}) == expected


def test_an_unknown_preference_is_refused() -> None:
    with pytest.raises(ConfigError, match="ssh or https"):
        preferred_url("git@h:o/r", {"CLEARQ_GIT_PREFER": "ftp"})
