"""Predicted masks back at the image's resolution, the lungs clean-up, and the 0/255 PNG on disk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medtune.data.images import read_image, resize
from medtune.data.mask_files import clean_lungs, restore_plane, write_mask
from medtune.data.masks import read_mask
from tests.conftest import shared_path


@pytest.mark.parametrize("mode", ["squash", "pad", "crop"])
def test_restore_plane_undoes_the_resize(mode):
    """A real lung mask, resized as the store resizes an image, comes back where it was (IoU > 0.9)."""
    mask = read_mask(shared_path("lungseg", "masks", "Viral Pneumonia-10.png"))[:, 16:]  # 256 x 240: not square
    small = resize(mask[..., None].astype(np.uint8) * 255, 64, mode, "nearest")[..., 0] / 255.0
    back = restore_plane(small.astype(np.float32), mask.shape, mode) >= 0.5
    assert back.shape == mask.shape
    iou = (mask & back).sum() / (mask | back).sum()  # crop cuts 8 rows off the top and bottom: no lung there
    assert iou > 0.9


def test_clean_lungs_keeps_the_two_largest_regions_and_fills_holes():
    mask = np.zeros((40, 40), bool)
    mask[5:30, 3:15] = mask[5:30, 22:36] = True  # two lungs
    mask[10, 8] = False  # a hole
    mask[36:38, 36:38] = True  # a speck
    cleaned = clean_lungs(mask)
    assert not cleaned[36:38, 36:38].any() and cleaned[10, 8]
    assert cleaned.sum() == 25 * 12 + 25 * 14


def test_write_mask_gives_a_0_255_png_that_masks_folders_read(tmp_path):
    mask = np.zeros((30, 20), bool)
    mask[5:25, 4:16] = True
    path = write_mask(tmp_path / "x.png", mask)
    assert set(np.unique(np.asarray(Image.open(path)))) == {0, 255}
    assert (read_mask(path) == mask).all() and read_image(path).shape[:2] == (30, 20)
    assert not list(tmp_path.glob("*.tmp*"))
