"""Grad-CAM building blocks on real images and real networks: target layers, token reshapes, every method, the
espresso cup of a real ImageNet model, overlays and mask energy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medtune.cams import (
    TokenGrid,
    compute_cams,
    compute_mask_energy,
    create_overlay,
    create_reshape_transform,
    find_target_layer,
    list_methods,
)
from medtune.cams.layers import channels_first
from medtune.data.images import prepare, read_image
from medtune.errors import ConfigError, DataError
from medtune.models import create_classifier, create_model, resolve_preprocessing
from tests.conftest import shared_path

ESPRESSO, TENCH = 967, 0  # ImageNet classes


def xrays(size: int, count: int = 2) -> torch.Tensor:
    """Real chest X-rays from cxr3, prepared like the store: uint8 (count, 1, size, size)."""
    paths = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:count]
    return torch.from_numpy(np.stack([prepare(read_image(p), size, 1) for p in paths])).permute(0, 3, 1, 2)


def scratch_classifier(backbone: str):
    """A 1-channel, 2-class classifier with seeded random weights (these backbones have no weights offline); an
    unseeded draw can give a network whose map for a class is zero everywhere."""
    torch.manual_seed(0)
    return create_classifier(backbone, num_classes=2, in_chans=1, pretrained=False).eval()


@pytest.fixture(scope="module")
def imagenet_lite0():
    """tf_efficientnet_lite0 with the real ImageNet weights medtune ships, and its preprocessing."""
    model = create_model("tf_efficientnet_lite0", num_classes=1000)
    return model.eval(), resolve_preprocessing("tf_efficientnet_lite0")


@pytest.fixture(scope="module")
def coffee():
    """skimage's coffee photo at 224 px, and the same photo upside down: uint8 (2, 3, 224, 224)."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image ships the coffee photo")
    photo = prepare(skimage_data.coffee(), 224, 3)
    return torch.from_numpy(np.stack([photo, photo[::-1].copy()])).permute(0, 3, 1, 2)


# --- target layers and reshapes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backbone", "size", "default", "small", "reshape"),
    [
        ("tf_efficientnet_lite0", 128, "bn2", "blocks.4", None),  # conv_head + bn2 come after the last stage
        ("resnet18", 128, "layer4", "layer3", None),
        ("vit_tiny_patch16_224", 224, "blocks.11.norm1", "blocks.11.norm1", TokenGrid(1, (14, 14))),  # 224 px only
        ("swin_tiny_patch4_window7_224", 224, "norm", "norm", channels_first),  # (B, H, W, C) stages, 224 px only
    ],
)
def test_target_layer_reshape_and_maps(backbone, size, default, small, reshape):
    model = scratch_classifier(backbone)
    assert find_target_layer(model.backbone)[0] == default
    assert find_target_layer(model.backbone, image_size=size)[0] == default
    assert find_target_layer(model.backbone, image_size=64)[0] == small  # stride 32 is 2x2 at 64 px: too coarse
    assert create_reshape_transform(model.backbone) == reshape

    heat = compute_cams(model, resolve_preprocessing(backbone, 1), xrays(size), targets=[1, 1])
    assert heat.shape == (2, size, size) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    assert all(h.std() > 0.01 for h in heat), "a map that is flat points nowhere"


def test_channels_last_maps_are_turned_channels_first():
    nhwc = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    assert torch.equal(channels_first(nhwc)[1, :, 2, 3], nhwc[1, 2, 3])


def test_token_grid_puts_every_patch_back_in_its_place():
    rows, columns, prefix = 3, 4, 2  # class + distillation tokens, a non-square grid
    position = torch.arange(rows * columns, dtype=torch.float32)
    tokens = torch.cat([torch.full((prefix,), -1.0), position]).view(1, -1, 1).repeat(2, 1, 5)  # (2, 14, 5)
    maps = TokenGrid(prefix, (rows, columns))(tokens)
    assert maps.shape == (2, 5, rows, columns)
    assert torch.equal(maps[1, 3], position.view(rows, columns))  # token r * columns + c lands at (r, c)
    square = TokenGrid(1, (14, 14))(torch.zeros(2, 1 + 8 * 8, 6))  # another input size: a square grid
    assert square.shape == (2, 6, 8, 8)
    with pytest.raises(ConfigError, match="do not fill the grid"):
        TokenGrid(1, (14, 14))(torch.zeros(1, 1 + 10, 6))


def test_named_layer_and_close_matches_for_a_wrong_name():
    backbone = scratch_classifier("resnet18").backbone
    name, module = find_target_layer(backbone, "layer3")
    assert name == "layer3" and module is backbone.layer3
    with pytest.raises(ConfigError, match=r"ResNet has no layer 'layer5'. Did you mean 'layer4'"):
        find_target_layer(backbone, "layer5")


# --- the real-image check --------------------------------------------------------------------------------------


def cup_mask(upside_down: bool = False) -> np.ndarray:
    """The espresso cup of the 224 px coffee photo: rows 0-133, columns 56-167 (30% of the picture), chosen by
    looking at the overlay; it holds the cup and its rim, not the saucer or the spoon."""
    mask = np.zeros((224, 224), np.uint8)
    mask[:134, 56:168] = 255
    return mask[::-1] if upside_down else mask


def test_gradcam_finds_the_espresso_cup(imagenet_lite0, coffee):
    model, preprocessing = imagenet_lite0
    heat = compute_cams(model, preprocessing, coffee, targets=[ESPRESSO, ESPRESSO])
    area = cup_mask().mean() / 255  # the energy a uniform map puts there
    upright, upside_down = compute_mask_energy(heat[0], cup_mask()), compute_mask_energy(heat[1], cup_mask(True))
    assert upright > 1.8 * area, f"cup energy {upright:.2f}, uniform {area:.2f}"
    assert upside_down > 1.5 * area, f"upside-down cup energy {upside_down:.2f}: the map must follow the cup"
    table = np.zeros((224, 224), np.uint8)
    table[:, 180:] = 255  # the wooden table right of the saucer
    assert compute_mask_energy(heat[0], table) < 0.5 * table.mean() / 255


def test_the_target_class_changes_the_map(imagenet_lite0, coffee):
    model, preprocessing = imagenet_lite0
    espresso = compute_cams(model, preprocessing, coffee[:1], [ESPRESSO])
    tench = compute_cams(model, preprocessing, coffee[:1], [TENCH])
    assert np.abs(espresso - tench).mean() > 0.1


@pytest.mark.parametrize("method", list_methods())
def test_every_method_maps_every_image(imagenet_lite0, coffee, method):
    model, preprocessing = imagenet_lite0
    small = torch.nn.functional.interpolate(coffee.float(), size=64, mode="area").round().to(torch.uint8)
    heat = compute_cams(model, preprocessing, small, [ESPRESSO, ESPRESSO], method=method, batch_size=64)
    assert heat.shape == (2, 64, 64) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() <= 1
    assert all(h.std() > 0.01 for h in heat), f"{method}: a flat map"


def test_unknown_method_lists_the_valid_ones(imagenet_lite0, coffee):
    model, preprocessing = imagenet_lite0
    with pytest.raises(ConfigError, match=r"Did you mean 'gradcam'.*eigencam, gradcam, gradcam\+\+, hirescam"):
        compute_cams(model, preprocessing, coffee[:1], [ESPRESSO], method="gradcm")


def test_the_network_is_left_as_it_was_even_under_inference_mode():
    model = scratch_classifier("resnet18")
    model.backbone.layer1.requires_grad_(False)  # a partly frozen network keeps its flags
    flags = [p.requires_grad for p in model.parameters()]
    with torch.inference_mode():  # how medtune predicts; the maps need gradients all the same
        heat = compute_cams(model, resolve_preprocessing("resnet18", 1), xrays(128), [0, 1])
    assert heat.shape == (2, 128, 128) and heat.max() == pytest.approx(1.0, abs=1e-3)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks for m in model.modules()), "hooks left behind"
    with pytest.raises(ConfigError, match="network does not output"):
        compute_cams(model, resolve_preprocessing("resnet18", 1), xrays(128), [0, 5])
    with pytest.raises(DataError, match=r"expected a uint8 tensor \(N, 1, H, W\)"):
        compute_cams(model, resolve_preprocessing("resnet18", 1), xrays(128).permute(0, 2, 3, 1), [0, 1])


# --- overlays and mask energy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(32, 48), (32, 48, 1), (32, 48, 3)])
def test_overlay_is_rgb_and_red_where_hot(shape):
    image = np.full(shape, 128, np.uint8)
    heat = np.zeros((8, 12), np.float32)
    heat[:, :6] = 1.0  # hot left half, at another size than the image
    overlay = create_overlay(image, heat)
    assert overlay.shape == (32, 48, 3) and overlay.dtype == np.uint8
    hot, cold = overlay[:, :20].reshape(-1, 3).mean(0), overlay[:, 28:].reshape(-1, 3).mean(0)
    assert hot[0] > hot[2] + 50 and cold[2] > cold[0] + 50  # jet: red on the hot side, blue on the cold side
    with pytest.raises(DataError, match="expected uint8"):
        create_overlay(image.astype(np.float32), heat)


def test_mask_energy_on_hand_made_maps():
    heat = np.random.default_rng(0).random((16, 16)) + 0.01
    everywhere, nowhere = np.full((16, 16), 255, np.uint8), np.zeros((16, 16), np.uint8)
    assert compute_mask_energy(heat, everywhere) == pytest.approx(1.0)
    assert compute_mask_energy(heat, nowhere) == 0.0
    left = nowhere.copy()
    left[:, :8] = 1
    uniform = np.ones((16, 16))
    assert compute_mask_energy(uniform, left) == pytest.approx(0.5)
    corner = np.zeros((16, 16))
    corner[:4, :4] = 2.0
    assert compute_mask_energy(corner, left) == pytest.approx(1.0)
    big_left = np.zeros((64, 64, 1), np.uint8)  # a mask at the image's size, not the map's: resized (nearest)
    big_left[:, :32] = 255
    assert compute_mask_energy(uniform, big_left) == pytest.approx(0.5)
    assert np.isnan(compute_mask_energy(np.zeros((16, 16)), everywhere))
    with pytest.raises(DataError, match="negative"):
        compute_mask_energy(-uniform, everywhere)
