"""Which binds the UI accepts, and its CSRF tokens."""

from __future__ import annotations

import pytest

from clearq.errors import ConfigError
from clearq.ui.security import Guard, check_bind, is_loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.0.1", "::1", "[::1]", "localhost"])
def test_loopback_names(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.2", "example.org", ""])
def test_other_names_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_check_bind() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "x" * 16)
    with pytest.raises(ConfigError, match="CLEARQ_UI_TOKEN"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigError, match="at least 16"):
        check_bind("127.0.0.1", "short")


def test_csrf_tokens_belong_to_one_session_and_one_process() -> None:
    guard = Guard()
    token = guard.csrf_for("session-a")
    assert guard.csrf_ok("session-a", token)
    assert not guard.csrf_ok("session-b", token)
    assert not guard.csrf_ok(None, token)
    assert not guard.csrf_ok("session-a", None)
    assert not Guard().csrf_ok("session-a", token)
