"""Segmentation networks: smp architectures on timm encoders, the packaged weights in the encoder, size checks."""

from __future__ import annotations

import pytest
import torch

from medtune.errors import ConfigError
from medtune.models.backbones import create_model
from medtune.models.segmenters import SEGMENTATION_ARCHS, check_segment_size, create_segmenter


def test_default_encoder_carries_the_packaged_imagenet_weights():
    """The U-Net's encoder holds the same Lite0 weights a pretrained classifier gets (stem summed to 1 channel)."""
    net = create_segmenter("unet", "tf_efficientnet_lite0", in_chans=1, pretrained=True)
    classifier = create_model("tf_efficientnet_lite0", num_classes=2, in_chans=1, pretrained=True)
    assert torch.equal(net.encoder.model.conv_stem.weight, classifier.conv_stem.weight)
    assert torch.equal(net.encoder.model.blocks[3][0].conv_pw.weight, classifier.blocks[3][0].conv_pw.weight)


@pytest.mark.parametrize("arch", ["unet", "fpn", "linknet", "deeplabv3plus"])
def test_architectures_map_an_image_to_one_logit_plane(arch):
    net = create_segmenter(arch, "tf_efficientnet_lite0", in_chans=1, pretrained=False).eval()
    with torch.inference_mode():
        assert net(torch.zeros(2, 1, 64, 64)).shape == (2, 1, 64, 64)


def test_unknown_arch_and_sizes_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"unknown segmentation architecture 'unett'.*unet"):
        create_segmenter("unett", "tf_efficientnet_lite0", pretrained=False)
    with pytest.raises(ConfigError, match=r"image_size=100 is not a multiple of 32.*image_size=96 or 128"):
        check_segment_size(100)
    assert "segformer" in SEGMENTATION_ARCHS
