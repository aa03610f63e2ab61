"""A plain function shipped as a task of its own (``task.create_function_task``).

The function's source becomes a small script; its keyword arguments travel as
parameters ``kwargs/<name>`` (JSON text), so a clone can override them; its return
value, when not None, becomes the artifact ``return``.
"""

from __future__ import annotations

import inspect
import json
import textwrap
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from clearq.errors import InvalidInput

if TYPE_CHECKING:
    from clearq.models import EnvSpec, TaskSpec

KWARGS_SECTION = "kwargs"
RETURN_ARTIFACT = "return"

_MAIN = """

if __name__ == "__main__":
    import json

    from clearq import Task

    _task = Task.init()
    _kwargs = {{
        key.split("/", 1)[1]: json.loads(value)
        for key, value in _task.get_parameters().items()
        if key.startswith("kwargs/")
    }}
    _result = {name}(**_kwargs)
    if _result is not None:
        _task.upload_artifact({artifact!r}, _result)
"""


def function_source(func: Callable[..., Any], what: str) -> str:
    """The source of a stand-alone function; InvalidInput saying why one cannot ship."""
    if func.__name__ == "<lambda>" or getattr(func, "__closure__", None):
        raise InvalidInput(
            f"{what}: needs a plain top-level function (no lambda, no closure); "
            "import what it uses inside its body"
        )
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as e:
        raise InvalidInput(f"{what}: cannot read the function's source: {e}") from e


def function_task_spec(
    func: Callable[..., Any],
    *,
    project: str,
    name: str,
    env: EnvSpec,
    kwargs: Mapping[str, Any],
    parent_id: uuid.UUID | None,
) -> TaskSpec:
    """The draft that runs ``func(**kwargs)``."""
    from clearq.models import Script, TaskSpec

    source = function_source(func, f"create_function_task({func.__name__})")
    script = Script(
        source=source + _MAIN.format(name=func.__name__, artifact=RETURN_ARTIFACT),
        entry_point=f"function_{func.__name__}.py",
    )
    try:
        parameters = {f"{KWARGS_SECTION}/{k}": json.dumps(v) for k, v in kwargs.items()}
    except TypeError as e:
        raise InvalidInput(f"create_function_task: keyword arguments must be JSON: {e}") from e
    return TaskSpec(
        project=project,
        name=name,
        type="custom",
        script=script,
        env=env,
        parameters=parameters,
        parent_id=parent_id,
    )


__all__ = ["KWARGS_SECTION", "RETURN_ARTIFACT", "function_source", "function_task_spec"]
