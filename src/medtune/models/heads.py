"""Classifier heads and the `Classifier`: a timm backbone (pooled features) followed by a registered head.

Keeping the backbone and the head apart lets the training strategies freeze one and not the other, give them
different learning rates, and lets Grad-CAM and export use the same plain module.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import nn

from medtune._registry import Registry
from medtune.errors import ConfigError
from medtune.models.backbones import create_model
from medtune.models.custom import NetworkSource, is_custom, network_source

#: Head builders: ``(num_features, num_classes, dropout) -> nn.Module``.
HEADS: Registry[Callable[[int, int, float], nn.Module]] = Registry("head")


@HEADS.register("linear")
def linear_head(num_features: int, num_classes: int, dropout: float) -> nn.Module:
    """Dropout, then one linear layer (timm's own classifier)."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(num_features, num_classes))


@HEADS.register("pool-bn-dropout")
def pool_bn_dropout_head(num_features: int, num_classes: int, dropout: float) -> nn.Module:
    """BatchNorm over the pooled features, dropout, then a linear layer (fastai's head, shortened)."""
    return nn.Sequential(nn.BatchNorm1d(num_features), nn.Dropout(dropout), nn.Linear(num_features, num_classes))


def list_heads() -> list[str]:
    """Names of the registered heads.

    >>> list_heads()
    ['linear', 'pool-bn-dropout']
    """
    return HEADS.names()


class Classifier(nn.Module):
    """A backbone that returns pooled features, and a head that turns them into class logits.

    Args:
        backbone: a timm model built with ``num_classes=0`` (global pooling, no classifier).
        head: maps the backbone's output ``(B, head_hidden_size or num_features)`` to ``(B, num_classes)``.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def create_classifier(
    backbone: str,
    num_classes: int,
    in_chans: int = 3,
    head: str = "linear",
    dropout: float = 0.2,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    image_size: int | None = None,
    source: NetworkSource | None = None,
) -> Classifier:
    """Build a `Classifier`: a timm backbone with pretrained weights and a new head.

    Args:
        backbone: timm model name (``tf_efficientnet_lite0``).
        num_classes: number of outputs.
        in_chans: input channels (1 for grayscale: timm adapts the stem).
        head: a registered head name (`list_heads`).
        dropout: dropout rate in the head.
        pretrained: start the backbone from pretrained weights.
        weights: local weights file for the backbone.
        image_size: the working size, for backbones built for one input size (vision transformers); others run
            at any size and ignore it.
        source: the recorded code of your own network (a trained run's), instead of reading `backbone` now.

    >>> model = create_classifier("tf_efficientnet_lite0", num_classes=3, in_chans=1, head="pool-bn-dropout")
    >>> model(torch.zeros(2, 1, 64, 64)).shape
    torch.Size([2, 3])
    """
    make_head = HEADS.get(head)
    if source is not None or is_custom(backbone):
        return _custom_classifier(source or network_source(backbone), num_classes, in_chans, head, dropout,
                                  pretrained, weights, image_size)  # fmt: skip
    body = create_model(backbone, num_classes=0, in_chans=in_chans, pretrained=pretrained, weights=weights)
    if image_size is not None:
        set_input_size(body, backbone, image_size)
    # What the backbone returns without a classifier: its pooled features, or for networks with a pre-logits layer
    # after pooling (MobileNetV3, GhostNet, MambaOut) that layer's width, which timm calls head_hidden_size.
    features = getattr(body, "head_hidden_size", None) or body.num_features
    return Classifier(body, make_head(features, num_classes, dropout))


def _custom_classifier(
    source: NetworkSource,
    num_classes: int,
    in_chans: int,
    head: str,
    dropout: float,
    pretrained: bool,
    weights: str | os.PathLike | None,
    image_size: int | None,
) -> Classifier:
    """Your own network as a `Classifier`: its final linear layer is the head (``head=linear`` keeps it; another
    head replaces it), the rest the body (`medtune.models.custom_build`)."""
    from medtune.models.custom_build import NoHead, build_network, split_network

    if weights is not None:
        raise ConfigError(
            f"weights={weights} loads into timm backbones; {source.label} is your own network: load its weights in "
            "your code (it is called with pretrained= when it takes that parameter)"
        )
    network = build_network(source, num_classes, in_chans, pretrained)
    body, last = split_network(network, source, num_classes, in_chans, image_size)
    if last is None:
        if head != "linear":
            raise ConfigError(
                f"head={head} replaces a network's final linear layer, but {source.label}'s output does not come "
                "from one; leave head= unset"
            )
        return Classifier(body, nn.Sequential(NoHead(num_classes)))
    new_head = nn.Sequential(last) if head == "linear" else HEADS.get(head)(last.in_features, num_classes, dropout)
    return Classifier(body, new_head)


def set_input_size(backbone: nn.Module, name: str, image_size: int) -> None:
    """Fit a backbone built for one input size (timm's vision transformers, Swin...) to `image_size`; timm resamples
    its position embeddings. Convolutional backbones take any size and are left as they are.

    Raises:
        ConfigError: the backbone cannot run at that size (a patch or window size that does not divide it).
    """
    patch_embed = getattr(backbone, "patch_embed", None)
    current = getattr(patch_embed, "img_size", None)
    if not hasattr(backbone, "set_input_size") or current is None or tuple(current) == (image_size, image_size):
        return
    try:
        backbone.set_input_size(img_size=(image_size, image_size))
    except (AssertionError, RuntimeError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"backbone {name!r} cannot run at image_size={image_size} ({type(exc).__name__}: {exc}); "
            f"use its own size, image_size={current[0]}"
        ) from None
