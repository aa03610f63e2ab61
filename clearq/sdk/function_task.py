"""A plain function shipped as a task of its own (``task.create_function_task``).

The function's source becomes a small script; its keyword arguments travel as
parameters ``kwargs/<name>`` (JSON text), so a clone can override them; its return
value, when not None, becomes the artifact ``return`` (or, with ``return_names``, one
artifact per returned value). A keyword argument made by :func:`artifact_input`
receives another task's artifact as the object itself, loaded when the function runs.
"""

from __future__ import annotations

import ast
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
ARTIFACT_INPUT_KEY = "$clearq_artifact"

_MAIN = """

if __name__ == "__main__":
    import json

    from clearq import Task

    _task = Task.init()

    def _value(text):
        value = json.loads(text)
        if isinstance(value, dict) and set(value) == {{"$clearq_artifact"}}:
            producer, artifact = value["$clearq_artifact"]
            return Task.get_task(task_id=producer).artifacts[artifact].get()
        return value

    _kwargs = {{
        key.split("/", 1)[1]: _value(value)
        for key, value in _task.get_parameters().items()
        if key.startswith("kwargs/")
    }}
    _result = {name}(**_kwargs)
    _names = {returns!r}
    if len(_names) == 1:
        _result = (_result,) if _result is not None or {keep_none!r} else ()
    for _name, _value_out in zip(_names, _result or ()):
        _task.upload_artifact(_name, _value_out)
"""


def artifact_input(task_id: str, artifact: str) -> dict[str, list[str]]:
    """A keyword argument that receives ``task_id``'s artifact ``artifact``, as an object."""
    return {ARTIFACT_INPUT_KEY: [task_id, artifact]}


def function_source(func: Callable[..., Any], what: str) -> str:
    """The source of a stand-alone function; InvalidInput saying why one cannot ship."""
    if func.__name__ == "<lambda>" or getattr(func, "__closure__", None):
        raise InvalidInput(
            f"{what}: needs a plain top-level function (no lambda, no closure); "
            "import what it uses inside its body"
        )
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as e:
        raise InvalidInput(f"{what}: cannot read the function's source: {e}") from e
    return _without_decorators(source)


def function_script(
    func: Callable[..., Any], what: str, returns: tuple[str, ...], *, keep_none: bool
) -> str:
    """The script that runs ``func`` as a task: its source, then a main that calls it.

    The main reads the keyword arguments from the task's ``kwargs/`` parameters and uploads
    each returned value named in ``returns`` as an artifact; a single return value of None
    is uploaded only with ``keep_none`` (a pipeline step's result is there for the steps
    after it, whatever it is).
    """
    source = function_source(func, what)
    return source + _MAIN.format(name=func.__name__, returns=returns, keep_none=keep_none)


def _without_decorators(source: str) -> str:
    """The function's own lines: its decorators (a pipeline's, say) do not travel."""
    tree = ast.parse(source)
    node = tree.body[0] if tree.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or not node.decorator_list:
        return source
    return "\n".join(source.splitlines()[node.lineno - 1 :]) + "\n"


def function_task_spec(
    func: Callable[..., Any],
    *,
    project: str,
    name: str,
    env: EnvSpec,
    kwargs: Mapping[str, Any],
    parent_id: uuid.UUID | None,
    return_names: tuple[str, ...] = (RETURN_ARTIFACT,),
    tags: tuple[str, ...] = (),
    task_type: str = "custom",
) -> TaskSpec:
    """The draft that runs ``func(**kwargs)``."""
    from clearq.models import Script, TaskSpec

    if not return_names:
        raise InvalidInput(f"{func.__name__}: name at least one return value")
    source = function_script(
        func, f"a function task of {func.__name__}", tuple(return_names), keep_none=False
    )
    script = Script(source=source, entry_point=f"function_{func.__name__}.py")
    try:
        parameters = {f"{KWARGS_SECTION}/{k}": json.dumps(v) for k, v in kwargs.items()}
    except TypeError as e:
        raise InvalidInput(f"create_function_task: keyword arguments must be JSON: {e}") from e
    return TaskSpec(
        project=project,
        name=name,
        type=task_type,
        script=script,
        env=env,
        parameters=parameters,
        parent_id=parent_id,
        tags=tags,
    )


__all__ = [
    "ARTIFACT_INPUT_KEY",
    "KWARGS_SECTION",
    "RETURN_ARTIFACT",
    "artifact_input",
    "function_script",
    "function_source",
    "function_task_spec",
]
