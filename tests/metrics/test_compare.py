"""Paired bootstrap comparison of two prediction sets on the same images (`medtune.metrics.compare`)."""

from __future__ import annotations

import numpy as np
import pytest

from medtune.errors import ConfigError
from medtune.metrics.compare import PAIRED_METRICS, share_better


def _probs(scores: np.ndarray) -> np.ndarray:
    return np.stack([1 - scores, scores], axis=1)


@pytest.mark.parametrize("metric", PAIRED_METRICS)
def test_a_clearly_better_model_wins_nearly_every_resample_and_a_twin_none(metric):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 400)
    good = _probs(np.clip(0.5 + (targets - 0.5) * 0.6 + rng.normal(0, 0.15, 400), 0.01, 0.99))
    poor = _probs(np.clip(0.5 + (targets - 0.5) * 0.1 + rng.normal(0, 0.3, 400), 0.01, 0.99))
    assert share_better(targets, good, poor, metric) > 0.99
    assert share_better(targets, poor, good, metric) < 0.01
    assert share_better(targets, good, good, metric) == 0.0  # a tie is not a win


def test_a_difference_within_the_noise_wins_about_half_the_resamples():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 3, 300)
    a = rng.dirichlet(np.ones(3), 300)
    b = rng.dirichlet(np.ones(3), 300)  # two unrelated guessers: neither is better
    assert 0.1 < share_better(targets, a, b, "auc", seed=3) < 0.9


def test_mismatched_inputs_and_unknown_metrics_are_refused():
    targets = np.array([0, 1])
    with pytest.raises(ConfigError, match="one shape"):
        share_better(targets, _probs(np.array([0.1, 0.9])), _probs(np.array([0.2, 0.8, 0.5])))
    with pytest.raises(ConfigError, match="unknown metric 'dice'"):
        share_better(targets, _probs(np.array([0.1, 0.9])), _probs(np.array([0.2, 0.8])), "dice")
