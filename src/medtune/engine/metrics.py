"""Metrics tracked every epoch during training (torchmetrics, so they stay correct across processes)."""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score, MulticlassRecall

#: Names logged per epoch, with the train_/val_ prefix: ``val_auc``, ``train_loss``...
EPOCH_METRICS: tuple[str, ...] = ("loss", "acc", "balanced_acc", "f1", "auc")
#: Validation metrics that can pick the best checkpoint and stop training early.
MONITORS: tuple[str, ...] = tuple(f"val_{name}" for name in EPOCH_METRICS)


def monitor_mode(monitor: str) -> str:
    """``"min"`` for a loss, ``"max"`` for every other metric.

    >>> monitor_mode("val_loss"), monitor_mode("val_auc")
    ('min', 'max')
    """
    return "min" if monitor.endswith("loss") else "max"


def create_epoch_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy, balanced accuracy (macro recall), macro F1 and macro one-vs-rest ROC AUC for `num_classes` classes.

    With two classes the macro AUC equals the binary ROC AUC (both one-vs-rest curves are the same curve).

    Args:
        num_classes: number of classes (2 or more).
        prefix: ``"train_"``, ``"val_"`` or ``"test_"``.
    """
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "balanced_acc": MulticlassRecall(num_classes, average="macro"),
            "f1": MulticlassF1Score(num_classes, average="macro"),
            "auc": MulticlassAUROC(num_classes, average="macro"),
        },
        prefix=prefix,
    )
