"""The patches themselves: each wraps a library function, calls it unchanged, then reports
what it did into the task. A patch never changes what the library returns or raises (the
one exception: a click command's parsed options, replaced by a clone's overrides under an
agent, as argparse's are), and a report that fails is logged and forgotten: the script's
own work comes first.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clearq.errors import ClearqError
from clearq.sdk.parameters import ARGS_SECTION

if TYPE_CHECKING:
    import inspect

    from clearq.sdk.logger import Logger
    from clearq.sdk.model import OutputModel
    from clearq.sdk.task import Task

log = logging.getLogger(__name__)

MARK = "__clearq_wrapped__"
OMEGACONF_SECTION = "OmegaConf"
ACTIVE: Target | None = None
"""The Target of the newest run that asked for capture."""


def _active() -> Target | None:
    return ACTIVE


HISTOGRAM_BINS = 30


class Target:
    """Where captured reports go: the task, while its run lasts.

    A library is patched once per process; its wrapper reports into the newest Target
    (``ACTIVE``), so a later ``Task.init`` in the same process (tests, notebooks) is the
    one captured into.
    """

    def __init__(self, task: Task) -> None:
        global ACTIVE
        ACTIVE = self
        self.task = task
        self._busy = threading.local()
        self._models: dict[Path, OutputModel] = {}
        self._figures: dict[int, tuple[Any, ...]] = {}
        self._plots: dict[str, int] = {}
        self._lock = threading.Lock()

    def logger(self) -> Logger | None:
        """The task's logger, or None once its run has ended (or while reporting)."""
        if not self.task._role.takes_reports or getattr(self._busy, "on", False):
            return None
        return self.task.get_logger()

    def report(self, what: str, action: Callable[[Logger], None]) -> None:
        """Run ``action`` with the logger, nothing the library does inside it captured."""
        logger = self.logger()
        if logger is None:
            return
        self._busy.on = True
        try:
            action(logger)
        except (ClearqError, OSError, ValueError, TypeError) as e:
            log.warning("clearq: could not capture %s: %s", what, e)
        finally:
            self._busy.on = False

    # ---- matplotlib -------------------------------------------------------------------

    def figure(self, figure: Any) -> None:
        """Report a figure as a plot, unless it is unchanged since it was last reported."""
        signature = _signature(figure)
        if self._figures.get(id(figure)) == signature:
            return
        self._figures[id(figure)] = signature
        title = _figure_title(figure)
        with self._lock:
            iteration = self._plots.get(title, 0)
            self._plots[title] = iteration + 1
        self.report(
            f"figure {title!r}",
            lambda log_: log_.report_matplotlib_figure(title, "plot", figure, iteration),
        )

    # ---- command-line options -----------------------------------------------------------

    def arguments(self, values: dict[str, Any]) -> dict[str, Any]:
        """Connect parsed options as ``Args/...``: the values to use (overrides applied)."""
        connected = self.task.connect(values, name=ARGS_SECTION)
        return dict(connected)

    # ---- models -------------------------------------------------------------------------

    def model_saved(self, path: Any, framework: str) -> None:
        """Record the file a library just wrote as an output model (one per file)."""
        if not isinstance(path, str | Path):
            return
        file = Path(path).resolve()

        def store(_: Logger) -> None:
            from clearq.sdk.model import OutputModel

            with self._lock:
                model = self._models.get(file)
                if model is None:
                    model = OutputModel(self.task, name=file.name, framework=framework)
                    self._models[file] = model
            model.update_weights(file)

        self.report(f"model {file.name}", store)


def _call(method: str, *args: Any) -> None:
    """Call the active Target's ``method``, if a run asked for capture."""
    target = _active()
    if target is not None:
        getattr(target, method)(*args)


def _now() -> Target:
    target = _active()
    assert target is not None  # only called from a report the active Target runs
    return target


def _signature(figure: Any) -> tuple[Any, ...]:
    # Cheap and good enough: what the axes hold, not a rendering.
    parts: list[Any] = [_figure_title(figure)]
    for ax in figure.axes:
        parts.append(
            (len(ax.lines), len(ax.collections), len(ax.patches), len(ax.images), ax.get_title())
        )
        parts.extend(len(line.get_xdata()) for line in ax.lines)
    return tuple(parts)


def _figure_title(figure: Any) -> str:
    sup = getattr(figure, "_suptitle", None)
    if sup is not None and sup.get_text():
        return str(sup.get_text())
    for ax in figure.axes:
        if ax.get_title():
            return str(ax.get_title())
    number = getattr(figure, "number", None)
    return f"untitled {number}" if number is not None else "untitled"


Args = tuple[tuple[Any, ...], dict[str, Any]]


def _arg(call: Args, index: int, name: str, default: Any = None) -> Any:
    """A call's argument, given by position or by name."""
    args, kwargs = call
    return args[index] if len(args) > index else kwargs.get(name, default)


def _wrap(owner: Any, name: str, after: Callable[[Args], None]) -> None:
    """Replace ``owner.name`` by a function that calls it, then ``after((args, kwargs))``."""
    original = getattr(owner, name)
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        after((args, kwargs))
        return result

    setattr(wrapper, MARK, True)
    setattr(owner, name, wrapper)


# ---- matplotlib -----------------------------------------------------------------------------


def patch_pyplot(pyplot: ModuleType, target: Target) -> None:
    """``plt.show()`` reports every open figure first."""
    original = pyplot.show
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def show(*args: Any, **kwargs: Any) -> Any:
        from matplotlib._pylab_helpers import Gcf

        for manager in Gcf.get_all_fig_managers():
            _call("figure", manager.canvas.figure)
        return original(*args, **kwargs)

    setattr(show, MARK, True)
    setattr(pyplot, "show", show)  # noqa: B010 - a module attribute mypy cannot see


def patch_figure(module: ModuleType, target: Target) -> None:
    """``Figure.savefig`` reports the figure once it is saved."""
    _wrap(module.Figure, "savefig", lambda call: _call("figure", _arg(call, 0, "self")))


# ---- models ---------------------------------------------------------------------------------


def patch_torch(torch: ModuleType, target: Target) -> None:
    """``torch.save(obj, path)`` records the file as a PyTorch model."""
    _wrap(torch, "save", lambda call: _call("model_saved", _arg(call, 1, "f"), "PyTorch"))


def patch_joblib(joblib: ModuleType, target: Target) -> None:
    """``joblib.dump(value, path)`` records the file as a model."""

    def after(call: Args) -> None:
        framework = _framework_of(_arg(call, 0, "value"), "joblib")
        _call("model_saved", _arg(call, 1, "filename"), framework)

    _wrap(joblib, "dump", after)


def patch_pickle(pickle: ModuleType, target: Target) -> None:
    """``pickle.dump(estimator, file)`` of a scikit-learn estimator records the file."""

    def after(call: Args) -> None:
        if _framework_of(_arg(call, 0, "obj"), "") != "scikit-learn":
            return
        file = _arg(call, 1, "file")
        file.flush()
        _call("model_saved", getattr(file, "name", None), "scikit-learn")

    _wrap(pickle, "dump", after)


def _framework_of(value: Any, default: str) -> str:
    module = type(value).__module__.split(".", 1)[0]
    return "scikit-learn" if module == "sklearn" else default


# ---- TensorBoard ------------------------------------------------------------------------------


def _title_series(tag: str) -> tuple[str, str]:
    title, _, series = str(tag).rpartition("/")
    return (title, series) if title else (series, series)


def _step_of(call: Args) -> int:
    step = _arg(call, 3, "global_step")
    return 0 if step is None else int(step)


def _numpy(value: Any) -> Any:
    import numpy as np

    detach = getattr(value, "detach", None)
    if callable(detach):
        value = detach().cpu().numpy()
    return np.asarray(value)


def patch_summary_writer(module: ModuleType, target: Target) -> None:
    """A SummaryWriter's scalars, images and histograms also go to the task."""
    writer = module.SummaryWriter

    def scalar(call: Args) -> None:
        tag, value, step = _arg(call, 1, "tag"), _arg(call, 2, "scalar_value"), _step_of(call)
        title, series = _title_series(tag)
        _call(
            "report",
            f"scalar {tag}",
            lambda log_: log_.report_scalar(title, series, float(value), step),
        )

    def scalars(call: Args) -> None:
        main, values, step = (
            _arg(call, 1, "main_tag"),
            _arg(call, 2, "tag_scalar_dict"),
            _step_of(call),
        )

        def each(log_: Logger) -> None:
            for series, value in dict(values).items():
                log_.report_scalar(str(main), str(series), float(value), step)

        _call("report", f"scalars {main}", each)

    def image(call: Args) -> None:
        tag, img, step = _arg(call, 1, "tag"), _arg(call, 2, "img_tensor"), _step_of(call)
        formats = str(_arg(call, 5, "dataformats", "CHW")).upper()
        title, series = _title_series(tag)

        def report(log_: Logger) -> None:
            log_.report_image(title, series, step, image=_hwc(_numpy(img), formats))

        _call("report", f"image {tag}", report)

    def histogram(call: Args) -> None:
        import numpy as np

        tag, values, step = _arg(call, 1, "tag"), _arg(call, 2, "values"), _step_of(call)
        title, series = _title_series(tag)

        def report(log_: Logger) -> None:
            counts, edges = np.histogram(_numpy(values).ravel(), bins=HISTOGRAM_BINS)
            labels = [f"{e:.3g}" for e in edges[:-1]]
            log_.report_histogram(title, series, counts, step, xlabels=labels)

        _call("report", f"histogram {tag}", report)

    _wrap(writer, "add_scalar", scalar)
    _wrap(writer, "add_scalars", scalars)
    _wrap(writer, "add_image", image)
    _wrap(writer, "add_histogram", histogram)


def _hwc(array: Any, formats: str) -> Any:
    """An image array as H x W (x C), from TensorBoard's CHW, HWC, HW or NCHW forms."""
    if formats == "NCHW" and array.ndim == 4:
        array, formats = array[0], "CHW"
    if formats == "CHW" and array.ndim == 3:
        return array.transpose(1, 2, 0)
    return array


# ---- TensorFlow: tf.summary and Keras ----------------------------------------------------------

_tf_writer = threading.local()
"""The last folder of the log directory of this thread's default ``tf.summary`` writer."""


def patch_tf_writers(summary: ModuleType, target: Target) -> None:
    """``tf.summary.create_file_writer``'s writers say, while they are the default, which
    log folder a summary goes to: the series of a tag without a ``/`` (Keras's TensorBoard
    callback writes ``epoch_loss`` into ``train`` and ``validation``).

    ``tf.summary`` is two modules: ``tensorflow._api.v2.summary``, and the copy that
    ``import tensorflow.summary`` (Keras's) runs and puts in its place."""
    original = summary.create_file_writer
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def create_file_writer(logdir: Any, *args: Any, **kwargs: Any) -> Any:
        writer = original(logdir, *args, **kwargs)
        folder = Path(str(logdir)).name
        as_default = writer.as_default
        # set_as_default enters as_default() too, so both are followed; a writer that takes
        # no attribute is named by its tags alone.
        with contextlib.suppress(AttributeError):
            writer.as_default = lambda step=None: _WriterDefault(as_default(step), folder)
        return writer

    setattr(create_file_writer, MARK, True)
    setattr(summary, "create_file_writer", create_file_writer)  # noqa: B010 - for mypy


class _WriterDefault:
    """A writer's ``as_default()``, noting its log folder while it is entered (a class,
    not a generator, as TensorFlow's own: ``set_as_default`` enters it and never exits)."""

    def __init__(self, inner: Any, folder: str) -> None:
        self._inner, self._folder, self._previous = inner, folder, None

    def __enter__(self) -> Any:
        entered = self._inner.__enter__()
        self._previous = getattr(_tf_writer, "folder", None)
        _tf_writer.folder = self._folder
        return entered

    def __exit__(self, *exc: Any) -> Any:
        _tf_writer.folder = self._previous
        return self._inner.__exit__(*exc)


def patch_tf_summary(v2: ModuleType, target: Target) -> None:
    """``tf.summary.scalar``, ``image`` and ``histogram`` (TensorBoard's implementations,
    which TensorFlow's ``tf.summary`` and Keras call) also reach the task when they wrote
    something: eagerly, into a default writer (inside a ``tf.function`` the values are not
    known yet, and only the event file gets them)."""

    def scalar(call: Args, tag: str, step: int) -> None:
        value = float(_numpy(_arg(call, 1, "data")))
        title, series = _tf_title_series(tag)
        _call(
            "report", f"scalar {tag}", lambda log_: log_.report_scalar(title, series, value, step)
        )

    def image(call: Args, tag: str, step: int) -> None:
        images = _numpy(_arg(call, 1, "data"))[: int(_arg(call, 3, "max_outputs", 3))]
        title, series = _tf_title_series(tag)

        def report(log_: Logger) -> None:
            for index, one in enumerate(images):
                name = series if len(images) == 1 else f"{series}/{index}"
                log_.report_image(title, name, step, image=one)

        _call("report", f"image {tag}", report)

    def histogram(call: Args, tag: str, step: int) -> None:
        import numpy as np

        values = _numpy(_arg(call, 1, "data")).ravel()
        bins = _arg(call, 3, "buckets") or HISTOGRAM_BINS
        title, series = _tf_title_series(tag)

        def report(log_: Logger) -> None:
            counts, edges = np.histogram(values, bins=int(bins))
            labels = [f"{e:.3g}" for e in edges[:-1]]
            log_.report_histogram(title, series, counts, step, xlabels=labels)

        _call("report", f"histogram {tag}", report)

    for name, after in (("scalar", scalar), ("image", image), ("histogram", histogram)):
        _wrap_tf_summary(v2, name, after)


def _wrap_tf_summary(owner: Any, name: str, after: Callable[[Args, str, int], None]) -> None:
    original = getattr(owner, name)
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tf: Any = sys.modules.get("tensorflow")
        eager = tf is not None and _active() is not None and tf.executing_eagerly()
        written = original(*args, **kwargs)
        if eager and bool(written):
            call = (args, kwargs)
            try:
                step = _arg(call, 2, "step")
                step = tf.summary.experimental.get_step() if step is None else step
                with tf.summary.experimental.summary_scope(_arg(call, 0, "name")) as (tag, _):
                    pass
                after(call, str(tag), int(_numpy(step)))
            except (ValueError, TypeError, AttributeError) as e:
                log.warning("clearq: could not capture tf.summary.%s: %s", name, e)
        return written

    setattr(wrapper, MARK, True)
    setattr(owner, name, wrapper)


def _tf_title_series(tag: str) -> tuple[str, str]:
    folder = getattr(_tf_writer, "folder", None)
    if "/" not in tag and folder:
        return tag, folder
    return _title_series(tag)


def patch_keras_model(module: ModuleType, target: Target) -> None:
    """Keras's ``model.save(path)`` and ``model.save_weights(path)`` (ModelCheckpoint's
    too) record the file as a Keras model."""
    model = module.Model
    for method in ("save", "save_weights"):
        _wrap(model, method, lambda call: _call("model_saved", _arg(call, 1, "filepath"), "Keras"))


# ---- command-line frameworks ------------------------------------------------------------------


def patch_click(core: ModuleType, target: Target) -> None:
    """A click (or typer) command's parsed options are connected as ``Args/<name>``: recorded
    when run by hand, replaced by the stored values (a clone's overrides) under an agent."""

    def after(call: Args) -> None:
        ctx = _arg(call, 1, "ctx")
        values = dict(ctx.params)
        _call(
            "report", "command-line options", lambda _: ctx.params.update(_now().arguments(values))
        )

    _wrap(core.Command, "parse_args", after)


def patch_jsonargparse(module: ModuleType, target: Target) -> None:
    """A jsonargparse parser's result is connected as ``Args/...`` (nested keys as paths)."""
    parser = module.ArgumentParser
    original = parser.parse_args
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def parse_args(self: Any, *args: Any, **kwargs: Any) -> Any:
        namespace = original(self, *args, **kwargs)
        values = namespace.as_dict()

        def connect(_: Logger) -> None:
            for key, value in _changed(values, _now().arguments(copy.deepcopy(values))):
                namespace[key] = value

        _call("report", "jsonargparse options", connect)
        return namespace

    setattr(parse_args, MARK, True)
    parser.parse_args = parse_args


def patch_hydra_run_job(module: ModuleType, target: Target) -> None:
    """Hydra's composed config is connected as ``OmegaConf/...`` before the task function
    runs: recorded by hand, and a clone's overrides written into it under an agent."""
    original = module.run_job
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def run_job(task_function: Any, config: Any, *args: Any, **kwargs: Any) -> Any:
        @functools.wraps(task_function)
        def connected(cfg: Any) -> Any:
            _call("report", "the Hydra configuration", lambda _: _connect_omegaconf(cfg))
            return task_function(cfg)

        return original(connected, config, *args, **kwargs)

    setattr(run_job, MARK, True)
    setattr(module, "run_job", run_job)  # noqa: B010 - a module attribute mypy cannot see


def _connect_omegaconf(cfg: Any) -> None:
    from omegaconf import OmegaConf, open_dict

    values = OmegaConf.to_container(cfg, resolve=True)
    if not isinstance(values, dict):
        return
    chosen = dict(_now().task.connect(copy.deepcopy(values), name=OMEGACONF_SECTION))
    with open_dict(cfg):
        for key, value in _changed(values, chosen):
            OmegaConf.update(cfg, key, value, merge=False)


def _changed(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """The dotted keys whose values differ between two nested mappings, with the new ones."""
    found: list[tuple[str, Any]] = []
    for key, value in after.items():
        path = f"{prefix}{key}"
        old = before.get(key) if isinstance(before, dict) else None
        if isinstance(value, dict) and isinstance(old, dict):
            found += _changed(old, value, f"{path}.")
        elif value != old:
            found.append((path, value))
    return found


def patch_fire(fire: ModuleType, target: Target) -> None:
    """The arguments python-fire parses for the function, class or method it calls are
    connected as ``Args/<name>`` (defaults included), recorded by hand, overridden under an
    agent.

    Only the public ``fire.Fire`` is wrapped: the component it is handed is replaced by one
    whose callables keep their signatures (fire reads them through ``__wrapped__``) and
    connect the arguments fire calls them with. A ``Fire`` bound by ``from fire import
    Fire`` before ``Task.init`` is the unwrapped one: ``fire.Fire(...)`` is captured."""
    original = fire.Fire
    if getattr(original, MARK, False):
        return

    @functools.wraps(original)
    def fire_connected(component: Any = None, *args: Any, **kwargs: Any) -> Any:
        if component is None:
            # fire's own default, which it would look for in this wrapper's frame: the
            # caller's globals and locals.
            frame = sys._getframe(1)
            component = {**frame.f_globals, **frame.f_locals}
        return original(_fire_component(component), *args, **kwargs)

    setattr(fire_connected, MARK, True)
    setattr(fire, "Fire", fire_connected)  # noqa: B010 - a module attribute mypy cannot see
    core = sys.modules.get("fire.core")
    if core is not None and getattr(core, "Fire", None) is original:
        setattr(core, "Fire", fire_connected)  # noqa: B010


def _fire_component(component: Any) -> Any:
    """``component`` with its callables wrapped (a dict's values, a class's methods)."""
    import inspect  # with fire only: a training script without it never pays for inspect

    if isinstance(component, dict):
        return {key: _fire_component(value) for key, value in component.items()}
    if inspect.isclass(component):
        return _fire_class(component)
    if inspect.isfunction(component) or inspect.ismethod(component):
        return _fire_routine(component, skip_first=False)
    return component


def _fire_class(cls: type) -> type:
    """A subclass of ``cls`` whose ``__init__`` and public methods are connected."""
    import inspect

    namespace: dict[str, Any] = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
    }
    for name in dir(cls):
        if name.startswith("_") and name != "__init__":
            continue
        member = inspect.getattr_static(cls, name)
        if inspect.isfunction(member):  # not static or class methods, not object's slots
            namespace[name] = _fire_routine(member, skip_first=True)
    try:
        return type(cls)(cls.__name__, (cls,), namespace)
    except TypeError:  # a class that cannot be subclassed so: called as it is, uncaptured
        return cls


def _fire_routine(fn: Any, *, skip_first: bool) -> Any:
    import inspect

    if inspect.iscoroutinefunction(fn):
        return fn

    @functools.wraps(fn)
    def connected(*args: Any, **kwargs: Any) -> Any:
        bound = _bind(fn, args, kwargs)
        if bound is not None:
            names = list(bound.arguments)[1 if skip_first else 0 :]

            def connect(_: Logger) -> None:
                values = {name: bound.arguments[name] for name in names}
                bound.arguments.update(_now().arguments(values))

            _call("report", "fire arguments", connect)
            args, kwargs = bound.args, bound.kwargs
        return fn(*args, **kwargs)

    return connected


def _bind(fn: Any, varargs: Any, kwargs: Any) -> inspect.BoundArguments | None:
    import inspect

    try:
        bound = inspect.signature(fn).bind(*varargs, **kwargs)
    except (TypeError, ValueError):
        return None  # not a call the signature takes: fire's error, not ours
    bound.apply_defaults()
    kinds = {p.name: p.kind for p in bound.signature.parameters.values()}
    if any(
        kinds[n] in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        for n in bound.arguments
    ):
        return None  # *args / **kwargs have no names to record
    return bound


PATCHES: dict[str, list[tuple[str, Callable[[ModuleType, Target], None]]]] = {
    "matplotlib": [("matplotlib.pyplot", patch_pyplot), ("matplotlib.figure", patch_figure)],
    "pytorch": [("torch", patch_torch)],
    "joblib": [("joblib", patch_joblib)],
    "scikit": [("pickle", patch_pickle)],
    "tensorboard": [
        ("torch.utils.tensorboard.writer", patch_summary_writer),
        ("tensorboardX.writer", patch_summary_writer),
        ("tensorflow._api.v2.summary", patch_tf_writers),
        ("tensorflow.summary", patch_tf_writers),
        ("tensorboard.summary.v2", patch_tf_summary),
    ],
    "tensorflow": [("keras.src.models.model", patch_keras_model)],
    "click": [("click.core", patch_click)],
    "typer": [("typer._click.core", patch_click)],  # typer runs on its own copy of click
    "jsonargparse": [("jsonargparse", patch_jsonargparse)],
    "fire": [("fire", patch_fire)],
    "hydra": [
        ("hydra._internal.hydra", patch_hydra_run_job),
        ("hydra._internal.core_plugins.basic_launcher", patch_hydra_run_job),
    ],
}
"""What each ``auto_connect_frameworks`` name patches, by the module it waits for."""
