"""The store loader's batch sampler: seeded per epoch, weighted when asked."""

from __future__ import annotations

import numpy as np

from medtune.data.store import EpochBatchSampler
from medtune.engine.train import class_weights


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
