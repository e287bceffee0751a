"""Scores for answering only some images: how well a score tells two groups of images apart (AUROC with a
bootstrap interval), and the risk-coverage curve of withholding the least trusted answers (selective
classification; Geifman and El-Yaniv, NeurIPS 2017).

>>> separation_auroc(np.array([0.5, 0.8, 1.1]), np.array([1.2, 0.95, 3.0]))["auroc"]
0.888889
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medtune.metrics.bootstrap import compute_bootstrap_intervals
from medtune.metrics.classification import compute_binary_auc_weighted

#: Points of a risk-coverage curve (coverage from 1/N to 1).
CURVE_POINTS = 50


def separation_auroc(inside: np.ndarray, outside: np.ndarray, seed: int = 0, n_bootstrap: int = 1000) -> dict[str, Any]:
    """How well guard scores tell `outside` images (positives: higher scores) from `inside` ones: the AUROC with
    a 95% percentile-bootstrap interval, both groups resampled together."""
    scores = np.concatenate([inside, outside]).astype(np.float64)
    positive = np.r_[np.zeros(len(inside), bool), np.ones(len(outside), bool)]
    if not len(inside) or not len(outside):
        return {"auroc": None, "interval": [None, None], "inside": len(inside), "outside": len(outside)}
    point = float(compute_binary_auc_weighted(np.ones((1, len(scores))), positive, scores)[0])
    intervals, _ = compute_bootstrap_intervals(
        lambda w: {"auroc": compute_binary_auc_weighted(w, positive, scores)}, len(scores), [], ["auroc"], [],
        n_bootstrap=n_bootstrap, confidence=0.95, seed=seed,
    )  # fmt: skip
    return {"auroc": round(point, 6), "interval": [round(float(v), 6) for v in intervals["auroc"]],
            "inside": len(inside), "outside": len(outside)}  # fmt: skip


def risk_coverage(correct: np.ndarray, keep_first: np.ndarray) -> dict[str, list[float]]:
    """The error rate among the answers kept when only the `keep_first`-ordered first ones are given (the most
    confident first, or the lowest guard scores first), at `CURVE_POINTS` coverages."""
    order = np.argsort(keep_first, kind="stable")
    errors = np.cumsum(~np.asarray(correct, bool)[order])
    n = len(order)
    counts = np.unique(np.linspace(1, n, min(CURVE_POINTS, n)).round().astype(int))
    return {"coverage": (counts / n).round(4).tolist(), "risk": (errors[counts - 1] / counts).round(4).tolist()}
