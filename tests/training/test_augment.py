"""Augmentation presets, per-transform keys and the transform's output."""

from __future__ import annotations

import pytest
import torch

from medtune.config import load_config
from medtune.errors import ConfigError
from medtune.training.augment import AUGMENT_PRESETS, create_mixup, create_train_transform, resolve_augment


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


def test_strength_scales_rotation_crop_and_jitter_but_not_flips():
    strong = resolve_augment(load_config(augment_strength=2.0).sections.augmentation)
    assert (strong.hflip, strong.rotate, strong.crop_scale, strong.brightness) == (0.5, 20.0, 0.6, 0.2)
    flips_only = resolve_augment(load_config(augment_strength=0.0).sections.augmentation)
    assert (flips_only.hflip, flips_only.rotate, flips_only.crop_scale, flips_only.contrast) == (0.5, 0.0, 1.0, 0.0)
    given = resolve_augment(load_config(augment_strength=2.0, rotate=5).sections.augmentation)
    assert given.rotate == 5.0  # a key set by hand is taken as given


def test_mixup_mixes_each_image_with_its_mirror_in_the_batch_and_mixes_the_labels_alike():
    torch.manual_seed(0)
    mix = create_mixup(load_config(mixup=0.4).sections.augmentation, 3, multi_label=False)
    images = torch.rand(4, 1, 8, 8)
    targets = torch.tensor([0, 2, 1, 0])
    mixed, soft = mix(images.clone(), targets)
    lam = float(soft[1, 2])  # image 1 (class 2) mixed with image 2 (class 1), its mirror in the batch
    assert 0.0 < lam <= 1.0 and torch.allclose(soft.sum(1), torch.ones(4))
    assert torch.allclose(mixed[1], lam * images[1] + (1 - lam) * images[2], atol=1e-6)
    assert torch.allclose(soft[1], torch.tensor([0.0, 1 - lam, lam]), atol=1e-6)
    assert create_mixup(load_config().sections.augmentation, 3, multi_label=False) is None


def test_cutmix_pastes_a_box_and_multi_label_targets_mix_as_dense_vectors():
    torch.manual_seed(1)
    mix = create_mixup(load_config(cutmix=1.0).sections.augmentation, 2, multi_label=True)
    images = torch.stack([torch.zeros(1, 16, 16), torch.ones(1, 16, 16)])
    mixed, soft = mix(images.clone(), torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    pasted = float(mixed[0].mean())  # image 0 (zeros) holds a box of image 1 (ones)
    assert torch.allclose(soft[0], torch.tensor([1 - pasted, pasted]), atol=1e-6)
    assert set(mixed.unique().tolist()) <= {0.0, 1.0}  # pasted, not blended


@pytest.mark.parametrize("keys", [{"task": "ordinal", "mixup": 0.2}, {"loss": "focal", "cutmix": 1.0}])
def test_mixing_is_refused_where_the_loss_takes_no_soft_labels(keys):
    with pytest.raises(ConfigError, match="set mixup=0 cutmix=0"):
        load_config(**keys)
