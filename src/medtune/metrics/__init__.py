"""Metrics computed from targets and predicted probabilities: pure functions on numpy arrays."""

from medtune.metrics.classification import compute_auc, compute_ece, compute_metrics, compute_reliability
from medtune.metrics.multilabel import choose_thresholds, compute_multilabel_metrics, predict_labels

__all__ = [
    "choose_thresholds",
    "compute_auc",
    "compute_ece",
    "compute_metrics",
    "compute_multilabel_metrics",
    "compute_reliability",
    "predict_labels",
]
