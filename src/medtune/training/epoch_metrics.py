"""Metrics tracked every epoch during training (torchmetrics, so they stay correct across processes)."""

from __future__ import annotations

import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassRecall,
    MultilabelAUROC,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelRecall,
    MultilabelSpecificity,
)
from torchmetrics.utilities import dim_zero_cat


def create_epoch_metrics(num_classes: int, prefix: str, multilabel: bool = False) -> MetricCollection:
    """Accuracy, balanced accuracy (macro recall), macro F1, macro one-vs-rest ROC AUC and the plain log loss of the
    probabilities (``nll``: no label smoothing, class weights or focusing, so it compares runs trained with different
    losses) for `num_classes` classes.

    With two classes the macro AUC equals the binary ROC AUC (both one-vs-rest curves are the same curve).

    Multi-label (sigmoid probabilities, 0.5 thresholds): ``acc`` is the exact-match accuracy, ``balanced_acc`` the
    mean over labels of (sensitivity + specificity) / 2, ``f1`` the macro F1 and ``auc`` the macro ROC AUC over the
    labels that have positive and negative images (`DefinedLabelsAUROC`).

    Args:
        num_classes: number of classes (2 or more), or of labels.
        prefix: ``"train_"``, ``"val_"`` or ``"test_"``.
        multilabel: multi-hot targets and per-label probabilities.
    """
    if multilabel:
        recall = MultilabelRecall(num_classes, average="macro")
        balanced = (recall + MultilabelSpecificity(num_classes, average="macro")) / 2
        return MetricCollection(
            {
                "acc": MultilabelExactMatch(num_classes),
                "balanced_acc": balanced,
                "f1": MultilabelF1Score(num_classes, average="macro"),
                "auc": DefinedLabelsAUROC(num_classes),
                "nll": LogLoss(multilabel=True),
            },
            prefix=prefix,
        )
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "balanced_acc": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "auc": MulticlassAUROC(num_classes, average="macro"),
            "nll": LogLoss(),
        },
        prefix=prefix,
    )


class DefinedLabelsAUROC(MultilabelAUROC):
    """Macro ROC AUC over the labels that have both positive and negative images (NaN when none has).

    torchmetrics scores a label without positives as 0 and averages it in; a rare finding absent from a small
    validation split would then pull ``val_auc`` down for nothing the network did.
    """

    def __init__(self, num_labels: int, **kwargs) -> None:
        super().__init__(num_labels, average="none", **kwargs)

    def compute(self) -> torch.Tensor:
        per_label = super().compute()
        target = dim_zero_cat(self.target)
        defined = (target == 1).any(dim=0) & (target == 0).any(dim=0)
        return per_label[defined].mean() if defined.any() else torch.tensor(float("nan"))


class LogLoss(Metric):
    """The mean negative log probability of the true class (multi-label: the mean binary cross-entropy over the
    labels), from probabilities; what `medtune tune` ranks candidates by, since the training loss changes with the
    loss settings it searches."""

    full_state_update = False

    def __init__(self, multilabel: bool = False, eps: float = 1e-7, **kwargs) -> None:
        super().__init__(**kwargs)
        self.multilabel, self.eps = multilabel, eps
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, targets: torch.Tensor) -> None:
        probs = probs.double().clamp(self.eps, 1 - self.eps)
        if self.multilabel:
            positive = targets.double()
            losses = -(positive * probs.log() + (1 - positive) * (1 - probs).log()).mean(dim=1)
        else:
            losses = -probs.gather(1, targets.long().view(-1, 1)).squeeze(1).log()
        self.total += losses.sum()
        self.count += len(losses)

    def compute(self) -> torch.Tensor:
        return (self.total / self.count).float() if self.count else torch.tensor(float("nan"))
