"""Fixtures for model tests: a real photo, timm's evaluation transform, and hub settings that never reach a network."""

from __future__ import annotations

import pytest
import torch

ESPRESSO = 967  # ImageNet class of skimage's coffee photo


@pytest.fixture(scope="session")
def coffee():
    """skimage's coffee photo (a cup of espresso, ImageNet class 967) as a PIL image; it ships with scikit-image."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the coffee photo")
    from PIL import Image

    return Image.fromarray(skimage_data.coffee())


def eval_tensor(image, preprocessing) -> torch.Tensor:
    """A batch of one image through timm's own evaluation transform, built from a `Preprocessing`."""
    from timm.data import create_transform

    transform = create_transform(
        input_size=preprocessing.input_size,
        interpolation=preprocessing.interpolation,
        mean=preprocessing.mean,
        std=preprocessing.std,
        crop_pct=preprocessing.crop_pct,
        crop_mode=preprocessing.crop_mode,
    )
    return transform(image).unsqueeze(0)


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so a hub request cannot be served by files from earlier runs."""
    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache
