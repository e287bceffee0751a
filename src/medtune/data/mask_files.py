"""Predicted masks as files: back from the working size to the image's own resolution, cleaned up, written.

The inverse of `medtune.data.images.resize` for a probability map (``squash``: stretched back; ``pad``: the
border cut off, then stretched; ``crop``: stretched back into the centre, outside it nothing), the ``lungs``
clean-up (the two largest regions, holes filled), and the 0/255 PNG that ``masks=FOLDER`` reads.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from medtune._io import atomic_open

#: Clean-ups ``postprocess=`` names.
POSTPROCESS = ("none", "lungs")


def restore_plane(plane: np.ndarray, shape: tuple[int, int], mode: str = "squash") -> np.ndarray:
    """A ``(size, size)`` float map at the working size, brought back to an image of ``(height, width)``
    (bilinear), undoing the resize `mode` the image went through.

    >>> restore_plane(np.ones((4, 4), np.float32), (2, 8), "pad").shape
    (2, 8)
    """
    size = plane.shape[0]
    height, width = shape
    if mode == "squash":
        return _stretch(plane, width, height)
    scale = (max if mode == "crop" else min)(size / height, size / width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if mode == "pad":
        left, top = (size - new_w) // 2, (size - new_h) // 2
        return _stretch(plane[top : top + new_h, left : left + new_w], width, height)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    canvas = np.zeros((new_h, new_w), np.float32)
    canvas[top : top + size, left : left + size] = plane
    return _stretch(canvas, width, height)


def _stretch(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def clean_lungs(mask: np.ndarray, keep: int = 2) -> np.ndarray:
    """The `keep` largest connected regions of a bool mask, with their holes filled (scipy.ndimage).

    >>> m = np.zeros((9, 9), bool); m[1:4, 1:4] = m[1:4, 5:8] = m[7, 7] = True; m[2, 2] = False
    >>> int(clean_lungs(m).sum())
    18
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask)
    if count > keep:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        kept = np.argsort(sizes)[::-1][:keep] + 1
        mask = np.isin(labels, kept)
    return ndimage.binary_fill_holes(mask)


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a bool ``(H, W)`` mask as an 8-bit PNG with 0 outside and 255 inside, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(f, format="PNG")
    return path
