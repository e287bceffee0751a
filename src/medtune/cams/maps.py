"""Pure functions on heat maps: an overlay to look at, and the share of the heat inside a mask."""

from __future__ import annotations

import numpy as np
from PIL import Image

from medtune.errors import DataError


def create_overlay(image: np.ndarray, heat: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """The image with the heat map on top (jet colours: red is hot), via ``show_cam_on_image``.

    Args:
        image: uint8 gray ``(H, W)`` / ``(H, W, 1)`` or RGB ``(H, W, 3)``.
        heat: ``(h, w)`` in [0, 1]; resized (bilinear) to the image when the sizes differ.
        image_weight: share of the image in the blend.

    Returns:
        uint8 RGB ``(H, W, 3)``.

    Raises:
        DataError: the image is not uint8 gray or RGB, or the heat map is not 2-D.

    >>> create_overlay(np.zeros((4, 4), np.uint8), np.ones((2, 2), np.float32)).shape
    (4, 4, 3)
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = _as_rgb(image)
    heat = _as_heat(heat)
    if heat.shape != rgb.shape[:2]:
        heat = np.asarray(Image.fromarray(heat).resize(rgb.shape[1::-1], Image.Resampling.BILINEAR))
    heat = np.clip(np.nan_to_num(heat), 0.0, 1.0)
    return show_cam_on_image(rgb.astype(np.float32) / 255.0, heat, use_rgb=True, image_weight=image_weight)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise DataError(
            f"cannot overlay an image of shape {image.shape} and dtype {image.dtype}: expected uint8 (H, W), "
            "(H, W, 1) or (H, W, 3); convert with medtune.data.images.to_uint8"
        )
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def _as_heat(heat: np.ndarray) -> np.ndarray:
    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim == 3 and heat.shape[-1] == 1:
        heat = heat[..., 0]
    if heat.ndim != 2:
        raise DataError(
            f"a heat map must be 2-D (H, W), got shape {heat.shape}; pass one map of compute_cams' (N, H, W)"
        )
    return heat


def compute_mask_energy(heat: np.ndarray, mask: np.ndarray) -> float:
    """The fraction of the heat map's total energy (its sum) that lies inside the mask.

    1 means all the heat is on the masked region (the lungs), 0 that none is: a model that looks at text, markers
    or borders scores low. A uniform map scores the mask's area fraction.

    Args:
        heat: non-negative ``(H, W)`` map.
        mask: ``(h, w)`` or ``(h, w, 1)``; inside where > 0; resized (nearest) to the heat map when sizes differ.

    Returns:
        A fraction in [0, 1], or NaN when the map holds no energy.

    Raises:
        DataError: the map has negative values, or a map or mask is not 2-D.

    >>> compute_mask_energy(np.array([[1.0, 3.0]]), np.array([[0, 255]]))
    0.75
    """
    heat = _as_heat(heat).astype(np.float64)
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise DataError(f"a mask must be 2-D (H, W), got shape {mask.shape}; give one channel of 0 and 255")
    inside = mask > 0
    if inside.shape != heat.shape:
        resized = Image.fromarray(inside.astype(np.uint8)).resize(heat.shape[::-1], Image.Resampling.NEAREST)
        inside = np.asarray(resized) > 0
    if np.nanmin(heat) < 0:
        raise DataError(f"heat map has negative values (min {np.nanmin(heat):.3g}); energy needs a map >= 0")
    total = float(np.nansum(heat))
    if not np.isfinite(total) or total <= 0:
        return float("nan")
    return float(np.nansum(heat[inside]) / total)
