"""medtune.metrics.selective: the AUROC of telling two groups apart (against scikit-learn, with its bootstrap
interval) and risk-coverage curves."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from medtune.metrics.selective import risk_coverage, separation_auroc


def test_separation_auroc_is_scikit_learns_with_an_interval_around_it():
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(0.7, 0.2, 300), rng.normal(1.1, 0.3, 200)
    found = separation_auroc(inside, outside, n_bootstrap=300)
    expected = roc_auc_score(np.r_[np.zeros(300), np.ones(200)], np.r_[inside, outside])
    assert abs(found["auroc"] - expected) < 1e-6 and (found["inside"], found["outside"]) == (300, 200)
    low, high = found["interval"]
    assert low < found["auroc"] < high and high - low < 0.1
    assert separation_auroc(inside, np.array([]))["auroc"] is None  # nothing to tell apart


def test_risk_coverage_withholds_the_least_trusted_answers_first():
    correct = np.array([True, True, False, True, False])
    doubt = np.array([0.1, 0.2, 0.9, 0.3, 0.8])  # the two mistakes are the most doubted
    curve = risk_coverage(correct, doubt)
    assert curve["coverage"] == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert curve["risk"] == [0.0, 0.0, 0.0, 0.25, 0.4]
