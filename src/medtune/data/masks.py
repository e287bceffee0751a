"""Masks (lung fields, tissue regions) paired with images, and the three ways a classifier can use them.

A mask is a gray image, inside where it is above 0 (``{0, 255}`` or ``{0, 1}``; a colour mask counts any
channel). It comes from a manifest's mask column or from a folder of masks named like the images, and is resized
(nearest neighbour) to its image when only its resolution differs. The mask is applied when the image store is
built, at the image's own resolution, so every later step, random crops, rotations and flips included, moves the
image and its mask together:

- ``multiply``: pixels outside the mask become 0 (black);
- ``crop``: the image is cropped to the mask's bounding box plus a margin, then resized to the working size;
- ``channel``: the mask is stored as one more input channel (0 or 255), and the network gets one more input.

An image without a mask stops the run with the list of such images, unless ``mask_missing=whole`` says to use
the whole image (for ``channel``: a mask that covers everything).
"""

from __future__ import annotations

import glob
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medtune.data.images import IMAGE_SUFFIXES, read_image, resize, to_channels, to_uint8
from medtune.data.store_spec import MASK_MODES, StoreSpec
from medtune.errors import ConfigError, DataError, ImageReadError

if TYPE_CHECKING:
    import pandas as pd

    from medtune.config.schema import DataSettings
    from medtune.data.table import Table

#: Masks whose proportions differ from their image's by more than this share cannot be its mask.
_ASPECT_TOLERANCE = 0.02
_LISTED = 5


def find_mask(mask_dir: Path, image: str | os.PathLike) -> Path | None:
    """The mask of `image` in `mask_dir`: the same file name, else the same stem with any image suffix.

    >>> find_mask(Path("lungs/masks"), "images/Viral Pneumonia-10.png").name  # doctest: +SKIP
    'Viral Pneumonia-10.png'
    """
    image = Path(image)
    exact = mask_dir / image.name
    if exact.is_file():
        return exact
    others = sorted(p for p in mask_dir.glob(f"{glob.escape(image.stem)}.*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return others[0] if others else None


def read_mask(path: str | os.PathLike, shape: tuple[int, int] | None = None, image: str | None = None) -> np.ndarray:
    """A mask file as a boolean ``(H, W)`` array, resized (nearest) to `shape` when given.

    Args:
        path: the mask file (any format `medtune.read_image` reads).
        shape: the ``(height, width)`` of its image; a mask of the same proportions at another resolution is
            resized to it, one of other proportions is refused.
        image: the image's path, named in errors.

    Raises:
        ImageReadError: the mask cannot be decoded, is empty (nothing above 0), or has other proportions than
            its image.
    """
    array = read_image(path)
    if array.ndim == 3:
        array = array.max(axis=-1)
    inside = array > 0 if np.issubdtype(array.dtype, np.integer) else array >= 0.5
    if not inside.any():
        raise ImageReadError(
            str(path),
            f"the mask{_of(image)} is empty (no pixel above 0); fix the mask, or remove it and set "
            "mask_missing=whole to use the whole image",
        )
    if shape is None or inside.shape == tuple(shape):
        return inside
    (h, w), (height, width) = inside.shape, shape
    if abs((w / h) / (width / height) - 1) > _ASPECT_TOLERANCE:
        raise ImageReadError(
            str(path),
            f"the mask is {w}x{h} pixels but its image{_of(image, ' ')}is {width}x{height}: other proportions, so "
            "it is not this image's mask; give the mask made for this image (same file name in the mask folder)",
        )
    rows = (np.arange(height) * h // height).clip(0, h - 1)
    cols = (np.arange(width) * w // width).clip(0, w - 1)
    return inside[rows[:, None], cols[None, :]]


def _of(image: str | None, after: str = "") -> str:
    return f" of {image}{after}" if image else after


def mask_box(inside: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """The bounding box ``(top, bottom, left, right)`` (exclusive ends) of a non-empty mask, grown by `margin`
    times its height and width on each side and clipped to the image.

    >>> inside = np.zeros((10, 10), bool); inside[4:6, 2:8] = True
    >>> mask_box(inside, 0.5)
    (3, 7, 0, 10)
    """
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    dy, dx = round((bottom - top) * margin), round((right - left) * margin)
    height, width = inside.shape
    return max(0, top - dy), min(height, bottom + dy), max(0, left - dx), min(width, right + dx)


def apply_mask(image: np.ndarray, inside: np.ndarray | None, mode: str, margin: float = 0.1) -> np.ndarray:
    """Apply a mask to an ``(H, W, C)`` uint8 image at its own resolution (before resizing).

    `inside` None means "no mask": the whole image is used (``channel`` gets a mask that covers everything).
    Returns ``(H', W', C)`` uint8, or ``(H, W, C + 1)`` for ``channel`` (the mask as 0/255 in the last channel).
    """
    if mode not in MASK_MODES:
        raise ConfigError(f"mask mode {mode!r} is unknown; expected one of {', '.join(MASK_MODES)}")
    if mode == "none":
        return image
    if inside is None:
        inside = np.ones(image.shape[:2], dtype=bool)
    if mode == "multiply":
        return image * inside[..., None].astype(np.uint8)
    if mode == "crop":
        top, bottom, left, right = mask_box(inside, margin)
        return image[top:bottom, left:right]
    return np.concatenate([image, inside[..., None].astype(np.uint8) * 255], axis=-1)


def prepare_masked(image: np.ndarray, mask: str | None, spec: StoreSpec) -> np.ndarray:
    """The store preprocessing of one decoded image with its mask file (None: none, or a stated fallback).

    Returns ``(size, size, spec.stored_channels)`` uint8. The image is resized with the spec's filter; a mask
    channel with nearest neighbour, so it stays 0 or 255.
    """
    base = to_channels(to_uint8(image), spec.channels)
    if spec.mask == "none":
        return resize(base, spec.size, spec.resize, spec.interpolation)
    inside = None if mask is None else read_mask(mask, base.shape[:2])
    masked = apply_mask(base, inside, spec.mask, spec.mask_margin)
    if spec.mask == "crop" or inside is None:
        pixels = resize(np.ascontiguousarray(masked[..., : spec.channels]), spec.size, spec.resize, spec.interpolation)
        return pixels if spec.mask != "channel" else np.concatenate([pixels, np.full_like(pixels[..., :1], 255)], -1)
    if spec.mask == "multiply":
        pixels = resize(masked, spec.size, spec.resize, spec.interpolation)
        # resampling blurs the edge outwards: zero again outside the mask at the working size
        return pixels * (_resized_plane(inside, spec) > 0)
    pixels = resize(np.ascontiguousarray(masked[..., :-1]), spec.size, spec.resize, spec.interpolation)
    return np.concatenate([pixels, _resized_plane(inside, spec)], axis=-1)


def _resized_plane(inside: np.ndarray, spec: StoreSpec) -> np.ndarray:
    """The mask at the working size (nearest neighbour, the spec's resize mode) as ``(size, size, 1)`` 0/255."""
    return resize(inside[..., None].astype(np.uint8) * 255, spec.size, spec.resize, "nearest")


def attach_masks(table: Table, config: DataSettings, targets: bool = False) -> Table:
    """Give `table` its masks as the data section `config` says, and check that every image has one (`targets`:
    the masks are what a segmenter learns, not an input of a classifier).

    Masks come from the manifest's mask column, or from ``masks=FOLDER`` (paired by file name, which takes
    precedence). With ``mask=none`` nothing is attached; masks given without a mode are a configuration error.

    Raises:
        ConfigError: ``masks=`` names no folder, or masks are given with ``mask=none``.
        DataError: images without a mask (listed) while ``mask_missing=error``, or mask files that do not exist.
    """
    frame = table.frame.copy()
    if config.mask_missing == "predict" and not (config.masks is None and frame["mask"].map(bool).all()):
        raise ConfigError(
            "mask_missing=predict segments the images without a mask, so it needs masks=SEG_RUN (a run of "
            "`medtune segment train`); give one, or choose mask_missing=error or whole"
        )
    if config.masks is not None:
        frame["mask"] = _folder_masks(frame, config, targets)
    if config.mask == "none":
        if config.mask_column is not None:
            raise ConfigError(
                f"mask_column={config.mask_column} is given but mask=none; choose how to use the masks: "
                "mask=multiply, crop or channel"
            )
        return table.with_frame(frame.assign(mask=None))
    has = frame["mask"].map(lambda m: isinstance(m, str) and bool(m))
    if not has.any() and targets:
        where = f"no image of {table.source} has a mask in {config.masks}" if config.masks else "no masks were given"
        raise DataError(
            f"segmentation learns from masks, but {where}: give masks=FOLDER with one mask per image under the "
            "image's file name (images/NAME.png and masks/NAME.png), or a manifest with a mask column"
        )
    if not has.any():
        raise DataError(
            f"mask={config.mask} needs masks, but {table.source} has none: give masks=FOLDER (masks named like the "
            "images) or a manifest with a mask column (mask_column=COLUMN)"
        )
    absent = [m for m in frame.loc[has, "mask"] if not Path(m).is_file()]
    if absent:
        raise DataError(
            f"{len(absent)} mask file(s) do not exist, e.g. {', '.join(absent[:_LISTED])}; fix the mask column's "
            "paths (relative paths are resolved against the CSV)"
        )
    missing = frame.loc[~has, "path"].tolist()
    if missing and config.mask_missing == "error":
        where = f" in {config.masks}" if config.masks else ""
        raise DataError(
            f"{len(missing)} of {len(frame)} image(s) have no mask{where}, e.g. "
            f"{', '.join(Path(str(p)).name for p in missing[:_LISTED])}; add their masks (same file name), leave "
            "those images out, or set mask_missing=whole to use their whole image"
        )
    notes = [f"masks for {int(has.sum())} of {len(frame)} image(s), used as mask={config.mask}"]
    if missing:
        notes.append(f"{len(missing)} image(s) without a mask use the whole image (mask_missing=whole)")
    return replace(table.with_frame(frame), notes=(*table.notes, *notes))


def _folder_masks(frame: pd.DataFrame, config: DataSettings, targets: bool) -> list[str | None]:
    """The mask of each row from ``masks=FOLDER`` (None where the folder has none)."""
    folder = Path(str(config.masks)).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"masks={config.masks}: no such folder; give the folder of masks named like the images")
    if (folder / "config.yaml").is_file():  # a run; a classifier's segmentation run never reaches here
        other = "" if targets else ", or a run of `medtune segment train` to predict them"
        raise ConfigError(
            f"masks={config.masks} is a run directory, not a folder of masks: give the folder of masks named "
            f"like the images{other}"
        )
    if config.mask == "none":
        raise ConfigError(
            f"masks={config.masks} is given but mask=none; choose how to use them: mask=multiply, crop or channel"
        )
    found = [find_mask(folder, path) if isinstance(path, str) and not isinstance(array, str) else None
             for path, array in zip(frame["path"], frame["array"], strict=True)]  # fmt: skip
    return [None if p is None else str(p) for p in found]


def check_mask_folder(masks: str | os.PathLike | None) -> Path | None:
    """The folder of masks as a path (None stays None).

    Raises:
        DataError: the folder does not exist.
    """
    if masks is None:
        return None
    folder = Path(masks).expanduser()
    if not folder.is_dir():
        raise DataError(f"mask folder {folder} does not exist; give a folder of masks named like the images")
    return folder


def read_mask_plane(path: str | os.PathLike, spec: StoreSpec) -> np.ndarray:
    """A mask file at the working size of `spec`, as its image is stored (same resizing, nearest neighbour):
    ``(size, size)`` uint8, 255 inside and 0 outside.

    Raises:
        ImageReadError: the mask cannot be decoded or is empty.
    """
    return _resized_plane(read_mask(path), spec)[..., 0]
