"""Summaries of per-image segmentation scores: means with percentile bootstrap intervals (numpy only).

The per-image Dice, IoU and 95th-percentile Hausdorff distance come from torchmetrics (`medtune.apply.segment_eval`);
here they are averaged over the images and resampled. An image whose Hausdorff distance is undefined (an empty
predicted or true mask) is left out of that mean only, and counted.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from medtune.metrics.bootstrap import check_bootstrap_options, compute_bootstrap_intervals

#: Per-image scores of a segmentation evaluation, in the order reports list them.
SEGMENT_SCORES = ("dice", "iou", "hd95")


def summarize_segmentation(
    scores: Mapping[str, np.ndarray], n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict:
    """Means, medians and bootstrap intervals of per-image scores.

    Args:
        scores: each name of `SEGMENT_SCORES` mapped to one value per image (NaN where undefined).
        n_bootstrap: resamples of the images (0 skips the intervals).
        confidence: coverage of the intervals.
        seed: seed of the resampling.

    Returns:
        ``{"n", "dice", "iou", "hd95", "median": {...}, "intervals": {name: [lo, hi]}, "undefined": {...},
        "confidence", "n_bootstrap"}``.

    >>> summary = summarize_segmentation({"dice": np.array([0.9, 1.0]), "iou": np.array([0.8, 1.0]),
    ...                                   "hd95": np.array([2.0, np.nan])}, n_bootstrap=100)
    >>> summary["dice"], summary["hd95"], summary["undefined"]["hd95"]
    (0.95, 2.0, 1)
    """
    check_bootstrap_options(n_bootstrap, confidence)
    values = {name: np.asarray(scores[name], dtype=np.float64) for name in SEGMENT_SCORES}
    n = len(values["dice"])
    defined = {name: np.isfinite(v) for name, v in values.items()}
    filled = {name: np.where(defined[name], v, 0.0) for name, v in values.items()}

    def means(weights: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for name in SEGMENT_SCORES:
            counted = weights @ defined[name].astype(np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(counted > 0, (weights @ filled[name]) / counted, np.nan)
        return out

    intervals, _ = compute_bootstrap_intervals(
        means, n, [], list(SEGMENT_SCORES), [], n_bootstrap=n_bootstrap, confidence=confidence, seed=seed
    )
    intervals.pop("per_class", None)
    summary: dict = {"n": n}
    for name in SEGMENT_SCORES:
        kept = values[name][defined[name]]
        summary[name] = _rounded(kept.mean()) if len(kept) else None
    summary["median"] = {
        name: _rounded(np.median(values[name][defined[name]])) if defined[name].any() else None
        for name in SEGMENT_SCORES
    }
    summary["intervals"] = {name: [_rounded(b) for b in bounds] for name, bounds in intervals.items()}
    summary["undefined"] = {name: int((~defined[name]).sum()) for name in SEGMENT_SCORES}
    summary["confidence"], summary["n_bootstrap"] = confidence, n_bootstrap
    return summary


def _rounded(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)
