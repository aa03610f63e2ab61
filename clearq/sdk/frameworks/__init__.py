"""Automatic capture (``Task.init(auto_connect_frameworks=...)``), on by default as in ClearML.

- ``matplotlib``: ``plt.show()`` and ``Figure.savefig`` report the figure as a plot.
- ``tensorboard``: ``torch.utils.tensorboard`` / ``tensorboardX`` writers' and ``tf.summary``'s
  scalars, images and histograms also reach the task (the event files are still written).
- ``pytorch``, ``tensorflow``, ``joblib``, ``scikit``: files written with ``torch.save``,
  Keras's ``model.save`` / ``save_weights``, ``joblib.dump``, or ``pickle.dump`` of a
  scikit-learn estimator become the task's output models.
- ``click``, ``typer``, ``jsonargparse``, ``fire``: parsed options are connected as
  ``Args/<name>`` (jsonargparse's nested ones as ``Args/model/lr``; fire's the arguments of
  the function, class or method ``fire.Fire`` calls, defaults included), recorded by hand
  and overridden from a clone under an agent, as argparse is.
- ``hydra``: the composed configuration is connected as ``OmegaConf/<path>`` before the
  task function runs; under an agent a clone's overrides are written into it.

``auto_connect_frameworks=False`` captures nothing; a dict turns single ones off
(``{"matplotlib": False}``); ClearML's other names are accepted and capture nothing here.
Nothing is imported for this: a hook patches a library when the script imports it (at once
if it already has), so ``Task.init`` costs the same whatever is installed.
"""

from __future__ import annotations

import functools
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from clearq.errors import InvalidInput

if TYPE_CHECKING:
    import importlib.abc

    from clearq.sdk.task import Task

log = logging.getLogger(__name__)

CAPTURED = (
    "matplotlib",
    "tensorboard",
    "pytorch",
    "tensorflow",
    "joblib",
    "scikit",
    "click",
    "typer",
    "jsonargparse",
    "fire",
    "hydra",
)
NOT_CAPTURED_HERE = (
    "xgboost",
    "fastai",
    "lightgbm",
    "detect_repository",
    "tfdefines",
    "megengine",
    "catboost",
    "gradio",
)
"""ClearML's other names: accepted, so a ClearML script's dict works, but nothing to do."""


def chosen(option: bool | Mapping[str, Any]) -> set[str]:
    """The frameworks ``auto_connect_frameworks`` turns on."""
    if isinstance(option, bool):
        return set(CAPTURED) if option else set()
    if not isinstance(option, Mapping):
        raise InvalidInput(f"auto_connect_frameworks must be a bool or a dict, not {option!r}")
    unknown = set(option) - set(CAPTURED) - set(NOT_CAPTURED_HERE)
    if unknown:
        raise InvalidInput(
            f"auto_connect_frameworks: unknown {sorted(unknown)}; known: {sorted(CAPTURED)} "
            f"(and ClearML's {sorted(NOT_CAPTURED_HERE)}, which capture nothing here)"
        )
    return {name for name in CAPTURED if bool(option.get(name, True))}


def connect_frameworks(task: Task, option: bool | Mapping[str, Any]) -> None:
    """Install the capture of each chosen framework for ``task``'s run."""
    on = chosen(option)
    if not on or not task._role.takes_reports:
        return
    from clearq.sdk.frameworks import patches

    target = patches.Target(task)
    for name in sorted(on):
        for module, patch in patches.PATCHES[name]:
            when_imported(module, functools.partial(_for_target, patch, target))


def _for_target(patch: Callable[[ModuleType, Any], None], target: Any, module: ModuleType) -> None:
    patch(module, target)


# ---- patching a module when it is imported ------------------------------------------------

_waiting: dict[str, list[Callable[[ModuleType], None]]] = {}
_lock = threading.Lock()


def when_imported(name: str, patch: Callable[[ModuleType], None]) -> None:
    """Call ``patch(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None:
        _apply(patch, module)
        return
    with _lock:
        _waiting.setdefault(name, []).append(patch)
        if not any(isinstance(f, _Finder) for f in sys.meta_path):
            sys.meta_path.insert(0, _Finder())


def _apply(patch: Callable[[ModuleType], None], module: ModuleType) -> None:
    try:
        patch(module)
    except (AttributeError, TypeError, ImportError) as e:
        # A library version without what the patch wraps: the script runs on, uncaptured.
        log.warning("clearq: cannot capture %s automatically: %s", module.__name__, e)


class _Finder:
    """Finds nothing itself: wraps the loader of a watched module to patch it once run.

    A meta path finder by protocol (``find_spec``), not by ``importlib.abc``, whose
    import costs every ``Task.init`` more than the hooks themselves."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _waiting:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = cast("importlib.abc.Loader", _PatchingLoader(spec.loader))
                return spec
        return None


class _PatchingLoader:
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        created: ModuleType | None = self._loader.create_module(spec)
        return created

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        with _lock:
            patches = _waiting.pop(module.__name__, [])
        for patch in patches:
            _apply(patch, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
