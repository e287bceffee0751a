"""Backbones: names, timm's stem and head adaptation on the packaged weights, and argument checks."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from medtune.errors import ConfigError
from medtune.models import DEFAULT_BACKBONES, create_model, list_models, resolve_preprocessing
from medtune.models.weights import packaged_weights_file
from tests.models.conftest import ESPRESSO, eval_tensor


@pytest.fixture(scope="module")
def lite0_weights():
    return load_file(packaged_weights_file("tf_efficientnet_lite0"))


def test_list_models_puts_defaults_first():
    assert (
        list_models()
        == list(DEFAULT_BACKBONES)
        == [
            "tf_efficientnet_lite0",
            "tf_efficientnet_lite1",
            "tf_efficientnet_lite2",
        ]
    )
    names = list_models("*efficientnet_lite*")
    assert names[:3] == list(DEFAULT_BACKBONES)
    assert "efficientnet_lite0" in names and len(names) == len(set(names))
    assert list_models("resnet1*")[0] == "resnet10t"
    assert "resnet18.a1_in1k" in list_models("resnet18*", pretrained=True)


def test_grayscale_stem_is_timms_sum_of_rgb_filters(lite0_weights):
    model = create_model("tf_efficientnet_lite0", num_classes=1000, in_chans=1).eval()
    expected = lite0_weights["conv_stem.weight"].sum(dim=1, keepdim=True)
    assert model.conv_stem.weight.shape == (32, 1, 3, 3)
    assert torch.equal(model.conv_stem.weight, expected)
    assert torch.equal(model.blocks[3][1].conv_dw.weight, lite0_weights["blocks.3.1.conv_dw.weight"])
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 224, 224))
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def test_grayscale_coffee_is_still_espresso(coffee):
    model = create_model("tf_efficientnet_lite0", num_classes=1000, in_chans=1).eval()
    with torch.no_grad():
        probs = model(eval_tensor(coffee.convert("L"), resolve_preprocessing("tf_efficientnet_lite0", 1))).softmax(-1)
    assert probs.argmax().item() == ESPRESSO


def test_other_num_classes_gets_a_new_head_and_keeps_the_body(lite0_weights):
    model = create_model("tf_efficientnet_lite0", num_classes=3, drop_rate=0.1).eval()
    assert model.classifier.out_features == 3
    assert torch.equal(model.conv_head.weight, lite0_weights["conv_head.weight"])
    assert torch.equal(model.conv_stem.weight, lite0_weights["conv_stem.weight"])
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 96, 96))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()


def test_no_pretrained_weights_needs_nothing():
    model = create_model("test_resnet.r160_in1k", num_classes=4, in_chans=1, pretrained=False)
    assert model.fc.out_features == 4 and model.conv1[0].in_channels == 1


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ConfigError, match=r"unknown backbone 'tf_efficientnet_lite9'.*Did you mean.*lite0"):
        create_model("tf_efficientnet_lite9", num_classes=2)
    with pytest.raises(ConfigError, match=r"Did you mean 'resnet50'"):
        create_model("resnet5O", num_classes=2)


def test_unknown_tag_lists_known_tags():
    with pytest.raises(ConfigError, match=r"tag 'in22k'.*tf_efficientnet_lite0.in1k"):
        create_model("tf_efficientnet_lite0.in22k", num_classes=2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": -1}, "num_classes must be an integer >= 0"),
        ({"num_classes": 2, "in_chans": 0}, "in_chans must be an integer >= 1"),
        ({"num_classes": 2, "pretrained": False, "weights": "w.pth"}, "pretrained=false"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        create_model("tf_efficientnet_lite0", **kwargs)


@pytest.mark.parametrize(("backbone", "size"), [("vit_tiny_patch16_224", 64), ("swin_tiny_patch4_window7_224", 64)])
def test_fixed_size_backbones_run_at_the_working_size(backbone, size):
    from medtune.models import create_classifier

    model = create_classifier(backbone, 3, in_chans=1, pretrained=False, image_size=size).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, size, size)).shape == (2, 3)


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_100", "ghostnet_100", "mambaout_femto", "convnext_atto"])
def test_head_fits_what_the_backbone_returns(backbone):
    """MobileNetV3, GhostNet and MambaOut return a pre-logits layer wider than their pooled features."""
    from medtune.models import create_classifier

    model = create_classifier(backbone, 3, in_chans=1, pretrained=False, head="pool-bn-dropout").eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 64, 64)).shape == (2, 3)
