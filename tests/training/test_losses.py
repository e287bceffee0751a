"""The training losses: focal loss against cross-entropy, multi-label smoothing and positive weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medtune.config import load_config
from medtune.training.losses import FocalLoss, MultiLabelLoss, create_loss, softmax_focal_loss


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(64, 4, generator=generator) * 3, torch.randint(0, 4, (64,), generator=generator)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weight", [None, torch.tensor([1.0, 2.0, 0.5, 3.0])])
def test_focal_loss_is_cross_entropy_at_gamma_zero(batch, smoothing, weight):
    logits, targets = batch
    expected = F.cross_entropy(logits, targets, weight=weight, label_smoothing=smoothing)
    assert softmax_focal_loss(logits, targets, 0.0, weight, smoothing) == pytest.approx(float(expected), rel=1e-6)


def test_focal_loss_down_weights_easy_examples():
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0]])  # the first is easy (p = 0.98), the second hard (p = 0.55)
    targets = torch.tensor([0, 0])
    ce = F.cross_entropy(logits, targets, reduction="none")
    focal = torch.stack([softmax_focal_loss(logits[i : i + 1], targets[i : i + 1], gamma=2.0) for i in range(2)])
    assert (focal < ce).all()
    ratio = focal / ce
    p = logits.softmax(dim=1)[:, 0]
    assert ratio.tolist() == pytest.approx(((1 - p) ** 2).tolist(), rel=1e-5)  # exactly (1 - p)^gamma
    assert ratio[0] < 0.001 < 0.2 < ratio[1]


def test_multilabel_losses_at_gamma_zero_are_binary_cross_entropy(batch):
    logits = batch[0]
    targets = (torch.rand(logits.shape, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    smoothed = targets * 0.9 + 0.05
    assert MultiLabelLoss(0.1)(logits, targets) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits, smoothed)), rel=1e-6
    )
    pos_weight = torch.tensor([1.0, 4.0, 2.0, 9.0])
    expected = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    assert MultiLabelLoss(0.0, pos_weight)(logits, targets) == pytest.approx(float(expected), rel=1e-6)
    assert MultiLabelLoss(0.0, pos_weight, gamma=0.0)(logits, targets) == pytest.approx(float(expected), rel=1e-6)
    assert MultiLabelLoss(0.0, None, gamma=2.0)(logits, targets) < MultiLabelLoss(0.0)(logits, targets)


def test_create_loss_follows_the_config():
    assert isinstance(create_loss(load_config().sections.optimisation), nn.CrossEntropyLoss)
    focal = create_loss(load_config(loss="focal", focal_gamma=1.5, label_smoothing=0.0).sections.optimisation)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5
    binary = create_loss(load_config().sections.optimisation, multilabel=True, weights=torch.ones(3))
    assert isinstance(binary, MultiLabelLoss) and binary.gamma is None and binary.pos_weight.tolist() == [1, 1, 1]
    assert create_loss(load_config(loss="focal").sections.optimisation, multilabel=True).gamma == 2.0
