"""Metrics computed from targets and predicted probabilities: pure functions on numpy arrays."""

from medtune.metrics.classification import compute_auc, compute_ece, compute_metrics, compute_reliability

__all__ = ["compute_auc", "compute_ece", "compute_metrics", "compute_reliability"]
