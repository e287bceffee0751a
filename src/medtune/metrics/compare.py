"""Paired comparison of two sets of predictions on the same images: is one clearly better, or is it luck?

The validation split that picks an epoch is often small (120 RetinaMNIST images) or saturated (PneumoniaMNIST's
validation AUC is 0.995 or more from the third epoch on), so the epoch with the best score is partly the one
whose errors the split happened to miss. `share_better` resamples the images with replacement and scores both
prediction sets on each resample (paired: the same images for both), so the share of resamples won says how
often the advantage survives a different draw of validation images.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medtune.errors import ConfigError
from medtune.metrics.bootstrap import compute_bootstrap_intervals
from medtune.metrics.classification import (
    _compute_auc_weighted,
    _compute_confusion,
    _compute_macro_auc,
    _compute_rates,
)

#: Metrics `share_better` compares, by the names of the per-epoch validation metrics (``val_auc`` -> ``auc``).
PAIRED_METRICS = ("auc", "acc", "balanced_acc", "f1", "loss", "nll")


def _scores(metric: str, targets: np.ndarray, probs: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Weighted scores ``(B,)`` of B resamples (higher is better; the loss is negated)."""
    k = probs.shape[1]
    preds = probs.argmax(axis=1)
    if metric == "auc":
        return lambda w: _compute_macro_auc(_compute_auc_weighted(w, targets, probs))
    if metric in ("loss", "nll"):  # the log loss of the probabilities (the training loss's settings aside)
        eps = np.finfo(np.float64).eps
        losses = -np.log(np.clip(probs[np.arange(len(targets)), targets], eps, 1 - eps))
        return lambda w: -(w @ losses) / w.sum(axis=1)
    rate = {"acc": "accuracy", "balanced_acc": "balanced_accuracy", "f1": "f1"}[metric]

    def score(weights: np.ndarray) -> np.ndarray:
        values = _compute_rates(_compute_confusion(weights, targets, preds, k))[rate]
        return values.mean(axis=1) if values.ndim == 2 else values

    return score


def share_better(
    targets: np.ndarray,
    probs_a: np.ndarray,
    probs_b: np.ndarray,
    metric: str = "auc",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> float:
    """The share of paired bootstrap resamples of the images on which predictions A score strictly better than B.

    Args:
        targets: ``(N,)`` class indices.
        probs_a: ``(N, K)`` probabilities of the first model.
        probs_b: ``(N, K)`` probabilities of the second model, for the same images.
        metric: one of `PAIRED_METRICS` (the loss is the mean negative log probability of the true class: lower
            is better).
        n_bootstrap: resamples.
        seed: seed of the resampling.

    Returns:
        A share in [0, 1]; resamples where the metric is undefined (AUC without a class) count as not won.

    Raises:
        ConfigError: an unknown metric, or prediction sets of different shapes.

    >>> t = np.array([0, 0, 1, 1, 0, 1])
    >>> good = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9], [0.7, 0.3], [0.3, 0.7]])
    >>> share_better(t, good, good[:, ::-1]) > 0.95, share_better(t, good, good)  # some resamples lack a class
    (True, 0.0)
    """
    if metric not in PAIRED_METRICS:
        raise ConfigError(f"unknown metric {metric!r} to compare; expected one of {', '.join(PAIRED_METRICS)}")
    targets, probs_a, probs_b = np.asarray(targets), np.asarray(probs_a, np.float64), np.asarray(probs_b, np.float64)
    if probs_a.shape != probs_b.shape or probs_a.shape[0] != len(targets):
        raise ConfigError(f"paired predictions must have one shape, got {probs_a.shape} and {probs_b.shape}")
    score_a, score_b = _scores(metric, targets, probs_a), _scores(metric, targets, probs_b)

    def statistics(weights: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore"):
            return {"won": (score_a(weights) > score_b(weights)).astype(np.float64)}

    _, samples = compute_bootstrap_intervals(
        statistics, len(targets), [], ["won"], [], n_bootstrap=n_bootstrap, confidence=0.95, seed=seed,
        cells_per_image=4,
    )  # fmt: skip
    return float(samples["won"].mean()) if len(samples["won"]) else 0.0
