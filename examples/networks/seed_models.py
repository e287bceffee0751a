"""Networks of your own, kept in a file as the COVID write-up kept its models/ folder.

Each is a class or a function that medtune calls with ``num_classes`` and ``in_chans`` (and ``pretrained`` when it
takes that parameter: True when training, False when a trained run is rebuilt to load its weights). Train one with

    medtune train DATA backbone=examples/networks/seed_models.py:Lite0MLPHead

The network's last ``nn.Linear`` is its head (``strategy=freeze`` trains it alone); ``pretrained_cfg`` gives its
input normalisation (ImageNet's when absent).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from medtune.models import create_model


class Lite0MLPHead(nn.Module):
    """EfficientNet-Lite0 with its packaged ImageNet weights and the write-ups' two-layer head: Dense(256), ReLU,
    Dropout(0.3), Dense(num_classes)."""

    def __init__(self, num_classes: int, in_chans: int, pretrained: bool = True) -> None:
        super().__init__()
        self.body = create_model("tf_efficientnet_lite0", num_classes=0, in_chans=in_chans, pretrained=pretrained)
        self.hidden = nn.Sequential(nn.Linear(self.body.num_features, 256), nn.ReLU(), nn.Dropout(0.3))
        self.classifier = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.hidden(self.body(x)))


# Lite0's weights were trained on inputs scaled to [-1, 1], not on ImageNet's mean and standard deviation.
Lite0MLPHead.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic"}


def resnet18_dropout(num_classes: int, in_chans: int) -> nn.Module:
    """torchvision's ResNet-18 with Dropout(0.5) before its last layer, as the write-up's ResNet18 variants; random
    weights (torchvision downloads its pretrained ones, and there is no download at run time here)."""
    network = torchvision.models.resnet18(weights=None)
    if in_chans != 3:
        network.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
    network.fc = nn.Sequential(nn.Dropout(0.5), nn.Linear(network.fc.in_features, num_classes))
    return network


class SmallCNN(nn.Module):
    """A small network trained from scratch: four convolution blocks, global pooling, one linear layer."""

    def __init__(self, num_classes: int, in_chans: int, width: int = 32) -> None:
        super().__init__()
        blocks, channels = [], in_chans
        for scale in (1, 2, 4, 8):
            blocks += [nn.Conv2d(channels, width * scale, 3, padding=1, bias=False), nn.BatchNorm2d(width * scale),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]  # fmt: skip
            channels = width * scale
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))
