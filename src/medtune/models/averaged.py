"""Several trained classifiers as one network: the average of their class probabilities.

The output is the logarithm of the averaged probabilities, so a softmax of it gives the average itself: every
consumer of a classifier's logits (evaluation, prediction, serving, ONNX export) treats the ensemble as one
network. Members see the same images: they share classes, input channels and working size (a member trained with
another normalisation gets the input re-normalised inside the network).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from medtune.models.heads import Classifier
from medtune.models.inference import ACTIVATIONS


class EnsembleClassifier(nn.Module):
    """Averaged softmax probabilities of `members`, returned as log-probabilities ``(B, K)``.

    The input is normalised as the first member expects; members trained with another mean and standard
    deviation get it re-normalised by `renormalise` (``x * scale + shift`` per member and channel, kept as
    buffers so that the weights file carries them).

    Args:
        members: trained `Classifier` networks with the same classes in the same order.
        channels: input channels (for the re-normalisation buffers).
        activation: how the members' outputs become probabilities (`medtune.models.inference.ACTIVATIONS`); the
            ensemble answers in the same output space.

    >>> from medtune.models import create_classifier
    >>> nets = [create_classifier("resnet18", 3, in_chans=1, pretrained=False) for _ in range(2)]
    >>> ensemble = EnsembleClassifier(nets, channels=1).eval()
    >>> x = torch.randn(2, 1, 32, 32)
    >>> mean = torch.stack([n.eval()(x).softmax(1) for n in nets]).mean(0)
    >>> torch.allclose(ensemble(x).softmax(1), mean, atol=1e-6)
    True
    """

    def __init__(self, members: list[Classifier], channels: int = 3, activation: str = "softmax") -> None:
        super().__init__()
        self.activation = ACTIVATIONS.get(activation)
        self.members = nn.ModuleList(members)
        self.register_buffer("scale", torch.ones(len(members), channels, 1, 1))
        self.register_buffer("shift", torch.zeros(len(members), channels, 1, 1))

    def renormalise(self, means: list[tuple[float, ...]], stds: list[tuple[float, ...]]) -> EnsembleClassifier:
        """Map the first member's normalisation onto each member's: ``(x * std0 + mean0 - mean_i) / std_i``."""
        mean, std = torch.tensor(means, dtype=torch.float32), torch.tensor(stds, dtype=torch.float32)
        self.scale.copy_((std[0] / std).reshape(self.scale.shape))
        self.shift.copy_(((mean[0] - mean) / std).reshape(self.shift.shape))
        return self

    @property
    def backbone(self) -> nn.Module:
        """The first member's backbone: the feature network `medtune embed` and Grad-CAM use for an ensemble."""
        return self.members[0].backbone

    @property
    def first(self) -> Classifier:
        """The first member (its maps explain the ensemble's predictions)."""
        return self.members[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack(
            [self.activation.log_probabilities(member(x * self.scale[i] + self.shift[i]))
             for i, member in enumerate(self.members)]
        )  # fmt: skip
        return self.activation.from_log_probabilities(torch.logsumexp(log_probs, dim=0) - math.log(len(self.members)))
