"""Metrics computed from targets and predicted probabilities: pure functions on numpy arrays.

- `classification`: single-label metrics, calibration and bootstrap intervals.
- `per_label`: multi-label metrics: per-label thresholds, per-label and averaged scores.
- `segmentation`: summaries of per-image segmentation scores.
- `selective`: telling two groups apart by a score (AUROC with its interval) and risk-coverage curves.
- `bootstrap`: percentile bootstrap intervals, vectorised. `compare`: a paired bootstrap of two prediction sets.
"""

from medtune.metrics.classification import compute_auc, compute_ece, compute_metrics, compute_reliability
from medtune.metrics.per_label import choose_thresholds, compute_multilabel_metrics, predict_labels

__all__ = [
    "choose_thresholds",
    "compute_auc",
    "compute_ece",
    "compute_metrics",
    "compute_multilabel_metrics",
    "compute_reliability",
    "predict_labels",
]
