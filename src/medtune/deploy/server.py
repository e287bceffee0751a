"""The FastAPI application of ``medtune serve`` and the uvicorn runner."""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medtune.data.images import DECODERS
from medtune.deploy.service import (
    CONCURRENCY,
    MAX_UPLOAD_MB,
    BodyLimit,
    CamUnavailable,
    SimilarUnavailable,
    create_service,
    page_html,
)
from medtune.errors import ImageReadError, MissingDependencyError

try:  # at import time: FastAPI resolves the endpoint's annotations (UploadFile) from this module's names
    from fastapi import FastAPI, File, HTTPException, UploadFile
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse
except ImportError:  # pragma: no cover - the serve extra is part of dev
    raise MissingDependencyError("serving needs FastAPI: pip install 'medtune[serve]'") from None


def create_app(
    model: str | os.PathLike, max_upload_mb: float = MAX_UPLOAD_MB, concurrency: int = CONCURRENCY,
    index: str | os.PathLike | None = None,
) -> Any:  # fmt: skip
    """The ASGI application serving `model` (a run directory or an exported ``.onnx``), answering "similar cases"
    from `index` (default: the run's ``index/`` when it has one).

    >>> app = create_app("runs/pneumoniamnist-tf_efficientnet_lite0")  # doctest: +SKIP
    """
    predictor = create_service(model, index)
    slots = threading.BoundedSemaphore(concurrency)
    app = FastAPI(title="medtune", description=f"Predictions of {Path(model).name}")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return page_html()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model")
    def metadata() -> dict[str, Any]:
        return predictor.metadata()

    @app.post("/predict")
    async def predict(
        files: list[UploadFile] = File(...),  # noqa: B008
        cam: bool = False,
        similar: int = 0,
    ) -> list[dict[str, Any]]:
        uploads = []
        for upload in files:
            suffix = Path(upload.filename or "").suffix.lower()
            if suffix not in DECODERS:
                raise HTTPException(415, f"{upload.filename}: not an image medtune reads; send one of "
                                         f"{', '.join(sorted(DECODERS.names()))}")  # fmt: skip
            uploads.append((upload.filename or f"image{suffix}", await upload.read()))
        if not slots.acquire(blocking=False):
            raise HTTPException(503, "the server is busy with other predictions; try again in a moment")
        try:
            return await run_in_threadpool(predictor.run, uploads, cam, max(0, similar))
        except (CamUnavailable, SimilarUnavailable) as exc:
            raise HTTPException(400, str(exc)) from None
        except ImageReadError as exc:
            raise HTTPException(422, f"{exc.path}: {exc.reason}") from None
        finally:
            slots.release()

    return BodyLimit(app, int(max_upload_mb * 1e6))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    model: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    on_ready: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """Serve `model` with uvicorn until interrupted; `on_ready` is called once the model has loaded (a run that
    does not exist is refused before anything says it is served)."""
    import uvicorn

    app = create_app(model, **options)
    if on_ready is not None:
        on_ready()
    uvicorn.run(app, host=host, port=port, log_level="warning")
