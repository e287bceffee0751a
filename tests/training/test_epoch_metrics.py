"""Epoch metrics: single-label and multi-label collections, and the AUC that skips labels without positives."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from medtune.training.epoch_metrics import LogLoss, create_epoch_metrics


@pytest.mark.filterwarnings("ignore:No positive samples in targets")
def test_multilabel_epoch_metrics_skip_labels_without_positives():
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(200, 4, generator=generator) < 0.3).long()
    targets[:, 3] = 0  # a finding absent from this validation split
    probs = (targets + torch.rand(200, 4, generator=generator)).clamp(max=1.5) / 1.5
    metrics = create_epoch_metrics(4, "val_", multilabel=True)
    metrics.update(probs[:120], targets[:120])
    metrics.update(probs[120:], targets[120:])
    values = {k: float(v) for k, v in metrics.compute().items()}
    assert set(values) == {"val_acc", "val_balanced_acc", "val_f1", "val_auc", "val_nll"}
    bce = -(targets * probs.log() + (1 - targets) * (1 - probs).clamp(min=1e-7).log()).mean()
    assert values["val_nll"] == pytest.approx(float(bce), abs=1e-4)
    expected = roc_auc_score(targets[:, :3].numpy(), probs[:, :3].numpy(), average="macro")
    assert values["val_auc"] == pytest.approx(expected, abs=1e-6)  # torchmetrics alone would average in a 0
    exact = ((probs > 0.5).long() == targets).all(dim=1).float().mean()
    assert values["val_acc"] == pytest.approx(float(exact))


def test_single_label_balanced_accuracy_is_macro_recall():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6]])
    targets = torch.tensor([0, 0, 0, 1])
    values = create_epoch_metrics(2, "val_")(probs, targets)
    assert float(values["val_balanced_acc"]) == pytest.approx(1.0) and float(values["val_acc"]) == pytest.approx(1.0)
    values = create_epoch_metrics(2, "val_")(probs, torch.tensor([0, 0, 1, 1]))
    assert float(values["val_balanced_acc"]) == pytest.approx((1.0 + 0.5) / 2)


def test_the_log_loss_of_probabilities_is_scikit_learns_across_batches():
    generator = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(90, 3, generator=generator), dim=1)
    targets = torch.randint(0, 3, (90,), generator=generator)
    metric = LogLoss()
    for part in (slice(0, 40), slice(40, 90)):
        metric.update(probs[part], targets[part])
    assert float(metric.compute()) == pytest.approx(log_loss(targets.numpy(), probs.numpy(), labels=[0, 1, 2]))
