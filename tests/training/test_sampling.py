"""The store loader's batch sampler: seeded per epoch, weighted when asked."""

from __future__ import annotations

import numpy as np

from medtune.data.loader import EpochBatchSampler
from medtune.training.sampling import class_weights, pos_weights, sample_weights


def test_order_depends_on_seed_and_epoch_only():
    sampler = EpochBatchSampler(100, 10, shuffle=True, seed=1)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert first != second and sorted(i for batch in first for i in batch) == list(range(100))
    fresh = EpochBatchSampler(100, 10, shuffle=True, seed=1)
    fresh.set_epoch(1)
    assert list(fresh) == second  # a resumed run draws the same batches
    assert (
        len(EpochBatchSampler(105, 10, drop_last=True)) == 10 == len(list(EpochBatchSampler(105, 10, drop_last=True)))
    )


def test_weighted_sampler_balances_classes():
    targets = np.array([0] * 900 + [1] * 100)
    weights = class_weights(targets, 2)[targets]
    drawn = np.concatenate(list(EpochBatchSampler(1000, 50, seed=0, weights=weights)))
    share = (targets[drawn] == 1).mean()
    assert 0.45 < share < 0.55  # 10% of the images, half of the draws


def test_class_weights_are_balanced_inverse_frequency():
    weights = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    assert weights.round(3).tolist() == [0.667, 2.0, 1.0, 0.0]


def test_multilabel_positive_weights_are_capped():
    targets = np.zeros((1000, 3))
    targets[:400, 0] = 1  # 600 / 400 = 1.5
    targets[:2, 1] = 1  # 998 / 2, capped at 20
    weights = pos_weights(targets)
    assert weights.tolist() == [1.5, 20.0, 1.0]  # no positive: 1


def test_multilabel_weighted_sampler_lifts_rare_findings():
    rng = np.random.default_rng(0)
    targets = np.zeros((2000, 3))
    targets[:, 0] = rng.random(2000) < 0.4
    targets[:, 1] = rng.random(2000) < 0.05
    targets[:, 2] = rng.random(2000) < 0.01
    weights = sample_weights(targets, 3, multilabel=True)
    assert weights.shape == (2000,) and (weights > 0).all()
    drawn = np.concatenate(list(EpochBatchSampler(2000, 100, seed=0, weights=weights)))
    shares = targets[drawn].mean(axis=0)
    none = (targets[drawn].sum(axis=1) == 0).mean()
    # the 5% and 1% findings are drawn in about a fifth of the images each; the 40% one and "no finding" (56%)
    # stay common but no longer dominate
    assert shares[1] > 3 * targets[:, 1].mean() and shares[2] > 10 * targets[:, 2].mean()
    assert shares[0] < 0.5 and none < 0.35
