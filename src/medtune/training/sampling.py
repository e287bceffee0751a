"""Class and sample weights for imbalanced data: loss weights per class (or positive weights per label) and the
draw weight of each image for a weighted sampler."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from medtune.errors import ConfigError

if TYPE_CHECKING:
    from medtune.config.schema import Optimisation

#: Multi-label ``class_weights=auto``: the largest positive weight a label gets. Beyond about 20, the two or three
#: positive images of a rare finding dominate its gradient and the network learns to flag it everywhere.
MAX_POS_WEIGHT = 20.0


def class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``n / (k * n_c)`` (scikit-learn's "balanced"); classes without images get 0.

    >>> class_weights(np.array([0, 0, 0, 1]), 2).round(3).tolist()
    [0.667, 2.0]
    """
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(targets) / (present.sum() * counts[present])
    return weights


def pos_weights(targets: np.ndarray, cap: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Multi-label positive weight per label: negatives / positives among the images, at most `cap`; a label
    without positive images gets 1.

    >>> pos_weights(np.array([[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]), cap=2.0).tolist()
    [2.0, 1.0, 2.0]
    >>> pos_weights(np.array([[1, 1], [1, 0], [0, 0], [0, 0]])).tolist()
    [1.0, 3.0]
    """
    positive = (np.asarray(targets) > 0.5).sum(axis=0).astype(np.float64)
    ratio = np.divide(len(targets) - positive, positive, out=np.ones_like(positive), where=positive > 0)
    return np.minimum(ratio, cap)


def sample_weights(targets: np.ndarray, num_classes: int, multilabel: bool = False) -> np.ndarray:
    """Draw weight of each image for ``sampler=weighted``.

    Single-label: its class's `class_weights` (every class drawn equally often). Multi-label: the mean inverse
    frequency of its findings (frequency = share of the images with that finding); an image without a finding
    weighs the inverse share of such images, so "no finding" counts as one more class.

    >>> sample_weights(np.array([[1, 0], [0, 1], [0, 0], [0, 0]]), 2, multilabel=True).tolist()
    [4.0, 4.0, 2.0, 2.0]
    """
    if not multilabel:
        return class_weights(targets, num_classes)[targets]
    positive = np.asarray(targets) > 0.5
    n = len(positive)
    inverse = n / np.maximum(positive.sum(axis=0), 1)
    count = positive.sum(axis=1)
    none = count == 0
    return np.where(none, n / max(int(none.sum()), 1), (positive * inverse).sum(axis=1) / np.maximum(count, 1))


def loss_weights(
    config: Optimisation, train_targets: np.ndarray, num_classes: int, multilabel: bool = False
) -> torch.Tensor | None:
    """The loss weights ``class_weights=`` asks for: None, inverse class frequencies (multi-label: capped positive
    weights per label) from the training targets, or the given list (one value per class).

    Raises:
        ConfigError: a list whose length is not the number of classes.
    """
    if config.class_weights == "none":
        return None
    if config.class_weights == "auto":
        values = pos_weights(train_targets) if multilabel else class_weights(train_targets, num_classes)
        return torch.tensor(values, dtype=torch.float32)
    if len(config.class_weights) != num_classes:
        what = "findings: give one positive weight per finding" if multilabel else "classes: give one per class"
        raise ConfigError(
            f"class_weights has {len(config.class_weights)} values; the data has {num_classes} {what} in class "
            "order, or class_weights=auto"
        )
    return torch.tensor(config.class_weights, dtype=torch.float32)
