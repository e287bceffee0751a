"""``medtune serve``: a trained run or an exported model behind FastAPI: a page to drop images on, ``POST /predict``,
``GET /model`` and ``GET /health``.

Safe by default: the body of a request is capped while it is read (413, never buffered past the cap), an upload
that is not an image or DICOM is refused with its reason (415 for an unknown type, 422 for an unreadable file or
a decompression bomb), uploads live only in a temporary folder that is removed after the request, and at most
`concurrency` predictions run at once: the next request gets 503 instead of waiting in an unbounded queue.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtune.apply.guard import guard_of
from medtune.apply.predict import create_predictor, prediction_records, results_frame
from medtune.apply.scoring import load_model
from medtune.data.images import DECODERS, file_thumbnail, read_image
from medtune.data.mask_files import write_mask
from medtune.data.masks import prepare_masked
from medtune.errors import ImageReadError, MedtuneError
from medtune.runs import TrainedModel
from medtune.runs.segmasks import is_segmentation_run, segment_arrays
from medtune.runs.trained import load_segmenter, source_task

#: Shortest side of a Grad-CAM overlay sent to the page (small working sizes are enlarged, nearest neighbour).
CAM_DISPLAY = 192

#: Default cap of a request body, in megabytes.
MAX_UPLOAD_MB = 20.0
#: Default number of predictions that may run at once.
CONCURRENCY = 4


class BodyLimit:
    """ASGI middleware: answer 413 when a request body exceeds `limit` bytes, checked on the declared length and
    again while the body is received (a client that lies about its length or streams is stopped at the cap)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        received, exceeded = 0, False

        async def limited() -> dict:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded(message: dict) -> None:
            if not exceeded:  # once over the cap, the app's own answer (a parse error) is replaced by 413
                await send(message)

        with contextlib.suppress(_TooLarge):  # raised by `limited` when the app reads past the cap
            await self.app(scope, limited, guarded)
        if exceeded:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        import json

        body = json.dumps({"detail": f"the upload is larger than {self.limit / 1e6:g} MB; send fewer or smaller "
                                     "files, or start the server with a larger --max-upload-mb"}).encode()  # fmt: skip
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class CamUnavailable(MedtuneError):
    """Grad-CAM was asked of an exported model, which has no gradients to follow."""


class SimilarUnavailable(MedtuneError):
    """Similar cases were asked of a model served without an index of images."""


#: Most similar cases one request may ask for per image.
MAX_SIMILAR = 32
#: Side of a similar case's thumbnail sent to the page.
CASE_THUMB = 96


class Predictor:
    """The model and how its inputs are prepared, shared by every request."""

    def __init__(self, source: str | os.PathLike, index: str | os.PathLike | None = None) -> None:
        self.source = Path(source)
        self.cases = _case_finder(self.source, index)
        self.model = load_model(source)
        self.spec = self.model.resolved.spec
        self.predict = create_predictor(self.model, None)
        masks = self.model.config.masks
        # trained with masks=SEG_RUN: each upload is segmented by the same run before it is masked
        self.segmenter = load_segmenter(masks) if self.spec.mask != "none" and is_segmentation_run(masks) else None
        self._cam_lock = threading.Lock()  # Grad-CAM switches the weights' gradients: one map at a time
        # a run's guard (medtune guard): each answer says whether its image looks like the training images
        self.guard = guard_of(self.source, self.model)

    def metadata(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "model": str(self.source),
            "kind": "onnx" if self.source.suffix.lower() == ".onnx" else "run",
            "classes": list(self.model.classes),
            "task": self.model.task.name,
            "multilabel": self.model.task.labelled and not self.model.task.single_label,
            "thresholds": None if self.model.thresholds is None else list(self.model.thresholds),
            "image_size": int(config.image_size),
            "channels": int(config.channels),
            "backbone": config.backbone,
            "accepts": sorted(DECODERS.names()),
            "similar": None if self.cases is None else int(self.cases.index.meta["size"]),
            "guard": None if self.guard is None else {"share": self.guard.meta["share"]},
        }

    def run(self, uploads: list[tuple[str, bytes]], cam: bool = False, similar: int = 0) -> list[dict[str, Any]]:
        """`predict --probs` records for ``(file name, content)`` pairs; files are decoded in a temporary folder
        that is removed before returning. With `cam`, each record gets ``cam``: a PNG data URL of the image with
        its Grad-CAM map for the predicted class. With `similar`, it gets ``similar``: the indexed images nearest
        to it (rank, similarity, id, label, split and a thumbnail).

        Raises:
            ImageReadError: a file is not a readable image (its name and reason; nothing is predicted).
            CamUnavailable: `cam` for an exported model.
            SimilarUnavailable: `similar` without an index.
        """
        if cam and not isinstance(self.model, TrainedModel):
            raise CamUnavailable("Grad-CAM needs the run's network: serve the run directory, not its .onnx export")
        if similar and self.cases is None:
            raise SimilarUnavailable("no index of images to search: build one with `medtune index DATA RUN` (saved as "
                                     "RUN/index) or serve with --index DIR")  # fmt: skip
        needs_masks = self.spec.mask != "none" and self.segmenter is None
        if needs_masks and self.model.config.mask_missing != "whole":
            raise ImageReadError(
                "(request)",
                f"this model was trained with mask={self.spec.mask} and needs each image's mask; serve a model "
                "trained without masks or with mask_missing=whole",
            )
        names = [Path(name).name or "image" for name, _ in uploads]
        with tempfile.TemporaryDirectory(prefix="medtune-serve-") as tmp:
            arrays = []
            for i, (name, content) in enumerate(uploads):
                path = Path(tmp) / f"{i}{Path(name).suffix.lower()}"
                path.write_bytes(content)
                try:
                    image = read_image(path, self.spec.window, self.spec.frame)
                except ImageReadError as exc:
                    raise ImageReadError(names[i], exc.reason) from None
                mask = None
                if self.segmenter is not None:
                    [inside] = segment_arrays(self.segmenter, [image], postprocess=self.model.config.postprocess)
                    mask = str(write_mask(Path(tmp) / f"{i}.mask.png", inside))
                arrays.append(prepare_masked(image, mask, self.spec))
            paths = [str(Path(tmp) / f"{i}{Path(name).suffix.lower()}") for i, (name, _) in enumerate(uploads)]
            cases = self.cases.find(paths, min(similar, MAX_SIMILAR)) if similar else None
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        probs = self.predict(images)
        records = prediction_records(results_frame(names, self.model, probs, {}))
        if self.guard is not None:
            for record, score in zip(records, self.guard.score(images), strict=True):
                record.update(guard_score=round(float(score), 6), in_distribution=bool(score <= 1.0))
        if cases is not None:
            for record, path in zip(records, paths, strict=True):
                record["similar"] = _case_records(cases[cases["query"] == path])
        if cam:
            for record, overlay in zip(records, self.overlays(images, probs), strict=True):
                record["cam"] = overlay
        return records

    def overlays(self, images: torch.Tensor, probs: np.ndarray) -> list[str]:
        """Grad-CAM overlays (predicted class) of uint8 ``(N, C, H, W)`` images as PNG data URLs."""
        from PIL import Image

        from medtune.cams import compute_cams, create_overlay, find_target_layer

        trained = self.model
        layer, _ = find_target_layer(trained.cam_network.backbone, None, self.spec.size)
        with self._cam_lock:
            heat = compute_cams(
                trained.cam_network, trained.preprocessing, images, probs.argmax(axis=1), "gradcam", layer
            )
        urls = []
        for image, cam in zip(images, heat, strict=True):
            picture = image[: self.spec.channels].permute(1, 2, 0).numpy()
            overlay = Image.fromarray(create_overlay(picture, cam))
            scale = max(1, -(-CAM_DISPLAY // min(overlay.size)))
            overlay = overlay.resize((overlay.width * scale, overlay.height * scale), Image.Resampling.NEAREST)
            urls.append(_png_url(overlay))
        return urls


class MaskPredictor:
    """A segmenter (a run of ``medtune segment train`` or its ``.onnx`` export) behind the same API: each upload
    gets its predicted mask, at its own resolution, drawn over it, and the share of the image it covers."""

    def __init__(self, source: str | os.PathLike) -> None:
        self.source = Path(source)
        self.model = load_segmenter(source)
        self.spec = self.model.resolved.spec

    def metadata(self) -> dict[str, Any]:
        config = self.model.config
        return {
            "model": str(self.source),
            "kind": "onnx" if self.source.suffix.lower() == ".onnx" else "run",
            "task": self.model.task.name,
            "classes": [],
            "multilabel": False,
            "thresholds": None,
            "image_size": int(config.image_size),
            "channels": int(config.channels),
            "backbone": f"{config.arch} on {config.backbone}",
            "accepts": sorted(DECODERS.names()),
            "similar": None,
        }

    def run(self, uploads: list[tuple[str, bytes]], cam: bool = False, similar: int = 0) -> list[dict[str, Any]]:
        """One record per ``(file name, content)`` pair: ``file``, ``mask`` (a PNG data URL of the image with its
        mask drawn over it), ``area`` (the mask's share of the image), ``height`` and ``width``.

        Raises:
            ImageReadError: a file is not a readable image (its name and reason; nothing is predicted).
            CamUnavailable, SimilarUnavailable: asked of a segmenter, which has neither.
        """
        if cam:
            raise CamUnavailable("a segmenter's answer is its mask, drawn over each image; there is no class map")
        if similar:
            raise SimilarUnavailable("similar cases need a classifier's features; serve a classification run")
        images = []
        with tempfile.TemporaryDirectory(prefix="medtune-serve-") as tmp:
            for i, (name, content) in enumerate(uploads):
                path = Path(tmp) / f"{i}{Path(name).suffix.lower()}"
                path.write_bytes(content)
                try:
                    images.append(read_image(path, self.spec.window, self.spec.frame))
                except ImageReadError as exc:
                    raise ImageReadError(Path(name).name or "image", exc.reason) from None
        masks = segment_arrays(self.model, images, postprocess=self.model.config.postprocess)
        return [
            {"file": Path(name).name or "image", "mask": _png_url(mask_overlay(image, mask)),
             "area": round(float(mask.mean()), 6), "height": int(mask.shape[0]), "width": int(mask.shape[1])}
            for (name, _), image, mask in zip(uploads, images, masks, strict=True)
        ]  # fmt: skip


def mask_overlay(image: np.ndarray, mask: np.ndarray) -> Any:
    """The image (gray or colour, as uint8) with its mask tinted over it and the mask's edge drawn, as a PIL image."""
    from PIL import Image

    from medtune.data.images import to_channels, to_uint8

    rgb = to_channels(to_uint8(image), 3).astype(np.float32)
    tint = np.array([47, 111, 221], dtype=np.float32)
    rgb[mask] = 0.6 * rgb[mask] + 0.4 * tint
    edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    rgb[edge] = tint
    return Image.fromarray(rgb.astype(np.uint8))


def create_service(source: str | os.PathLike, index: str | os.PathLike | None = None) -> Predictor | MaskPredictor:
    """What ``medtune serve SOURCE`` answers with: a classifier's `Predictor`, or a segmenter's `MaskPredictor`
    (the source's task says which)."""
    if source_task(source).labelled:
        return Predictor(source, index)
    if index is not None:
        raise MedtuneError("--index finds similar cases for a classifier; a segmenter is served without one")
    return MaskPredictor(source)


def _case_finder(source: Path, index: str | os.PathLike | None) -> Any:
    """The index to answer "similar cases" from: `index`, else the run's own ``index/`` when it has one."""
    from medtune.features.similar import META_FILE, CaseFinder, load_index

    if index is None and not (source / "index" / META_FILE).is_file():
        return None
    return CaseFinder(load_index(index if index is not None else source))


def _case_records(found: Any) -> list[dict[str, Any]]:
    cases = []
    for row in found.itertuples(index=False):
        cases.append({"rank": int(row.rank), "similarity": float(row.similarity), "id": str(row.id),
                      "label": None if row.label is None else str(row.label),
                                "split": None if row.split is None else str(row.split),
                      "thumbnail": _thumbnail(str(row.path))})  # fmt: skip
    return cases


def _thumbnail(path: str) -> str | None:
    """A small PNG data URL of an indexed image (None for rows of an archive, or a file that has gone)."""
    from PIL import Image

    small = file_thumbnail(path, CASE_THUMB)
    return None if small is None else _png_url(Image.fromarray(small))


def _png_url(picture: Any) -> str:
    """A PIL image as a PNG data URL, for the page."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def page_html() -> str:
    """The self-contained page (inline style and script, no external file)."""
    return resources.files("medtune.deploy").joinpath("page.html").read_text(encoding="utf-8")
