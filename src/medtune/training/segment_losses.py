"""Segmentation losses, each smp's own, by the names ``loss=`` takes; ``dice+bce`` sums several.

Every loss takes ``(B, 1, H, W)`` logits and a ``(B, 1, H, W)`` 0/1 target (smp's binary mode).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from medtune._registry import Registry
from medtune.errors import ConfigError

#: Builders of one binary segmentation loss on logits, by name.
SEGMENT_LOSSES: Registry[Callable[[], nn.Module]] = Registry("segmentation loss")


def _smp_losses() -> Any:
    """The ``segmentation_models_pytorch.losses`` module (imported on first use)."""
    from medtune.models.segmenters import import_smp

    return import_smp().losses


SEGMENT_LOSSES.register("dice")(lambda: _smp_losses().DiceLoss("binary", from_logits=True))
SEGMENT_LOSSES.register("jaccard")(lambda: _smp_losses().JaccardLoss("binary", from_logits=True))
SEGMENT_LOSSES.register("bce")(lambda: _smp_losses().SoftBCEWithLogitsLoss())
SEGMENT_LOSSES.register("focal")(lambda: _smp_losses().FocalLoss("binary"))
SEGMENT_LOSSES.register("lovasz")(lambda: _smp_losses().LovaszLoss("binary", per_image=True))
SEGMENT_LOSSES.register("tversky")(lambda: _smp_losses().TverskyLoss("binary", alpha=0.3, beta=0.7))


def loss_terms(name: str) -> list[str]:
    """The registered losses a ``loss=`` value sums (``dice+bce`` -> ``["dice", "bce"]``), each checked.

    Raises:
        ConfigError: an empty or unknown term (with the closest names).

    >>> loss_terms("dice+bce")
    ['dice', 'bce']
    """
    terms = [part.strip() for part in str(name).split("+")]
    if not all(terms):
        raise ConfigError(f"loss={name}: write a sum of segmentation losses as dice+bce, with no empty term")
    for term in terms:
        SEGMENT_LOSSES.get(term)
    return terms


class SumLoss(nn.Module):
    """The sum of several losses of the same logits and target."""

    def __init__(self, losses: dict[str, nn.Module]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(losses)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(loss(logits, target) for loss in self.losses.values())


def create_segment_loss(name: str) -> nn.Module:
    """The loss ``loss=`` names: one registered loss, or the sum of ``+``-joined ones.

    >>> create_segment_loss("dice+bce")  # doctest: +SKIP
    """
    terms = loss_terms(name)
    if len(terms) == 1:
        return SEGMENT_LOSSES.get(terms[0])()
    return SumLoss({term: SEGMENT_LOSSES.get(term)() for term in terms})
