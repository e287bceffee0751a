"""Classification metrics on numpy arrays: point estimates, calibration and bootstrap confidence intervals.

Everything here is a pure function of ``targets`` (N integer class indices) and ``probs`` (N x K class
probabilities). `compute_metrics` returns one JSON-ready dict for reports; `compute_auc` and `compute_ece` are
the building blocks it uses.

The bootstrap (`medtune.metrics.bootstrap`) is vectorised: a resample is stored as a vector of draw counts per
image, so every metric is computed for a whole block of resamples with a few array operations (confusion counts
by a matrix product, AUC by the Mann-Whitney statistic over tie groups, `compute_binary_auc_weighted`) instead of
calling scikit-learn once per resample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from medtune.errors import ConfigError, DataError
from medtune.metrics.bootstrap import check_bootstrap_options, compute_bootstrap_intervals

# How far a row of probabilities may sum from 1 before it is refused as "not probabilities".
_ROW_SUM_TOLERANCE = 1e-2


def compute_metrics(
    targets: np.ndarray | Sequence[int],
    probs: np.ndarray | Sequence[Sequence[float]],
    classes: Sequence[str],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    n_bins: int = 15,
    predictions: np.ndarray | None = None,
) -> dict:
    """Compute every classification metric medtune reports, with percentile bootstrap intervals.

    The predicted class is the argmax of ``probs`` unless `predictions` gives it (ordinal grades: the median).
    Precision, recall and F1 follow scikit-learn with ``zero_division=0``: a class that is never predicted has
    precision 0, a class with no images has recall 0, and F1 is 0 when both are 0. An AUC that cannot be computed
    (a class with no images, or only that class) is None with a message in ``warnings``, never an exception; macro
    AUC is None when any class AUC is.

    Intervals come from ``n_bootstrap`` resamples of the N images with replacement, drawn from
    ``np.random.default_rng(seed)``, so the same inputs and seed give the same dict. A resample where a metric
    is undefined is skipped for that metric only; an interval is ``[None, None]`` when no resample defines it.

    Args:
        targets: true class indices in ``0..K-1``, shape (N,).
        probs: class probabilities, shape (N, K), rows summing to 1 (two columns for a binary task).
        classes: the K class names, in column order.
        n_bootstrap: number of bootstrap resamples; 0 skips the intervals.
        confidence: coverage of the intervals, in (0, 1).
        seed: seed of the bootstrap random generator.
        n_bins: number of equal-width confidence bins for the expected calibration error.
        predictions: the predicted class index of each image, shape (N,); default the argmax of `probs`.

    Returns:
        A dict of plain Python values (JSON-serialisable, NaN written as None) with keys ``n``, ``classes``,
        ``accuracy``, ``balanced_accuracy``, ``log_loss``, ``ece``, ``macro`` (precision, recall, f1, auc),
        ``weighted`` (precision, recall, f1), ``per_class`` (name to precision, recall, f1, support, auc),
        ``confusion_matrix`` (labels, matrix with rows true and columns predicted), ``intervals`` (accuracy,
        balanced_accuracy, auc, f1 and per_class auc/f1/recall, each ``[lo, hi]``), ``confidence``,
        ``n_bootstrap`` and ``warnings`` (list of messages).

    Raises:
        DataError: when the arrays have the wrong shape, disagree with each other or with ``classes``, are
            empty, hold NaN, or the targets fall outside ``0..K-1``.
        ConfigError: when ``n_bootstrap``, ``confidence`` or ``n_bins`` is out of range.

    >>> m = compute_metrics([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], ["normal", "pneumonia"])
    >>> m["accuracy"], m["per_class"]["pneumonia"]["recall"], m["macro"]["auc"]
    (0.75, 0.5, 1.0)
    """
    targets, probs, classes = _validate(targets, probs, classes)
    _check_options(n_bootstrap, confidence, n_bins)
    n, k = probs.shape
    preds = probs.argmax(axis=1) if predictions is None else np.asarray(predictions, dtype=np.int64)
    ones = np.ones((1, n))

    rates = _compute_rates(_compute_confusion(ones, targets, preds, k))
    per_class_auc = _compute_auc_weighted(ones, targets, probs)[0]
    macro_auc = _compute_macro_auc(per_class_auc[None, :])[0]
    confusion = np.bincount(targets * k + preds, minlength=k * k).reshape(k, k)
    support = confusion.sum(axis=1)
    share = support / n

    intervals, bootstrap_warnings = _bootstrap_intervals(targets, probs, preds, classes, n_bootstrap, confidence, seed)
    result = {
        "n": n,
        "classes": classes,
        "accuracy": rates["accuracy"][0],
        "balanced_accuracy": rates["balanced_accuracy"][0],
        "log_loss": _compute_log_loss(targets, probs),
        "ece": compute_ece(targets, probs, n_bins=n_bins),
        "macro": {
            "precision": rates["precision"][0].mean(),
            "recall": rates["recall"][0].mean(),
            "f1": rates["f1"][0].mean(),
            "auc": macro_auc,
        },
        "weighted": {
            "precision": rates["precision"][0] @ share,
            "recall": rates["recall"][0] @ share,
            "f1": rates["f1"][0] @ share,
        },
        "per_class": {
            name: {
                "precision": rates["precision"][0, c],
                "recall": rates["recall"][0, c],
                "f1": rates["f1"][0, c],
                "support": support[c],
                "auc": per_class_auc[c],
            }
            for c, name in enumerate(classes)
        },
        "confusion_matrix": {"labels": classes, "matrix": confusion},
        "intervals": intervals,
        "confidence": confidence,
        "n_bootstrap": n_bootstrap,
        "warnings": _point_warnings(classes, support, confusion.sum(axis=0)) + bootstrap_warnings,
    }
    return to_json(result)


def compute_auc(
    targets: np.ndarray | Sequence[int], probs: np.ndarray | Sequence[Sequence[float]]
) -> tuple[np.ndarray, float]:
    """Compute one-vs-rest ROC AUC per class and their macro average.

    Ties in the scores count one half, as in scikit-learn's ``roc_auc_score``. A class AUC is NaN when that
    class has no images or is the only class present; the macro AUC is NaN when any class AUC is. With two
    classes both entries equal the binary AUC of class 1 computed from ``probs[:, 1]``.

    Args:
        targets: true class indices in ``0..K-1``, shape (N,).
        probs: class probabilities or scores, shape (N, K).

    Returns:
        The K per-class AUCs (NaN where undefined) and the macro AUC.

    Raises:
        DataError: on the same bad inputs as `compute_metrics`.

    >>> per_class, macro = compute_auc([0, 0, 1, 1], [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    >>> per_class.tolist(), macro
    ([0.75, 0.75], 0.75)
    """
    targets, probs, _ = _validate(targets, probs, None)
    per_class = _compute_auc_weighted(np.ones((1, len(targets))), targets, probs)[0]
    return per_class, float(_compute_macro_auc(per_class[None, :])[0])


def compute_ece(
    targets: np.ndarray | Sequence[int], probs: np.ndarray | Sequence[Sequence[float]], n_bins: int = 15
) -> float:
    """Compute the expected calibration error of the top-label confidence.

    Each image's confidence is its largest probability. Confidences fall into ``n_bins`` equal-width bins
    over [0, 1], each bin ``(lo, hi]`` (the first also holds 0), and the ECE is the bin-count weighted mean of
    ``|accuracy - mean confidence|`` over non-empty bins.

    Args:
        targets: true class indices in ``0..K-1``, shape (N,).
        probs: class probabilities, shape (N, K).
        n_bins: number of bins.

    Returns:
        The ECE, between 0 and 1.

    Raises:
        DataError: on the same bad inputs as `compute_metrics`.
        ConfigError: when ``n_bins`` is not a positive integer.

    >>> round(compute_ece([0, 0, 1, 1], [[0.8, 0.2], [0.8, 0.2], [0.8, 0.2], [0.2, 0.8]]), 6)
    0.05
    """
    counts, confidence, accuracy = compute_reliability(targets, probs, n_bins)
    return float(np.abs(np.nan_to_num(accuracy - confidence) * counts).sum() / counts.sum())


def compute_reliability(
    targets: np.ndarray | Sequence[int], probs: np.ndarray | Sequence[Sequence[float]], n_bins: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compute the reliability diagram of the top-label confidence: images, mean confidence and accuracy per bin.

    Bins are those of `compute_ece` (``n_bins`` equal-width bins over [0, 1], each ``(lo, hi]``).

    Returns:
        ``counts`` (images per bin), ``confidence`` and ``accuracy`` (bin means, NaN for an empty bin), each of
        shape ``(n_bins,)``.

    >>> counts, confidence, accuracy = compute_reliability([0, 1], [[0.9, 0.1], [0.7, 0.3]], n_bins=2)
    >>> counts.tolist(), confidence.tolist(), accuracy.tolist()
    ([0, 2], [nan, 0.8], [nan, 0.5])
    """
    targets, probs, _ = _validate(targets, probs, None)
    _check_int("n_bins", n_bins, 1, "e.g. 15")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == targets).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], confidence, side="left")
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / counts
    return counts, mean_confidence, accuracy


def _validate(targets: object, probs: object, classes: Sequence[str] | None) -> tuple[np.ndarray, np.ndarray, list]:
    """Check the inputs at the boundary and return them as int64 targets, float64 probs and a list of names."""
    try:
        probs = np.asarray(probs)
    except ValueError as error:
        raise DataError(f"probs must be a rectangular (N, K) array, got ragged rows ({error})") from error
    if probs.shape[0] == 0 or np.size(targets) == 0:
        raise DataError("targets and probs are empty (N = 0): there is nothing to evaluate; check the split")
    if probs.ndim != 2:
        raise DataError(
            f"probs must be 2-D with shape (N, K), got shape {probs.shape}; "
            "for a binary task pass both columns, e.g. np.stack([1 - p, p], axis=1)"
        )
    if not np.issubdtype(probs.dtype, np.number) or np.issubdtype(probs.dtype, np.complexfloating):
        raise DataError(f"probs must be real numbers, got dtype {probs.dtype}")
    probs = probs.astype(np.float64)
    n, k = probs.shape
    if k < 2:
        raise DataError(f"probs must have one column per class and at least 2 columns, got {k}")
    if classes is not None:
        classes = [str(name) for name in classes]
        if len(classes) != k:
            raise DataError(
                f"probs has {k} columns but {len(classes)} classes were given ({classes}); "
                "pass one class name per probability column"
            )
        if len(set(classes)) != k:
            raise DataError(f"class names must be unique, got {classes}")
    bad = ~np.isfinite(probs)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise DataError(
            f"probs holds {int(bad.sum())} NaN or infinite values (first at row {rows[0]}); "
            "check the model output for overflow or missing predictions"
        )
    sums = probs.sum(axis=1)
    if probs.min() < 0 or probs.max() > 1 or np.abs(sums - 1).max() > _ROW_SUM_TOLERANCE:
        raise DataError(
            f"probs must be probabilities in [0, 1] with rows summing to 1, got values in "
            f"[{probs.min():.4g}, {probs.max():.4g}] and row sums in [{sums.min():.4g}, {sums.max():.4g}]; "
            "apply softmax to logits first"
        )
    return _validate_targets(targets, n, k), probs, classes


def _validate_targets(targets: object, n: int, k: int) -> np.ndarray:
    """Check the targets are N whole numbers in 0..k-1 and return them as int64."""
    targets = np.asarray(targets)
    if targets.ndim != 1:
        raise DataError(f"targets must be 1-D class indices with shape (N,), got shape {targets.shape}")
    if len(targets) != n:
        raise DataError(f"targets has {len(targets)} entries but probs has {n} rows; pass one target per row of probs")
    if targets.dtype == bool:
        targets = targets.astype(np.int64)
    if not np.issubdtype(targets.dtype, np.number) or np.issubdtype(targets.dtype, np.complexfloating):
        raise DataError(
            f"targets must be integer class indices, got dtype {targets.dtype}; map class names to indices first"
        )
    if not np.all(np.isfinite(targets)) or not np.all(targets == np.round(targets)):
        raise DataError("targets must be whole-number class indices, got NaN or fractional values")
    outside = (targets < 0) | (targets >= k)
    if outside.any():
        values = np.unique(targets[outside])
        shown = ", ".join(f"{value:g}" for value in values[:5]) + (", ..." if len(values) > 5 else "")
        raise DataError(
            f"targets must be class indices in 0..{k - 1} (one per probs column), got {shown}; "
            "check the class map or the number of classes"
        )
    return targets.astype(np.int64)


def _check_options(n_bootstrap: int, confidence: float, n_bins: int) -> None:
    """Refuse out-of-range bootstrap and binning options."""
    check_bootstrap_options(n_bootstrap, confidence)
    _check_int("n_bins", n_bins, 1, "e.g. 15")


def _check_int(name: str, value: object, minimum: int, hint: str) -> None:
    """Refuse a value that is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum} ({hint}), got {value!r}")


def _compute_confusion(weights: np.ndarray, targets: np.ndarray, preds: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices (B, K, K) of B weighted samples; ``weights[b, i]`` counts image i in sample b."""
    onehot = np.zeros((len(targets), k * k))
    onehot[np.arange(len(targets)), targets * k + preds] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _compute_rates(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy (B,) and per-class precision, recall, F1 (B, K) with zero_division=0."""
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support = confusion.sum(axis=2)
    predicted = confusion.sum(axis=1)
    total = support.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall_or_nan = tp / support
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(support + predicted > 0, 2 * tp / (support + predicted), 0.0)
    present = support > 0
    balanced = np.where(present, recall_or_nan, 0.0).sum(axis=1) / present.sum(axis=1)
    return {
        "accuracy": tp.sum(axis=1) / total,
        "balanced_accuracy": balanced,
        "precision": precision,
        "recall": np.where(present, recall_or_nan, 0.0),
        "recall_or_nan": recall_or_nan,
        "f1": f1,
        "f1_or_nan": np.where(support + predicted > 0, f1, np.nan),
    }


def _compute_auc_weighted(weights: np.ndarray, targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One-vs-rest AUC per class (B, K) of B weighted samples, NaN where a class or its rest is absent."""
    k = probs.shape[1]
    if k == 2:
        auc = compute_binary_auc_weighted(weights, targets == 1, probs[:, 1])
        return np.stack([auc, auc], axis=1)
    return np.stack([compute_binary_auc_weighted(weights, targets == c, probs[:, c]) for c in range(k)], axis=1)


def compute_binary_auc_weighted(weights: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Compute the Mann-Whitney AUC of B weighted samples: P(positive score > negative score) + P(tie) / 2.

    Images are grouped by equal score; per group the weighted positive and negative counts give the number of
    negatives scoring below each positive (ties count half), all in one pass over the sorted groups. With
    weights of ones this is scikit-learn's ``roc_auc_score``; with bootstrap draw counts, the AUC of each resample.

    Args:
        weights: ``(B, N)``; ``weights[b, i]`` counts image i in sample b.
        positive: ``(N,)`` booleans, True for a positive image.
        scores: ``(N,)`` scores, higher meaning more likely positive.

    Returns:
        The B AUCs, NaN for a sample without a positive or without a negative image.

    >>> compute_binary_auc_weighted(np.array([[1.0, 1, 1, 1], [0, 2, 1, 1]]), np.array([False, False, True, True]),
    ...                             np.array([0.1, 0.4, 0.35, 0.8])).tolist()
    [0.75, 0.5]
    """
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sorted_weights = weights[:, order]
    pos = np.add.reduceat(sorted_weights * positive[order], starts, axis=1)
    neg = np.add.reduceat(sorted_weights, starts, axis=1) - pos
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos = pos.sum(axis=1)
    n_neg = neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _compute_macro_auc(per_class: np.ndarray) -> np.ndarray:
    """Mean of the per-class AUCs (B, K) -> (B,), NaN in a row where any class AUC is NaN."""
    return per_class.mean(axis=1)


def _compute_log_loss(targets: np.ndarray, probs: np.ndarray) -> float:
    """Mean negative log probability of the true class, probabilities clipped to [eps, 1 - eps] like sklearn."""
    eps = np.finfo(np.float64).eps
    true_prob = np.clip(probs[np.arange(len(targets)), targets], eps, 1 - eps)
    return float(-np.log(true_prob).mean())


def _bootstrap_intervals(
    targets: np.ndarray,
    probs: np.ndarray,
    preds: np.ndarray,
    classes: list[str],
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> tuple[dict, list[str]]:
    """Percentile bootstrap intervals of the headline metrics and a warning per metric that some resamples lack."""
    k = len(classes)

    def statistics(weights: np.ndarray) -> dict[str, np.ndarray]:
        rates = _compute_rates(_compute_confusion(weights, targets, preds, k))
        class_auc = _compute_auc_weighted(weights, targets, probs)
        return {
            "accuracy": rates["accuracy"],
            "balanced_accuracy": rates["balanced_accuracy"],
            "auc": _compute_macro_auc(class_auc),
            "f1": rates["f1"].mean(axis=1),
            "class_auc": class_auc,
            "class_f1": rates["f1_or_nan"],
            "class_recall": rates["recall_or_nan"],
        }

    intervals, samples = compute_bootstrap_intervals(
        statistics,
        len(targets),
        classes,
        ("accuracy", "balanced_accuracy", "auc", "f1"),
        ("auc", "f1", "recall"),
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    return intervals, _bootstrap_warnings(samples, classes, n_bootstrap)


def _point_warnings(classes: list[str], support: np.ndarray, predicted: np.ndarray) -> list[str]:
    """Messages for classes whose AUC, recall or precision cannot be computed from these targets."""
    messages = []
    for name, true_count, pred_count in zip(classes, support, predicted, strict=True):
        if true_count == 0:
            messages.append(
                f"class '{name}' has no images in these targets: its AUC is undefined (None) and its recall is set "
                "to 0 (zero_division=0)"
            )
        elif true_count == support.sum():
            messages.append(
                f"class '{name}' is the only class in these targets: no AUC is defined without images of another class"
            )
        if pred_count == 0:
            messages.append(f"class '{name}' is never predicted: its precision is set to 0 (zero_division=0)")
    if (support == 0).any() or (support == support.sum()).any():
        messages.append("macro AUC is undefined (None) because at least one class AUC is undefined")
    return messages


def _bootstrap_warnings(stacked: dict[str, np.ndarray], classes: list[str], n_bootstrap: int) -> list[str]:
    """Messages for interval metrics that were undefined in some, but not all, resamples."""
    messages = []
    checks = [("macro AUC", stacked["auc"])]
    for c, name in enumerate(classes):
        checks += [
            (f"AUC of class '{name}'", stacked["class_auc"][:, c]),
            (f"F1 of class '{name}'", stacked["class_f1"][:, c]),
            (f"recall of class '{name}'", stacked["class_recall"][:, c]),
        ]
    for label, values in checks:
        missing = int(np.isnan(values).sum())
        if 0 < missing < n_bootstrap:
            messages.append(
                f"{label} was undefined in {missing} of {n_bootstrap} bootstrap resamples (a class was not drawn); "
                f"its interval uses the other {n_bootstrap - missing}"
            )
    return messages


def to_json(value: object) -> object:
    """Turn numpy scalars and arrays into plain Python values, and NaN into None, recursively (dict keys as str).

    >>> to_json({"auc": np.float64("nan"), 1: (np.int64(2), np.float32(0.5)), "ok": np.bool_(True)})
    {'auc': None, '1': [2, 0.5], 'ok': True}
    """
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [to_json(item) for item in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value
