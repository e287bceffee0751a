"""The training loss, built in one place from the configuration (`create_loss`).

Single-label: cross-entropy or softmax focal loss over class indices, with class weights and label smoothing.
Multi-label: binary cross-entropy per label or sigmoid focal loss (torchvision's), with a positive weight per label
and label smoothing toward one half (``y * (1 - s) + s / 2``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from medtune._registry import Registry

if TYPE_CHECKING:
    from medtune.config.schema import Optimisation

#: Losses: ``(config, multilabel, weights) -> nn.Module``.
LOSSES: Registry = Registry("loss")


def create_loss(config: Optimisation, multilabel: bool = False, weights: torch.Tensor | None = None) -> nn.Module:
    """The loss of ``config.loss`` (``cross-entropy`` or ``focal``) for single- or multi-label targets.

    Args:
        config: the optimisation section: ``loss``, ``focal_gamma`` and ``label_smoothing`` are read.
        multilabel: targets are multi-hot ``(N, C)`` floats instead of class indices.
        weights: single-label: a weight per class (focal: the alpha of each class); multi-label: the positive
            weight of each label (``pos_weight``); None for none.

    >>> from medtune.config import load_config
    >>> create_loss(load_config(loss="focal").sections.optimisation, multilabel=True)
    MultiLabelLoss(label_smoothing=0.1, gamma=2.0)
    """
    return LOSSES.get(config.loss)(config, multilabel, weights)


@LOSSES.register("cross-entropy")
def cross_entropy_loss(
    config: Optimisation, multilabel: bool = False, weights: torch.Tensor | None = None
) -> nn.Module:
    """Cross-entropy over classes, or binary cross-entropy per label (multi-label)."""
    if multilabel:
        return MultiLabelLoss(config.label_smoothing, weights, None)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)


@LOSSES.register("focal")
def focal_loss(config: Optimisation, multilabel: bool = False, weights: torch.Tensor | None = None) -> nn.Module:
    """Softmax focal loss over classes, or sigmoid focal loss per label (multi-label), of ``focal_gamma``."""
    if multilabel:
        return MultiLabelLoss(config.label_smoothing, weights, config.focal_gamma)
    return FocalLoss(config.focal_gamma, weights, config.label_smoothing)


def softmax_focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma: float = 2.0,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Focal loss over class indices (Lin et al. 2017): cross-entropy with each log-probability scaled by
    ``(1 - p) ** gamma``, so confidently right images count little.

    Class weights and label smoothing act exactly as in `torch.nn.functional.cross_entropy` (a weighted mean over
    the batch; the smoothing term spread over every class), so ``gamma=0`` gives cross-entropy itself.

    Args:
        logits: ``(N, K)``.
        targets: class indices ``(N,)``.
        gamma: focusing exponent (0: cross-entropy).
        weight: a weight per class (the focal loss's alpha), or None.
        label_smoothing: share of the target spread uniformly over the K classes.

    >>> logits, targets = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    >>> bool(torch.isclose(softmax_focal_loss(logits, targets, gamma=0.0), F.cross_entropy(logits, targets)))
    True
    """
    log_probs = logits.float().log_softmax(dim=1)
    modulated = (1 - log_probs.exp()).pow(gamma) * log_probs
    k = logits.shape[1]
    weight = torch.ones(k, device=logits.device) if weight is None else weight.to(logits.device, torch.float32)
    target_weight = weight[targets]
    total = target_weight.sum()
    nll = -(modulated.gather(1, targets[:, None]).squeeze(1) * target_weight).sum() / total
    if label_smoothing == 0:
        return nll
    smooth = -(modulated * weight).sum() / total
    return (1 - label_smoothing) * nll + label_smoothing / k * smooth


class FocalLoss(nn.Module):
    """Softmax focal loss for single-label targets (see `softmax_focal_loss`)."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma, self.label_smoothing = gamma, label_smoothing
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return softmax_focal_loss(logits, targets, self.gamma, self.weight, self.label_smoothing)

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, label_smoothing={self.label_smoothing}"


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy per label (``gamma=None``) or sigmoid focal loss, averaged over images and labels.

    Targets are smoothed toward one half. A label's positive weight multiplies its positive term: for
    cross-entropy through ``pos_weight`` of `torch.nn.functional.binary_cross_entropy_with_logits`; for the focal
    loss (`torchvision.ops.sigmoid_focal_loss`, no alpha) each element is scaled by ``1 + (pos_weight - 1) * y``,
    which is the same for 0/1 targets (with smoothing the weight moves toward the middle with the target).

    Args:
        label_smoothing: ``y * (1 - s) + s / 2``.
        pos_weight: a weight per label for its positive images, or None.
        gamma: the focal loss's exponent, or None for cross-entropy.
    """

    def __init__(
        self, label_smoothing: float = 0.0, pos_weight: torch.Tensor | None = None, gamma: float | None = None
    ) -> None:
        super().__init__()
        self.label_smoothing, self.gamma = label_smoothing, gamma
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        if self.gamma is None:
            return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)
        from torchvision.ops import sigmoid_focal_loss

        loss = sigmoid_focal_loss(logits, targets, alpha=-1, gamma=self.gamma)
        if self.pos_weight is not None:
            loss = loss * (1 + (self.pos_weight - 1) * targets)
        return loss.mean()

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}" + (f", gamma={self.gamma}" if self.gamma is not None else "")
