"""Means and bootstrap intervals of per-image segmentation scores."""

from __future__ import annotations

import numpy as np

from medtune.metrics.segmentation import summarize_segmentation


def test_means_intervals_and_undefined_hd95():
    rng = np.random.default_rng(0)
    dice = rng.uniform(0.9, 1.0, 200)
    hd95 = rng.uniform(1, 5, 200)
    hd95[:3] = np.nan
    summary = summarize_segmentation({"dice": dice, "iou": dice / (2 - dice), "hd95": hd95}, seed=1)
    assert summary["n"] == 200 and summary["undefined"] == {"dice": 0, "iou": 0, "hd95": 3}
    assert abs(summary["dice"] - dice.mean()) < 1e-6
    assert abs(summary["hd95"] - np.nanmean(hd95)) < 1e-6
    low, high = summary["intervals"]["dice"]
    assert low < summary["dice"] < high and high - low < 0.01
    assert summary["intervals"]["hd95"][0] < summary["hd95"] < summary["intervals"]["hd95"][1]
    again = summarize_segmentation({"dice": dice, "iou": dice / (2 - dice), "hd95": hd95}, seed=1)
    assert again == summary


def test_no_bootstrap_gives_no_interval():
    summary = summarize_segmentation({"dice": np.ones(3), "iou": np.ones(3), "hd95": np.zeros(3)}, n_bootstrap=0)
    assert summary["dice"] == 1.0 and summary["intervals"]["dice"] == [None, None]
