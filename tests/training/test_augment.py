"""Augmentation presets, per-transform keys and the transform's output."""

from __future__ import annotations

import torch

from medtune.config import load_config
from medtune.training.augment import AUGMENT_PRESETS, create_train_transform, resolve_augment


def test_presets_and_overrides():
    assert AUGMENT_PRESETS.names() == ["none", "flip", "medical"]
    assert create_train_transform(resolve_augment(load_config(augment="none").sections.augmentation), 32) is None
    flip = resolve_augment(load_config(augment="flip", rotate=5).sections.augmentation)
    assert (flip.hflip, flip.rotate, flip.crop_scale) == (0.5, 5.0, 1.0)
    medical = resolve_augment(load_config(hflip=0).sections.augmentation)
    assert medical.hflip == 0.0 and medical.rotate == 10.0 and medical.crop_scale == 0.8


def test_medical_transform_keeps_shape_and_dtype_and_varies_per_image():
    transform = create_train_transform(resolve_augment(load_config(augment="medical").sections.augmentation), 32)
    image = torch.arange(32 * 32, dtype=torch.int32).reshape(1, 32, 32).remainder(256).to(torch.uint8)
    torch.manual_seed(0)
    outputs = [transform(image) for _ in range(4)]
    assert all(o.shape == (1, 32, 32) and o.dtype == torch.uint8 for o in outputs)
    assert len({o.numpy().tobytes() for o in outputs}) == 4


def test_flip_only_mirrors():
    transform = create_train_transform(resolve_augment(load_config(augment="flip", hflip=1.0).sections.augmentation), 8)
    image = torch.arange(64, dtype=torch.uint8).reshape(1, 8, 8)
    assert torch.equal(transform(image), image.flip(-1))
