"""Segmentation losses: every registered smp loss, and sums of them, on real-shaped logits and masks."""

from __future__ import annotations

import pytest
import torch

from medtune.errors import ConfigError
from medtune.training.segment_losses import SEGMENT_LOSSES, SumLoss, create_segment_loss, loss_terms


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    target = torch.zeros(2, 1, 32, 32)
    target[:, :, 8:24, 4:14] = 1
    target[:, :, 8:24, 18:28] = 1
    return torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)), target


@pytest.mark.parametrize("name", SEGMENT_LOSSES.names())
def test_each_loss_is_finite_learns_and_prefers_the_true_mask(name):
    logits, target = _batch()
    loss = create_segment_loss(name)
    logits.requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value) and logits.grad is not None and logits.grad.abs().sum() > 0
    perfect = loss((target * 2 - 1) * 10, target)
    assert perfect < value  # the mask itself, as confident logits, scores better than noise


def test_sums_add_their_terms():
    logits, target = _batch()
    total = create_segment_loss("dice+bce")
    assert isinstance(total, SumLoss) and list(total.losses) == ["dice", "bce"]
    expected = create_segment_loss("dice")(logits, target) + create_segment_loss("bce")(logits, target)
    assert torch.allclose(total(logits, target), expected)


def test_unknown_and_empty_terms_are_named():
    with pytest.raises(ConfigError, match=r"unknown segmentation loss 'dise'.*dice"):
        loss_terms("dise+bce")
    with pytest.raises(ConfigError, match="no empty term"):
        loss_terms("dice+")
