"""``medtune segment predict``: a 0/255 PNG mask per input image, at the input's own resolution, named like the
input (``NAME.png``: the layout ``masks=FOLDER`` reads), with the optional ``lungs`` clean-up.

Unreadable inputs are reported with their error; every other mask is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from medtune.apply.predict import collect_inputs
from medtune.data.images import read_image
from medtune.data.mask_files import write_mask
from medtune.errors import ConfigError, ImageReadError
from medtune.runs.segmasks import segment_arrays
from medtune.runs.trained import TrainedSegmenter, load_segmenter


def mask_name(path: str | os.PathLike) -> str:
    """The file name of an input's mask: its stem with ``.png``.

    >>> mask_name("scans/Viral Pneumonia-10.dcm")
    'Viral Pneumonia-10.png'
    """
    return f"{Path(path).stem}.png"


def segment_images(
    segmenter: TrainedSegmenter, paths: list[str], batch_size: int = 16, tta: bool | None = None,
    postprocess: str = "none",
) -> Iterator[tuple[str, np.ndarray | None, str | None]]:  # fmt: skip
    """Each input's bool mask at its own resolution (or its error), in input order, `batch_size` at a time."""
    config = segmenter.config
    for start in range(0, len(paths), batch_size):
        decoded: list[tuple[str, np.ndarray | None, str | None]] = []
        for path in paths[start : start + batch_size]:
            try:
                decoded.append((path, read_image(path, config.window, config.frame), None))
            except ImageReadError as exc:
                decoded.append((path, None, exc.reason))
            except (OSError, ValueError) as exc:
                decoded.append((path, None, f"{type(exc).__name__}: {exc}"))
        good = [image for _, image, _ in decoded if image is not None]
        masks = iter(segment_arrays(segmenter, good, tta, postprocess))
        for path, image, error in decoded:
            yield (path, None, error) if image is None else (path, next(masks), None)


def predict_masks(
    run: str | os.PathLike,
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    postprocess: str | None = None,
    tta: bool | None = None,
    batch_size: int = 16,
    on_image: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Write the mask of every input into `out` and return one row per input.

    Args:
        run: a run of ``medtune segment train``.
        inputs: image files, folders (recursive), glob patterns or CSV manifests.
        out: the folder for the masks (created).
        postprocess: ``none`` or ``lungs`` (default: the run's ``postprocess``).
        tta: average with the mirrored image's prediction (default: the run's ``tta``).
        batch_size: images per forward pass.
        on_image: called with 1 after each input (progress).

    Returns:
        Columns ``file, mask, height, width, area, error``: ``area`` is the mask's share of the image; ``mask`` and
        the sizes are empty where ``error`` says why the input could not be read.

    >>> predict_masks("runs/lungseg-unet-tf_efficientnet_lite0", ["xrays/"], "masks/")  # doctest: +SKIP
    """
    segmenter = load_segmenter(run)
    paths = collect_inputs(inputs)
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"--out {folder} is a file; masks are written into a folder: give a folder's name")
    folder.mkdir(parents=True, exist_ok=True)
    rows, taken = [], {}
    clean = postprocess or segmenter.config.postprocess
    for path, mask, error in segment_images(segmenter, paths, batch_size, tta, clean):
        name = mask_name(path)
        if error is None and name in taken:
            error = f"{taken[name]} has the same file name, and masks are named like their image; rename one"
        row = {"file": path, "mask": None, "height": None, "width": None, "area": None, "error": error}
        if error is None:
            taken[name] = path
            row.update(mask=str(write_mask(folder / name, mask)), height=mask.shape[0], width=mask.shape[1],
                       area=round(float(mask.mean()), 6))  # fmt: skip
        rows.append(row)
        if on_image:
            on_image(1)
    return pd.DataFrame(rows, columns=["file", "mask", "height", "width", "area", "error"])
