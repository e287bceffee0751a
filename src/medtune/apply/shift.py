"""What a run's guard says about the images `evaluate` scores: the share it flags, the metrics on the images it
accepts and on those it flags, and how well it tells them from the run's own test images (AUROC with a bootstrap
interval, `medtune.metrics.selective`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from medtune.errors import DataError
from medtune.metrics.selective import separation_auroc


def guard_metrics(
    scores: np.ndarray,
    rescore: Callable[[np.ndarray], dict[str, Any]],
    summary: Callable[[dict[str, Any]], dict[str, Any]],
    test_scores: np.ndarray | None,
    seed: int = 0,
) -> dict[str, Any]:
    """``metrics.json``'s ``guard`` section for evaluated images with guard `scores` (one per table row).

    Args:
        rescore: the task's metrics of a subset of the rows (table positions).
        summary: the headline of such metrics (the task's ``test_summary``).
        test_scores: the run's own test images' scores (None: these are its test images, nothing to tell apart).
    """
    flagged = scores > 1.0
    found: dict[str, Any] = {"images": len(scores), "flagged": int(flagged.sum()),
                             "share_flagged": round(float(flagged.mean()), 6) if len(scores) else None,
                             "quantiles": _quantiles(scores)}  # fmt: skip
    for name, rows in (("accepted", np.flatnonzero(~flagged)), ("flagged_images", np.flatnonzero(flagged))):
        found[name] = _subset(rows, rescore, summary)
    if test_scores is not None:
        found["auroc_vs_test"] = separation_auroc(test_scores, scores, seed)
    return found


def _subset(
    rows: np.ndarray, rescore: Callable[[np.ndarray], dict[str, Any]], summary: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    if len(rows) < 2:
        return {"images": len(rows)}
    try:
        return {"images": len(rows), **summary(rescore(rows))}
    except (ValueError, DataError) as exc:  # e.g. no image of the subset has a label of the run
        return {"images": len(rows), "note": str(exc).splitlines()[0]}


def _quantiles(scores: np.ndarray) -> dict[str, float] | None:
    if not len(scores):
        return None
    return {f"q{q}": round(float(np.quantile(scores, q / 100)), 4) for q in (5, 25, 50, 75, 95)}


def score_column(predictions: pd.DataFrame, paths: pd.Series, scores: np.ndarray) -> pd.Series:
    """Each prediction row's guard score, matched by image path (the score depends on the image only)."""
    return predictions["path"].map(dict(zip(paths, np.round(scores, 6), strict=True)))
