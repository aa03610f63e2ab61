"""``--task-user``'s checks, without changing any user."""

from __future__ import annotations

import pytest

from clearq.errors import ConfigError
from clearq.runtime.taskuser import TaskUser


def test_an_agent_that_is_not_root_cannot_run_tasks_as_another_user() -> None:
    with pytest.raises(ConfigError, match="needs an agent running as root"):
        TaskUser.lookup("nobody", euid=lambda: 1000)


def test_the_task_user_says_who_it_is() -> None:
    user = TaskUser.lookup("nobody", euid=lambda: 0)
    assert user.uid != 0
    assert user.environment() == {"HOME": user.home, "USER": "nobody", "LOGNAME": "nobody"}
