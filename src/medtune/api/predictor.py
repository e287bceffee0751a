"""`medtune.load`: a run or an exported model opened once, answering for files, folders, numpy arrays and PIL images.

Images in memory take the path files take after decoding: `medtune.apply.predict.prepare_image` is the store
preprocessing `predict` applies to each decoded file (to uint8, to the run's channels, resized with its filter),
then the same batches, network, calibration and guard (`medtune.apply.predict.score_batches` and ``decide``). A
numpy array therefore gets exactly the probabilities of a PNG file holding the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL.Image import Image

    from medtune.api.outcomes import Predictions


#: Model files `load` opens besides run directories.
MODEL_SUFFIXES = (".onnx", ".ckpt")


def check_source(source: str | os.PathLike) -> Path:
    """`source` as a path to a run directory, an exported ``.onnx`` or a ``.ckpt`` file.

    Raises:
        DataError: it does not exist, or is a file of another kind (named, with what to give instead).
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist; give a run directory written by `medtune train` (runs/<name>) or a "
                        "model.onnx written by `medtune export`")  # fmt: skip
    if path.is_file() and path.suffix.lower() not in MODEL_SUFFIXES:
        raise DataError(f"{path} is neither a run directory nor an exported model (.onnx); give the folder "
                        "`medtune train` wrote, or the model.onnx of `medtune export`")  # fmt: skip
    return path


def _is_pil(value: Any) -> bool:
    from PIL import Image

    return isinstance(value, Image.Image)


def pil_pixels(image: Image) -> np.ndarray:
    """A PIL image's pixels as an image file of it decodes to (`medtune.data.images.pil_to_array`: its EXIF
    orientation applied, palette and 16-bit modes kept as the readers keep them)."""
    from PIL import ImageOps

    from medtune.data.images import pil_to_array

    return pil_to_array(ImageOps.exif_transpose(image) or image)


def check_array(array: np.ndarray, what: str = "the array") -> list[np.ndarray]:
    """The images of an array: ``(H, W)`` or ``(H, W, C)`` is one image, ``(N, H, W)`` or ``(N, H, W, C)`` a batch
    (C is 1 or 3, channels last; a 3-D array whose last axis is 1, 3 or 4 is one image).

    Raises:
        DataError: a dtype that is not numbers, another number of axes or channels, or an empty image (the shape
            and dtype named, with what is expected).
    """
    import numpy as np

    if array.dtype == np.bool_ or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise DataError(f"{what} has dtype {array.dtype}; expected pixels as uint8 (0-255), another integer type or "
                        "float (0-1, or any range, stretched min..max as 16-bit files are): convert it with "
                        ".astype(np.uint8) or .astype(np.float32)")  # fmt: skip
    single = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3, 4))
    images = [array] if single else list(array) if array.ndim in (3, 4) else []
    if not images:
        raise DataError(f"{what} has shape {array.shape}; expected one image (H, W) or (H, W, C), or a batch "
                        "(N, H, W) or (N, H, W, C), with C = 1 or 3 channels last")  # fmt: skip
    for image in images:
        channels = image.shape[-1] if image.ndim == 3 else 1
        if channels not in (1, 3) or min(image.shape[:2]) < 1:
            fix = "drop the alpha channel: image[..., :3]" if channels == 4 else "give channels last, 1 or 3 of them"
            raise DataError(f"{what} holds an image of shape {image.shape}; expected (H, W), (H, W, 1) or (H, W, 3) "
                            f"with H, W >= 1: {fix}")  # fmt: skip
    return images


def _kind(item: Any) -> str:
    import numpy as np

    if isinstance(item, np.ndarray):
        return "array"
    return "image" if _is_pil(item) else "path" if isinstance(item, str | os.PathLike) else type(item).__name__


def in_memory(images: Any) -> tuple[list[np.ndarray], list[str]] | None:
    """The decoded images and their names when `images` holds images in memory (an array, a PIL image, or a list
    of them); None when it holds paths.

    Raises:
        DataError: a list that mixes paths and images, or holds something that is neither.
    """
    import numpy as np

    items = images if isinstance(images, list | tuple) else [images]
    kinds = {_kind(i) for i in items}
    if not items or kinds == {"path"}:
        return None
    if kinds - {"array", "image", "path"}:
        unknown = sorted(kinds - {"array", "image", "path"})
        raise DataError(f"cannot predict a {', '.join(unknown)}; give image paths (files, folders, globs, CSVs), numpy "
                        "arrays (H, W[, C]) or (N, H, W[, C]), PIL images, or a list of one of these")  # fmt: skip
    if "path" in kinds:
        raise DataError("a list that mixes paths and images in memory; predict the paths and the images separately")
    pixels, names = [], []
    for i, item in enumerate(items):
        if isinstance(item, np.ndarray):
            found = check_array(item, f"array {i}" if len(items) > 1 else "the array")
            start = len(names)
            names += [f"array[{start + j}]" for j in range(len(found))]
            pixels += found
        else:
            pixels.append(pil_pixels(item))
            names.append(getattr(item, "filename", "") or f"image[{len(names)}]")
    return pixels, names


def _batches(
    images: list[np.ndarray], model: Any, size: int
) -> Iterator[tuple[list[int], torch.Tensor, dict[int, str]]]:
    """``(indices, uint8 (B, C, H, W), {})`` batches of images in memory, prepared one batch at a time."""
    import numpy as np
    import torch

    from medtune.apply.predict import prepare_image

    for start in range(0, len(images), size):
        prepared = np.stack([prepare_image(image, model) for image in images[start : start + size]])
        yield list(range(start, start + len(prepared))), torch.from_numpy(prepared).permute(0, 3, 1, 2), {}


class Predictor:
    """A run (or exported model) opened once; call it on images for `Predictions`.

    Made by `medtune.load`; see there for the arguments.

    >>> predictor = medtune.load("runs/demo")  # doctest: +SKIP
    >>> predictor(np.zeros((28, 28), np.uint8))[0].label  # doctest: +SKIP
    'normal'
    """

    def __init__(
        self, model: str | os.PathLike, *, engine: str = "auto", tta: bool | None = None, batch_size: int = 64,
        workers: int | None = None, calibration: str | None = None, reject: bool = False,
    ) -> None:  # fmt: skip
        from medtune.apply.predict import open_model

        self.source = check_source(model)
        self.opened = open_model(self.source, engine, tta)
        self.batch_size, self.workers, self.calibration, self.reject = batch_size, workers, calibration, reject

    @property
    def classes(self) -> tuple[str, ...]:
        """The classes (multi-label: findings) in output order."""
        return tuple(self.opened.model.classes)

    @property
    def task(self) -> str:
        """The run's task: ``classify``, ``multilabel`` or ``ordinal``."""
        return str(self.opened.model.task.name)

    @property
    def image_size(self) -> int:
        """The working size every image is resized to."""
        return int(self.opened.model.config.image_size)

    def __call__(
        self, images: str | os.PathLike | np.ndarray | Image | Sequence[str | os.PathLike | np.ndarray | Image], *,
        path: str | None = None, outside_paths: bool = False, masks: str | os.PathLike | None = None,
        progress: bool | None = None,
    ) -> Predictions:  # fmt: skip
        """Predict images given as paths or in memory.

        Args:
            images: an image file, folder (searched recursively), glob pattern or CSV/TSV of paths; a numpy array
                ``(H, W)``, ``(H, W, C)`` or a batch ``(N, H, W[, C])`` (C = 1 or 3, channels last; uint8, other
                integers, or floats: 0-1 scaled by 255, other ranges stretched min..max as 16-bit files are); a
                PIL image; or a list of paths, or of arrays and PIL images.
            path: the path column of CSV inputs (auto-detected when None).
            outside_paths: let CSV inputs name images outside their folder with ``..``.
            masks: a folder of masks named like the image files, for a run trained with ``mask=...``.
            progress: a progress bar (default: when there is more than one batch).

        Returns:
            One `Prediction` per image, in order; an unreadable file gets its ``error`` instead of a label.

        Raises:
            DataError: an array of another shape or dtype, a list mixing paths and images, or no images found.
        """
        from medtune.api.outcomes import Predictions
        from medtune.apply.predict import collect_inputs, decide, predict_files, score_batches

        found = in_memory(images)
        if found is None:
            given = images if isinstance(images, list | tuple) else [images]
            paths = collect_inputs(given, path, outside_paths)
            show = len(paths) > self.batch_size if progress is None else progress
            frame = predict_files(self.opened, paths, self.batch_size, self.workers, masks, show, self.calibration,
                                  self.reject)  # fmt: skip
        else:
            pixels, names = found
            show = len(pixels) > self.batch_size if progress is None else progress
            scored = score_batches(self.opened, _batches(pixels, self.opened.model, self.batch_size), len(pixels), show)
            frame = decide(self.opened, names, scored, self.calibration, self.reject)
        return Predictions(frame, self.classes, str(self.source))

    def __repr__(self) -> str:
        engine = "onnxruntime" if self.opened.model.__class__.__name__ == "ExportedModel" else "PyTorch"
        guard = ", with its guard" if self.opened.guard is not None else ""
        return (f"Predictor({str(self.source)!r}: {self.task}, classes {list(self.classes)}, {self.image_size} px, "
                f"{engine}{guard})")  # fmt: skip


def load(
    model: str | os.PathLike, *, engine: str = "auto", tta: bool | None = None, batch_size: int = 64,
    workers: int | None = None, calibration: str | None = None, reject: bool = False,
) -> Predictor:  # fmt: skip
    """Open a trained run or an exported model once, to predict many images from Python.

    Args:
        model: a run directory written by ``medtune train`` (or its ``.ckpt``), or a ``model.onnx`` written by
            ``medtune export`` (predicted on onnxruntime).
        engine: ``auto`` (a run's exported model when it is current, else PyTorch), ``torch`` or ``onnx``.
        tta: average with the horizontal mirror (default: the run's ``tta``).
        batch_size: images per forward pass.
        workers: processes decoding image files (default: the run's ``workers``); images in memory need none.
        calibration: a calibration kept in the run (``medtune calibrate``): conformal sets, prevalence or
            thresholds.
        reject: withhold the answers of images the run's guard flags.

    Returns:
        A `Predictor`: call it on paths, numpy arrays or PIL images for `Predictions`.

    Raises:
        DataError: `model` does not exist, or is neither a run nor an exported model.

    >>> predictor = medtune.load("runs/demo")  # doctest: +SKIP
    >>> predictor(np.asarray(PIL.Image.open("xray.png"))).to_frame()  # doctest: +SKIP
    """
    return Predictor(model, engine=engine, tta=tta, batch_size=batch_size, workers=workers,
                     calibration=calibration, reject=reject)  # fmt: skip
