"""``Task.init``'s ClearML options, checked once, and the memory of a script's last task.

A script run by hand remembers, per database, project and task name, the task its last
run made (``CLEARQ_HOME/last_tasks.json``). Run again, it takes that task over instead
of piling up new ones: ``reuse_last_task_id`` (ClearML's default) when the task stored
no artifacts, starting it afresh; ``continue_last_task`` keeping its outputs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clearq.errors import InvalidInput
from clearq.sdk.task_types import TaskTypes, task_type_value
from clearq.valueclass import value_class

LAST_TASKS_FILE = "last_tasks.json"


@value_class
class InitOptions:
    """What ``Task.init``'s ClearML keywords ask for."""

    task_type: str = TaskTypes.training.value
    reuse: bool = True
    reuse_id: uuid.UUID | None = None
    continue_last: bool = False
    continue_id: uuid.UUID | None = None
    initial_iteration: int | None = None
    """An iteration offset asked for (``continue_last_task=<int>``)."""
    output_uri: str | None = None
    output_uri_default: bool = False
    """``output_uri=True``: the default artifacts folder."""
    connect_args: bool = True
    skip_args: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        *,
        task_type: TaskTypes | str,
        reuse_last_task_id: bool | str,
        continue_last_task: bool | str | int,
        output_uri: str | bool | None,
        auto_connect_arg_parser: bool | Mapping[str, bool],
    ) -> InitOptions:
        """The options, or InvalidInput naming the keyword that cannot be used."""
        reuse, reuse_id = _flag_or_id("reuse_last_task_id", reuse_last_task_id)
        cont, cont_id, offset = _continue(continue_last_task)
        connect, skip = _arg_parser(auto_connect_arg_parser)
        if output_uri is not None and not isinstance(output_uri, bool | str):
            raise InvalidInput(f"output_uri must be True, False or a URL, not {output_uri!r}")
        return cls(
            task_type=task_type_value(task_type),
            reuse=reuse,
            reuse_id=reuse_id,
            continue_last=cont,
            continue_id=cont_id,
            initial_iteration=offset,
            output_uri=output_uri if isinstance(output_uri, str) else None,
            output_uri_default=output_uri is True,
            connect_args=connect,
            skip_args=skip,
        )


def _flag_or_id(keyword: str, value: bool | str) -> tuple[bool, uuid.UUID | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, str):
        try:
            return True, uuid.UUID(value)
        except ValueError:
            raise InvalidInput(f"{keyword}={value!r} is neither True/False nor a task id") from None
    raise InvalidInput(f"{keyword} must be True, False or a task id, not {value!r}")


def _continue(value: bool | str | int) -> tuple[bool, uuid.UUID | None, int | None]:
    if isinstance(value, bool):
        return value, None, None
    if isinstance(value, int):
        if value < 0:
            raise InvalidInput(f"continue_last_task={value}: an iteration cannot be negative")
        return True, None, value
    flag, task_id = _flag_or_id("continue_last_task", value)
    return flag, task_id, None


def _arg_parser(value: bool | Mapping[str, bool]) -> tuple[bool, frozenset[str]]:
    if isinstance(value, bool):
        return value, frozenset()
    if isinstance(value, Mapping):
        if value.get("*") is False:
            return False, frozenset()
        return True, frozenset(k for k, v in value.items() if v is False)
    raise InvalidInput(f"auto_connect_arg_parser must be a bool or a dict, not {value!r}")


# ---- the last task of each script on this machine -------------------------------------


def _key(database_url: str, project: str, name: str) -> str:
    where = _sha256_hex(database_url.encode())[:16]
    return f"{where}/{project}/{name}"


def _sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, from CPython's own module where it has one:
    ``hashlib`` loads OpenSSL first, about 6 ms of every script's start here."""
    try:
        from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]  # 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:  # a Python built without them
            from hashlib import sha256
    return str(sha256(data).hexdigest())


def last_task(home: Path, database_url: str, project: str, name: str) -> uuid.UUID | None:
    """The task the last run of ``project/name`` on this machine made, if remembered."""
    entries = _read(home / LAST_TASKS_FILE)
    found = entries.get(_key(database_url, project, name))
    try:
        return uuid.UUID(str(found)) if found else None
    except ValueError:
        return None


def remember_task(
    home: Path, database_url: str, project: str, name: str, task_id: uuid.UUID
) -> None:
    """Remember ``task_id`` as the last task of ``project/name`` (written atomically)."""
    path = home / LAST_TASKS_FILE
    entries = _read(path)
    key = _key(database_url, project, name)
    if entries.get(key) == str(task_id):
        return  # a run that took its last task over again: nothing new to write
    entries[key] = str(task_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp's own way, without tempfile's imports (shutil, random): a new name, O_EXCL.
    partial = path.parent / f".last_tasks.{uuid.uuid4().hex}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(entries, f, indent=1, sort_keys=True)
    os.replace(partial, path)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


__all__ = ["InitOptions", "last_task", "remember_task"]
