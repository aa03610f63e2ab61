"""The agent side of the attempt channel: a task's only door to the store.

DESIGN (the trust model). The database is for people and agents, never for a task's
code. A task an agent runs gets no database URL, no credentials and no ``CLEARQ_HOME``;
for the attempt it runs, the agent opens an :class:`AttemptChannel`: a unix socket in the
attempt's run folder (in Docker mode that socket alone is mounted into the container)
and a random token handed to the task in its environment. Every request carries the
token and names the attempt; the agent checks both, then applies the request itself,
with its own store and the attempt's fence, so what a task can do is exactly this:

- read its own task: the record, its parameters with overrides and with the
  ``${step.…}`` references the agent resolved, its own logs, scalars and artifacts;
- read its inputs: the record and artifacts of the other steps of its pipeline;
- write its own attempt's rows: parameters, log pieces (``stdout``/``stderr`` only, never
  the ``agent`` stream), scalars, plots, debug samples and artifact records (files under
  its own folder of the output location), its own models (OutputModel), and its own
  task's name, tags and comment; it may read models by id or name (InputModel);
- ask whether its attempt is still current and whether a stop was requested.

Anything else (another task's row, creating, cloning or enqueuing tasks, ending its
attempt, which the agent records from the exit code) is refused with ChannelRefused, as
is a request without the token or about another attempt. A superseded attempt's writes
are refused by the fence like the agent's own (LeaseLost).

Controller tasks (pipelines, HPO, services) must create and enqueue tasks; they get the
database URL, and so full access, only from an agent whose operator started it with
``--allow-controllers`` (``ExecutorConfig.allow_controllers``): every task such an agent
runs is trusted as the agent itself is.

The channel also keeps an agent's PostgreSQL connections a small constant: tasks open
none, their writes share the agent's pool (``benchmarks/agent_connections.py``).
"""

from __future__ import annotations

import hmac
import json
import secrets
import socketserver
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from clearq.config import Settings
from clearq.errors import ChannelRefused, ClearqError, InvalidInput
from clearq.models import STEP_KEY_PREFIX, Artifact, Fence, ModelRecord, Task
from clearq.ports import OutputReads, TaskRecords
from clearq.scheduler.runlink_results import PlotRow, SampleRow
from clearq.sdk.artifacts import is_local, local_root
from clearq.sdk.channel import MAX_LINE_BYTES, SOCKET_NAME, reachable

TASK_STREAMS = frozenset({"stdout", "stderr"})
"""The log streams a task may write; ``agent`` lines are the agent's own."""
CONTAINER_SOCKET = "/run/clearq/channel.sock"
"""Where Docker mode mounts the channel inside a task's container."""


class _ChannelOutputs(OutputReads, Protocol):
    def append_batch(
        self,
        fence: Fence,
        logs: Sequence[tuple[str, str]],
        points: Sequence[tuple[str, str, int, float]],
        *,
        plots: Sequence[PlotRow] = ...,
        samples: Sequence[SampleRow] = ...,
    ) -> None: ...
    def artifacts(self, task_id: uuid.UUID) -> list[Artifact]: ...
    def add_artifact(self, fence: Fence, artifact: Artifact) -> None: ...


class _Labels(Protocol):
    def annotate(
        self,
        task_id: uuid.UUID,
        *,
        name: str | None = ...,
        tags: Sequence[str] | None = ...,
        comment: str | None = ...,
    ) -> Task: ...


class _Models(Protocol):
    def save(self, fence: Fence, model: ModelRecord) -> ModelRecord: ...
    def get(self, model_id: uuid.UUID) -> ModelRecord: ...
    def find(self, name: str, *, project: str | None = ...) -> ModelRecord: ...
    def of_task(self, task_id: uuid.UUID) -> list[ModelRecord]: ...


class _ChannelTasks(TaskRecords, Protocol):
    def parents(self, task_id: uuid.UUID) -> list[uuid.UUID]: ...


class ChannelStore(Protocol):
    """What an attempt's channel uses of the store (``clearq.scheduler.Store`` has it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def tasks(self) -> _ChannelTasks: ...
    @property
    def outputs(self) -> _ChannelOutputs: ...
    @property
    def admin(self) -> _Labels: ...
    @property
    def registry(self) -> _Models: ...


class AttemptChannel:
    """One attempt's channel: a socket in its run folder and the token that opens it."""

    def __init__(self, store: ChannelStore, fence: Fence, folder: Path) -> None:
        self.fence = fence
        self.path = folder / SOCKET_NAME
        self.token = secrets.token_urlsafe(32)
        self._ops = _Operations(store, fence)
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def environment(self, socket_path: str | None = None) -> dict[str, str]:
        """The variables a task needs to use this channel (its path as the task sees it)."""
        return {
            "CLEARQ_CHANNEL": socket_path or str(self.path),
            "CLEARQ_CHANNEL_TOKEN": self.token,
        }

    def start(self) -> AttemptChannel:
        """Listen on the socket, answering from a thread of its own."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        handler = _handler(self.token, self._ops)
        with reachable(self.path) as name:
            server = socketserver.ThreadingUnixStreamServer(name, handler)
        server.daemon_threads = True
        # The token guards it; the mode lets a container's (or --task-user's) user connect.
        self.path.chmod(0o666)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"clearq-channel-{self.fence.task_id}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop answering and remove the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> AttemptChannel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(token: str, ops: _Operations) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while line := self.rfile.readline(MAX_LINE_BYTES):
                answer = _answer(token, ops, line)
                self.wfile.write(json.dumps(answer).encode() + b"\n")
                self.wfile.flush()

    return Handler


def _answer(token: str, ops: _Operations, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ChannelRefused("a channel request is one JSON object a line")
        if not hmac.compare_digest(str(request.get("token", "")), token):
            raise ChannelRefused("wrong or missing channel token: this channel is not yours")
        return {"ok": True, "result": ops.apply(request)}
    except ClearqError as e:
        return {"ok": False, "error": _kind(e), "message": str(e)}
    except (ValueError, TypeError, KeyError) as e:
        return {"ok": False, "error": "InvalidInput", "message": f"malformed request: {e}"}


def _kind(error: ClearqError) -> str:
    kinds = ("LeaseLost", "NotFound", "ChannelRefused", "InvalidInput", "StoreUnavailable")
    for kind in (*kinds, "StoreError"):
        if any(c.__name__ == kind for c in type(error).__mro__):
            return kind
    return "StoreError"


class _Operations:
    """What a task may ask of its attempt's channel, each applied with the attempt's fence."""

    def __init__(self, store: ChannelStore, fence: Fence) -> None:
        self._store = store
        self._fence = fence
        self._table: dict[str, Callable[[dict[str, Any]], Any]] = {
            "read": self._read,
            "record": self._record,
            "update_parameters": self._update_parameters,
            "append": self._append,
            "heartbeat": self._heartbeat,
            "summary": self._summary,
            "scalars": self._scalars,
            "logs": self._logs,
            "artifacts": self._artifacts,
            "artifacts_root": self._artifacts_root,
            "add_artifact": self._add_artifact,
            "annotate": self._annotate,
            "save_model": self._save_model,
            "model": self._model,
            "find_model": self._find_model,
            "models": self._models,
        }

    def apply(self, request: dict[str, Any]) -> Any:
        """The result of one request, once it is known to be about this attempt."""
        op = str(request.get("op"))
        self._check_scope(op, request)
        handler = self._table.get(op)
        if handler is None:
            raise ChannelRefused(
                f"{op!r} is not something a task may do through its agent's channel: a task "
                "reads and writes only its own attempt (creating, cloning or enqueuing tasks "
                "needs an agent started with --allow-controllers)"
            )
        args = request.get("args") or {}
        if not isinstance(args, dict):
            raise InvalidInput("a channel request's args are a JSON object")
        return handler(args)

    def _check_scope(self, op: str, request: dict[str, Any]) -> None:
        f = self._fence
        if uuid.UUID(str(request.get("task_id"))) != f.task_id:
            raise ChannelRefused(
                f"this channel serves task {f.task_id} only, not {request.get('task_id')}: "
                "a task cannot read or write another task's rows"
            )
        # "read" comes before the run knows its attempt; it writes nothing.
        if op != "read" and request.get("attempt") != f.attempt:
            raise ChannelRefused(
                f"this channel serves attempt {f.attempt} of task {f.task_id}, "
                f"not attempt {request.get('attempt')}"
            )

    # ---- reads of its own task ----------------------------------------------------------

    def _read(self, args: dict[str, Any]) -> dict[str, Any]:
        task = self._store.tasks.get(self._fence.task_id)
        return {
            "output_uri": self._artifacts_root({}),
            "id": str(task.id),
            "project": task.project,
            "name": task.name,
            "status": task.status.value,
            "attempt": self._fence.attempt,
            "worker": self._fence.worker,
            "parameters": dict(task.parameters),
        }

    def _record(self, args: dict[str, Any]) -> Any:
        return self._store.tasks.get(self._readable(args)).model_dump(mode="json")

    def _readable(self, args: dict[str, Any]) -> uuid.UUID:
        """The task a read is about: its own, or one of its inputs.

        A pipeline step reads what earlier steps made (``${step.artifacts.NAME}`` handed
        as the object): the tasks it depends on (``depends_on``) and the steps its
        pipeline's record names, as ``scheduler.references`` resolves them. No other task
        is readable.
        """
        own = self._fence.task_id
        wanted = uuid.UUID(str(args.get("of") or own))
        if wanted == own or wanted in self._store.tasks.parents(own):
            return wanted
        pipeline = self._store.tasks.get(own).parent_id
        steps = set()
        if pipeline is not None:
            record = self._store.tasks.get(pipeline)
            steps = {v for k, v in record.parameters.items() if k.startswith(STEP_KEY_PREFIX)}
        if str(wanted) not in steps:
            raise ChannelRefused(
                f"task {wanted} is neither this task nor a step of its pipeline: a task "
                "reads only its own rows and its pipeline's inputs (other tasks are for "
                "controller tasks, on an agent started with --allow-controllers)"
            )
        return wanted

    def _heartbeat(self, args: dict[str, Any]) -> dict[str, bool]:
        task, f = self._store.tasks.get(self._fence.task_id), self._fence
        held = task.status.value == "running" and (task.attempt, task.worker) == (
            f.attempt,
            f.worker,
        )
        return {"held": held, "stop_requested": held and task.stop_requested_at is not None}

    def _summary(self, args: dict[str, Any]) -> list[Any]:
        found = self._store.outputs.summary(self._fence.task_id)
        return [s.model_dump(mode="json") for s in found]

    def _scalars(self, args: dict[str, Any]) -> list[Any]:
        return [p.model_dump(mode="json") for p in self._store.outputs.scalars(self._fence.task_id)]

    def _logs(self, args: dict[str, Any]) -> list[Any]:
        limit = int(args.get("limit", 10_000))
        found = self._store.outputs.logs(self._fence.task_id, limit=limit)
        return [line.model_dump(mode="json") for line in found]

    def _artifacts(self, args: dict[str, Any]) -> list[Any]:
        found = self._store.outputs.artifacts(self._readable(args))
        return [a.model_dump(mode="json") for a in found]

    def _artifacts_root(self, args: dict[str, Any]) -> str:
        task = self._store.tasks.get(self._fence.task_id)
        return task.output_uri or str(self._store.settings.artifacts_dir)

    # ---- writes of its own attempt ------------------------------------------------------

    def _update_parameters(self, args: dict[str, Any]) -> dict[str, str]:
        values = args["values"]
        if not isinstance(values, dict):
            raise InvalidInput("parameters are a JSON object of text values")
        flat = {str(k): str(v) for k, v in values.items()}
        fence = self._fence
        return dict(
            self._store.tasks.update_parameters(fence.task_id, flat, fence=fence).parameters
        )

    def _append(self, args: dict[str, Any]) -> None:
        logs = [(str(s), str(t)) for s, t in args.get("logs") or ()]
        bad = {s for s, _ in logs} - TASK_STREAMS
        if bad:
            raise InvalidInput(f"a task writes only {sorted(TASK_STREAMS)}, not {sorted(bad)}")
        points = [(str(t), str(s), int(i), float(v)) for t, s, i, v in args.get("points") or ()]
        plots = [PlotRow(**p) for p in args.get("plots") or ()]
        samples = [SampleRow(**s) for s in args.get("samples") or ()]
        for sample in samples:
            self._check_own(f"debug sample {sample.title}/{sample.series}", sample.uri)
        self._store.outputs.append_batch(self._fence, logs, points, plots=plots, samples=samples)

    def _annotate(self, args: dict[str, Any]) -> Any:
        tags, name, comment = args.get("tags"), args.get("name"), args.get("comment")
        done = self._store.admin.annotate(
            self._fence.task_id,
            name=None if name is None else str(name),
            comment=None if comment is None else str(comment),
            tags=None if tags is None else [str(t) for t in tags],
        )
        return done.model_dump(mode="json")

    def _save_model(self, args: dict[str, Any]) -> Any:
        model = ModelRecord.model_validate(args["model"])
        if model.task_id != self._fence.task_id:
            raise ChannelRefused(f"model {model.id} is not this task's: a task saves its own")
        own = f"/{self._fence.task_id}/"
        uri = model.uri
        if uri is not None and is_local(uri) and own not in local_root(uri).resolve().as_posix():
            raise ChannelRefused(
                f"model {model.name!r} at {uri!r} is not in a folder of this task's"
            )
        return self._store.registry.save(self._fence, model).model_dump(mode="json")

    def _model(self, args: dict[str, Any]) -> Any:
        # An input model (InputModel): its row says where the weights are, nothing more.
        return self._store.registry.get(uuid.UUID(str(args["id"]))).model_dump(mode="json")

    def _find_model(self, args: dict[str, Any]) -> Any:
        project = args.get("project")
        found = self._store.registry.find(
            str(args["name"]), project=None if project is None else str(project)
        )
        return found.model_dump(mode="json")

    def _models(self, args: dict[str, Any]) -> list[Any]:
        found = self._store.registry.of_task(self._fence.task_id)
        return [m.model_dump(mode="json") for m in found]

    def _add_artifact(self, args: dict[str, Any]) -> None:
        artifact = Artifact.model_validate(args["artifact"])
        self._check_own(f"artifact {artifact.name!r}", artifact.uri, remote_anywhere=False)
        self._store.outputs.add_artifact(self._fence, artifact)

    def _check_own(self, what: str, uri: str, *, remote_anywhere: bool = True) -> None:
        """A local file a task records must lie in its own folder of the output location.

        Others reading it later (a pipeline's next step, the page) trust where it is.
        A debug sample may also be a link to any URL (``report_media(url=...)``).
        """
        root = self._artifacts_root({})
        own = f"{root.rstrip('/')}/{self._fence.task_id}/"
        if is_local(uri):
            folder = (local_root(root) / str(self._fence.task_id)).resolve()
            inside = local_root(uri).resolve().is_relative_to(folder)
        else:
            inside = remote_anywhere or (uri.startswith(own) and ".." not in uri)
        if not inside:
            raise ChannelRefused(
                f"{what} at {uri!r} is outside this task's folder ({own}): "
                "a task records only what it stored itself"
            )


__all__ = ["CONTAINER_SOCKET", "TASK_STREAMS", "AttemptChannel"]
