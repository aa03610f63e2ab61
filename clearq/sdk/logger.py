"""``Logger``: what the running task reports, written in batches.

Scalars and text here, plots in ``logger_plots``, debug samples (``report_image``,
``report_media``) here too; the names and arguments are ClearML's, so a reporting script
moves over with its import changed.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clearq.errors import InvalidInput
from clearq.sdk.logger_plots import PlotReports, checked_name

if TYPE_CHECKING:
    from clearq.sdk.reporter import Reporter
    from clearq.sdk.run import Run
    from clearq.sdk.task import Task

SUMMARY_TITLE = "Summary"


class Logger(PlotReports):
    """Reports into one task; get it with ``task.get_logger()`` or ``Logger.current_logger()``."""

    def __init__(self, task: Task) -> None:
        self._task = task
        self._upload_destination: str | None = None

    @classmethod
    def current_logger(cls) -> Logger:
        """The logger of the task this process runs."""
        from clearq.sdk.task import Task

        task = Task.current_task()
        if task is None:
            raise InvalidInput("no current task: call Task.init() first")
        return task.get_logger()

    def _run(self) -> Run:
        return self._task._role.own_run(self._task)

    def _reporter(self) -> Reporter:
        return self._run().reporter

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        """Report ``value`` of (title, series) at ``iteration``."""
        number = float(value)
        if math.isnan(number):
            raise InvalidInput(f"scalar {title}/{series} at iteration {iteration} is NaN")
        self._reporter().scalar((title, series, int(iteration), number))

    def report_single_value(self, name: str, value: float) -> None:
        """Report one summary number (title ``Summary``)."""
        self.report_scalar(SUMMARY_TITLE, name, value, 0)

    def report_text(self, msg: str, level: int = logging.INFO, print_console: bool = True) -> None:
        """Add a line of text to the task's log (and print it unless told not to)."""
        if print_console and self._task._role.console is not None:
            print(msg)  # the console tee copies it into the log
            return
        if print_console:
            print(msg)
        stream = "stderr" if level >= logging.WARNING else "stdout"
        self._reporter().log(stream, f"{msg}\n")

    # ---- debug samples ----------------------------------------------------------------

    def report_image(
        self,
        title: str,
        series: str,
        iteration: int | None = None,
        local_path: str | Path | None = None,
        image: Any = None,
        matrix: Any = None,
        max_image_history: int | None = None,
        delete_after_upload: bool = False,
        url: str | None = None,
    ) -> None:
        """Report an image: a file, a PIL image, a numpy array (H x W, x 3 or x 4; floats
        in [0, 1] are scaled) or the ``url`` of one stored elsewhere; exactly one.

        The last ``max_image_history`` images of a (title, series) are kept (100 when not
        given, every one when negative).
        """
        image = image if image is not None else matrix
        _exactly_one("report_image", local_path=local_path, image=image, url=url)
        if url is not None:
            self._report_url(title, series, iteration, url)
        elif local_path is not None:
            self._report_file(title, series, iteration, local_path, None, max_image_history)
            _delete_if(delete_after_upload, local_path)
        else:
            from clearq.sdk.samples import image_bytes

            encode = image_bytes(image)
            self._queue_sample(title, series, iteration, "png", encode, max_image_history)

    def report_media(
        self,
        title: str,
        series: str,
        iteration: int | None = None,
        local_path: str | Path | None = None,
        stream: Any = None,
        file_extension: str | None = None,
        max_history: int | None = None,
        delete_after_upload: bool = False,
        url: str | None = None,
    ) -> None:
        """Report a media file (audio, video, HTML, any file): a path, a stream (bytes or
        text; give ``file_extension``) or the ``url`` of one stored elsewhere; exactly one.
        """
        _exactly_one("report_media", local_path=local_path, stream=stream, url=url)
        if url is not None:
            self._report_url(title, series, iteration, url)
        elif local_path is not None:
            self._report_file(title, series, iteration, local_path, file_extension, max_history)
            _delete_if(delete_after_upload, local_path)
        else:
            from clearq.sdk.samples import extension_of

            extension = extension_of("", file_extension)
            self._report_bytes(
                title, series, iteration, extension, _stream_bytes(stream), history=max_history
            )

    def set_default_upload_destination(self, uri: str) -> None:
        """Where this logger's debug samples go (instead of the task's output location).

        Call it before the first sample: the destination of a run's samples is fixed by
        its first one.
        """
        self._upload_destination = str(uri)
        run = self._run()
        if run._samples is None:
            run.output_root = self._upload_destination

    def get_default_upload_destination(self) -> str | None:
        """Where this logger's debug samples go."""
        return self._upload_destination or self._task._role.output_root

    def _report_file(
        self,
        title: str,
        series: str,
        iteration: int | None,
        local_path: str | Path,
        file_extension: str | None,
        history: int | None,
    ) -> None:
        from clearq.sdk.samples import extension_of

        path = Path(local_path)
        try:
            data = path.read_bytes()  # now: the script may overwrite the file next
        except OSError as e:
            raise InvalidInput(f"cannot read the sample file {path}: {e}") from e
        extension = extension_of(path.name, file_extension)
        self._report_bytes(title, series, iteration, extension, data, history=history)

    def _report_bytes(
        self,
        title: str,
        series: str,
        iteration: int | None,
        extension: str,
        data: bytes,
        *,
        history: int | None,
    ) -> None:
        self._queue_sample(title, series, iteration, extension, lambda: data, history)

    def _queue_sample(
        self,
        title: str,
        series: str,
        iteration: int | None,
        extension: str,
        data: Any,
        history: int | None,
    ) -> None:
        from clearq.sdk.samples import DEFAULT_HISTORY, Sample

        run = self._run()
        sample = Sample(
            title=checked_name("title", title),
            series=checked_name("series", series),
            iteration=int(iteration or 0),
            extension=extension,
            data=data,
            history=DEFAULT_HISTORY if history is None else int(history),
        )
        run.reporter.sample(run.sample_files().job(sample))

    def _report_url(self, title: str, series: str, iteration: int | None, url: str) -> None:
        from clearq.sdk.samples import url_row

        row = url_row(
            checked_name("title", title), checked_name("series", series), int(iteration or 0), url
        )
        self._reporter().sample(lambda: row)

    def flush(self, wait: bool = True) -> None:
        """Write everything reported so far."""
        self._reporter().flush()


def _exactly_one(call: str, **given: Any) -> None:
    named = [
        name
        for name, value in given.items()
        if value is not None and not (isinstance(value, str) and not value)
    ]
    if len(named) != 1:
        got = ", ".join(named) or "none"
        raise InvalidInput(f"{call} takes exactly one of {', '.join(given)} (got {got})")


def _stream_bytes(stream: Any) -> bytes:
    if isinstance(stream, bytes | bytearray):
        return bytes(stream)
    if isinstance(stream, io.StringIO):
        return stream.getvalue().encode()
    if isinstance(stream, io.BytesIO):
        return stream.getvalue()
    read = getattr(stream, "read", None)
    if not callable(read):
        kind = type(stream).__name__
        raise InvalidInput(f"stream must be bytes or a file-like object, not a {kind}")
    data = read()
    return data.encode() if isinstance(data, str) else bytes(data)


def _delete_if(delete: bool, path: str | Path) -> None:
    if delete:
        Path(path).unlink(missing_ok=True)
