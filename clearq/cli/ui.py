"""``clearq ui``: the orchestration web page."""

from __future__ import annotations

from typing import Annotated

import typer

from clearq.cli.context import cli_context
from clearq.cli.output import say

TOKEN_VARIABLE = "CLEARQ_UI_TOKEN"  # noqa: S105 (a variable's name, not a secret)


def ui_command(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to listen on; beyond 127.0.0.1 a token is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            envvar=TOKEN_VARIABLE,
            help="Every request must carry it (open /?token=... once); prefer the "
            f"{TOKEN_VARIABLE} variable, which `ps` does not show.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the workers, queues and tasks page from the database."""
    from clearq.ui import check_bind, serve  # the web stack loads only for this command

    check_bind(host, token)
    with cli_context(ctx).store() as store:
        shown = f"[{host}]" if ":" in host else host
        say(f"clearq ui on http://{shown}:{port}/ over {store.url} (Ctrl-C stops it)")
        serve(store, host=host, port=port, token=token)
