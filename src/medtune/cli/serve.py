"""``medtune serve``: a run or an exported model as a web page and a JSON API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import ModelArgument, console


def serve_command(
    model: ModelArgument,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (loopback unless told otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", min=0.001, help="Largest request body; bigger ones get 413.")
    ] = 20.0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, help="Predictions at once; more requests get 503.")
    ] = 4,
    index: Annotated[
        Path | None, typer.Option("--index", help="Index for similar cases (default RUN/index when built).")
    ] = None,
) -> None:
    """Serve a run or an exported model: a web page and a JSON API.

    GET / (a page to drop images on), POST /predict (files in, JSON as predict --probs
    writes it; ?similar=K adds the K most similar indexed images), GET /model, GET /health and the OpenAPI page
    at /docs."""
    from medtune.deploy.server import is_loopback, serve

    if not is_loopback(host):
        console.print(
            f"[yellow]warning:[/] serving on {host}: anyone who can reach this machine can send images to the model",
            highlight=False,
        )

    def ready() -> None:
        console.print(f"serving {Path(model)} on http://{host}:{port}/ (Ctrl+C to stop)", highlight=False)

    serve(model, host, port, ready, max_upload_mb=max_upload_mb, concurrency=concurrency, index=index)
