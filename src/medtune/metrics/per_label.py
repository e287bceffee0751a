"""Multi-label metrics on numpy arrays: per-label thresholds, per-label and averaged scores, bootstrap intervals.

Everything here is a pure function of ``targets`` (N x C, 1 where image n carries label c) and ``probs`` (N x C
independent per-label probabilities, sigmoid outputs). A label is predicted when its probability, rounded to
`DECIMALS` decimals (as ``predictions.csv`` and ``medtune predict`` write it), reaches its threshold, so a file of
written probabilities gives back exactly the written labels.

The bootstrap is the vectorised one of `medtune.metrics.bootstrap`: a block of resamples is a matrix of draw counts
per image, per-label counts come from one matrix product and AUCs from the Mann-Whitney statistic over tie groups
(`medtune.metrics.classification.compute_binary_auc_weighted`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medtune.errors import DataError
from medtune.metrics.bootstrap import check_bootstrap_options, compute_bootstrap_intervals
from medtune.metrics.classification import compute_binary_auc_weighted, to_json

#: Ways to choose a label's threshold on the validation split.
THRESHOLD_METHODS = ("youden", "f1")
#: The threshold of a label that cannot be chosen (no positive or no negative image to choose on).
DEFAULT_THRESHOLD = 0.5
#: Probabilities are compared with thresholds after rounding to this many decimals (as files hold them).
DECIMALS = 6
# Scores of two cut points closer than this are equal (1/3 - 0 and 1 - 2/3 differ in the last bit).
_TIE = 1e-12


def predict_labels(probs: np.ndarray, thresholds: np.ndarray | Sequence[float]) -> np.ndarray:
    """Boolean ``(N, C)``: label c is predicted for image n when ``round(probs[n, c], 6) >= thresholds[c]``.

    >>> predict_labels(np.array([[0.7, 0.2], [0.4, 0.9]]), [0.5, 0.9]).tolist()
    [[True, False], [False, True]]
    """
    return np.round(np.asarray(probs, dtype=np.float64), DECIMALS) >= np.asarray(thresholds, dtype=np.float64)


def choose_thresholds(
    targets: np.ndarray | Sequence[Sequence[int]],
    probs: np.ndarray | Sequence[Sequence[float]],
    classes: Sequence[str],
    method: str = "youden",
) -> tuple[list[float], list[str]]:
    """Choose one threshold per label on labelled images (the validation split).

    ``youden`` maximises Youden's J = sensitivity + specificity - 1 (TPR - FPR); ``f1`` maximises the label's F1.
    Candidates are the label's distinct rounded probabilities (predict when ``prob >= threshold``, the thresholds
    of scikit-learn's ``roc_curve``); among equally good ones the highest is taken. A label without a positive or
    without a negative image keeps `DEFAULT_THRESHOLD`, and a note says so.

    Args:
        targets: multi-hot ``(N, C)``.
        probs: per-label probabilities ``(N, C)``.
        classes: the C label names.
        method: ``youden`` or ``f1``.

    Returns:
        The C thresholds and the notes about labels that kept the default.

    >>> choose_thresholds([[1], [1], [0], [0]], [[0.9], [0.4], [0.5], [0.1]], ["a"])
    ([0.9], [])
    >>> choose_thresholds([[1], [1], [0], [0]], [[0.9], [0.4], [0.5], [0.1]], ["a"], "f1")
    ([0.4], [])
    """
    if method not in THRESHOLD_METHODS:
        raise DataError(f"unknown threshold method {method!r}; expected one of {', '.join(THRESHOLD_METHODS)}")
    positive, probs, classes = _validate(targets, probs, classes)
    scores = np.round(probs, DECIMALS)
    thresholds, notes = [], []
    for c, name in enumerate(classes):
        n_pos = int(positive[:, c].sum())
        if n_pos == 0 or n_pos == len(positive):
            which = "no positive" if n_pos == 0 else "no negative"
            notes.append(f"label '{name}' has {which} image to choose its threshold on: it keeps {DEFAULT_THRESHOLD}")
            thresholds.append(DEFAULT_THRESHOLD)
            continue
        cuts, tp, fp = _cumulative_counts(positive[:, c], scores[:, c])
        youden = tp / n_pos - fp / (len(positive) - n_pos)
        score = youden if method == "youden" else 2 * tp / (tp + fp + n_pos)
        best = int(np.flatnonzero(score >= score.max() - _TIE)[0])  # the highest of (numerically) equal scores
        thresholds.append(float(cuts[best]))
    return thresholds, notes


def _cumulative_counts(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores, highest first, with the true and false positives when predicting ``score >= cut``."""
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    last = np.r_[ordered[1:] != ordered[:-1], True]  # the last image of each group of equal scores
    tp = np.cumsum(positive[order])[last].astype(np.float64)
    fp = np.cumsum(~positive[order])[last].astype(np.float64)
    return ordered[last], tp, fp


def compute_multilabel_metrics(
    targets: np.ndarray | Sequence[Sequence[int]],
    probs: np.ndarray | Sequence[Sequence[float]],
    classes: Sequence[str],
    thresholds: Sequence[float] | None = None,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Compute every multi-label metric medtune reports, with percentile bootstrap intervals.

    Threshold metrics use `predict_labels`. Precision, recall and F1 follow scikit-learn with ``zero_division=0``
    (``average=None``, ``"macro"``, ``"micro"`` and ``"weighted"``); the sample-averaged ones use
    ``zero_division=1``, so an image with no label that gets none scores 1. ``accuracy`` is the exact-match
    (subset) accuracy, ``label_accuracy`` is 1 - Hamming loss, ``balanced_accuracy`` the mean over labels of
    (sensitivity + specificity) / 2. A label AUC is None with a warning when the label has no positive (or no
    negative) image, never an exception; the macro AUC and macro average precision are means over the labels whose
    AUC is defined (None when none is), the micro AUC is the AUC of all (image, label) pairs pooled.

    Intervals come from ``n_bootstrap`` resamples of the images with replacement (``np.random.default_rng(seed)``).
    A resample where a label's AUC is undefined leaves that label out of its macro AUC.

    Args:
        targets: multi-hot ``(N, C)`` (0/1, bool or float).
        probs: per-label probabilities ``(N, C)`` in [0, 1].
        classes: the C label names, in column order.
        thresholds: one per label (default 0.5 each).
        n_bootstrap: bootstrap resamples; 0 skips the intervals.
        confidence: coverage of the intervals, in (0, 1).
        seed: seed of the bootstrap random generator.

    Returns:
        A JSON-ready dict (NaN written as None) with ``n``, ``classes``, ``multilabel`` (True), ``thresholds``
        (name to value), ``accuracy``, ``label_accuracy``, ``balanced_accuracy``, ``log_loss`` (mean binary cross-
        entropy), ``macro`` / ``micro`` (precision, recall, f1, auc, average_precision), ``weighted`` (precision,
        recall, f1), ``samples`` (precision, recall, f1), ``per_class`` (name to support, prevalence, threshold,
        precision, recall, specificity, f1, auc, average_precision), ``intervals`` (auc, micro_auc, accuracy,
        balanced_accuracy, f1, and per_class auc / f1 / recall, each ``[lo, hi]``), ``confidence``,
        ``n_bootstrap`` and ``warnings``.

    Raises:
        DataError: arrays of the wrong shape, disagreeing with each other or with ``classes``, empty, holding NaN,
            targets other than 0/1, probabilities outside [0, 1], or thresholds of the wrong length.
        ConfigError: ``n_bootstrap`` or ``confidence`` out of range.

    >>> m = compute_multilabel_metrics([[1, 0], [0, 1], [1, 1], [0, 0]],
    ...                                [[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.2, 0.1]], ["a", "b"], n_bootstrap=0)
    >>> m["per_class"]["a"]["auc"], m["per_class"]["b"]["recall"], m["accuracy"]
    (1.0, 0.5, 0.75)
    """
    positive, probs, classes = _validate(targets, probs, classes)
    check_bootstrap_options(n_bootstrap, confidence)
    n, k = probs.shape
    thresholds = _check_thresholds(thresholds, k)
    predicted = predict_labels(probs, thresholds)
    ones = np.ones((1, n))
    counts = _label_counts(ones, positive, predicted)
    rates = _label_rates(counts)
    class_auc = _label_auc(ones, positive, probs)[0]
    support = positive.sum(axis=0)
    ap = _average_precision(positive, probs)
    intervals, bootstrap_warnings = _bootstrap_intervals(
        positive, probs, predicted, classes, n_bootstrap, confidence, seed
    )
    result = {
        "n": n,
        "classes": classes,
        "multilabel": True,
        "thresholds": dict(zip(classes, thresholds.tolist(), strict=True)),
        "accuracy": _exact_match(ones, positive, predicted)[0],
        "label_accuracy": ((counts["tp"] + counts["tn"]).sum(axis=1) / (n * k))[0],
        "balanced_accuracy": _nanmean(rates["balanced"])[0],
        "log_loss": _binary_log_loss(positive, probs),
        **_averages(positive, probs, counts, rates, class_auc, ap),
        "samples": _sample_rates(positive, predicted),
        "per_class": {
            name: {
                "support": support[c],
                "prevalence": support[c] / n,
                "threshold": thresholds[c],
                "precision": rates["precision"][0, c],
                "recall": rates["recall"][0, c],
                "specificity": rates["specificity"][0, c],
                "f1": rates["f1"][0, c],
                "auc": class_auc[c],
                "average_precision": ap[c],
            }
            for c, name in enumerate(classes)
        },
        "intervals": intervals,
        "confidence": confidence,
        "n_bootstrap": n_bootstrap,
        "warnings": _point_warnings(classes, support, n, predicted.sum(axis=0)) + bootstrap_warnings,
    }
    return to_json(result)


def _averages(
    positive: np.ndarray,
    probs: np.ndarray,
    counts: dict[str, np.ndarray],
    rates: dict[str, np.ndarray],
    class_auc: np.ndarray,
    ap: np.ndarray,
) -> dict[str, dict]:
    """The ``macro``, ``micro`` and ``weighted`` averages of the point estimates (one sample: the images as given)."""
    support = positive.sum(axis=0)
    share = support / support.sum() if support.sum() else np.zeros(probs.shape[1])
    micro = _micro_rates(counts)
    return {
        "macro": {
            "precision": rates["precision"][0].mean(),
            "recall": rates["recall"][0].mean(),
            "f1": rates["f1"][0].mean(),
            "auc": _nanmean(class_auc[None, :])[0],
            "average_precision": _nanmean(ap[None, :])[0],
        },
        "micro": {
            "precision": micro["precision"][0],
            "recall": micro["recall"][0],
            "f1": micro["f1"][0],
            "auc": _micro_auc(np.ones((1, len(positive))), positive, probs)[0],
            "average_precision": _pooled_average_precision(positive, probs),
        },
        "weighted": {name: rates[name][0] @ share for name in ("precision", "recall", "f1")},
    }


# --------------------------------------------------------------------------------------------------- validation


def _validate(targets: object, probs: object, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Check the inputs and return bool targets, float64 probs and the names as a list."""
    try:
        probs = np.asarray(probs, dtype=np.float64)
        targets = np.asarray(targets)
    except (ValueError, TypeError) as error:
        raise DataError(f"targets and probs must be rectangular (N, C) number arrays ({error})") from error
    if probs.ndim != 2 or targets.shape != probs.shape:
        raise DataError(
            f"targets and probs must both have shape (N, C) (one column per label), got {targets.shape} and "
            f"{probs.shape}"
        )
    if probs.size == 0:
        raise DataError("targets and probs are empty (N = 0 or C = 0): there is nothing to evaluate; check the split")
    classes = [str(name) for name in classes]
    if len(classes) != probs.shape[1] or len(set(classes)) != len(classes):
        raise DataError(f"give {probs.shape[1]} unique label names, one per column, got {classes}")
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
        raise DataError(
            "probs must be per-label probabilities in [0, 1] without NaN; apply a sigmoid to the logits first"
        )
    if not np.isin(targets, (0, 1)).all():
        raise DataError("targets must be multi-hot: 1 where an image carries a label, 0 elsewhere")
    return targets.astype(bool), probs, classes


def _check_thresholds(thresholds: Sequence[float] | None, k: int) -> np.ndarray:
    if thresholds is None:
        return np.full(k, DEFAULT_THRESHOLD)
    values = np.asarray(thresholds, dtype=np.float64)
    if values.shape != (k,) or not np.isfinite(values).all():
        raise DataError(f"give one finite threshold per label ({k}), got {list(np.ravel(values))}")
    return values


# ----------------------------------------------------------------------------------------- vectorised building blocks


def _label_counts(weights: np.ndarray, positive: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """Weighted true/false positives and negatives per label, each (B, C), for B weighted samples."""
    tp = weights @ (positive & predicted)
    fp = weights @ (~positive & predicted)
    fn = weights @ (positive & ~predicted)
    tn = weights @ (~positive & ~predicted)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def _label_rates(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-label precision, recall, specificity, F1 (zero_division=0) and balanced accuracy (NaN where undefined)."""
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    pos, neg, predicted = tp + fn, tn + fp, tp + fp
    with np.errstate(invalid="ignore", divide="ignore"):
        recall_or_nan = tp / pos
        specificity_or_nan = tn / neg
        f1 = np.where(pos + predicted > 0, 2 * tp / (pos + predicted), 0.0)
        return {
            "precision": np.where(predicted > 0, tp / predicted, 0.0),
            "recall": np.where(pos > 0, recall_or_nan, 0.0),
            "recall_or_nan": recall_or_nan,
            "specificity": np.where(neg > 0, specificity_or_nan, 0.0),
            "f1": f1,
            "f1_or_nan": np.where(pos + predicted > 0, f1, np.nan),
            "balanced": (recall_or_nan + specificity_or_nan) / 2,
        }


def _micro_rates(counts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    tp, fp, fn = (counts[key].sum(axis=1) for key in ("tp", "fp", "fn"))
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "precision": np.where(tp + fp > 0, tp / (tp + fp), 0.0),
            "recall": np.where(tp + fn > 0, tp / (tp + fn), 0.0),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
        }


def _label_auc(weights: np.ndarray, positive: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """AUC per label (B, C), NaN where a label has no positive or no negative in a sample."""
    return np.stack(
        [compute_binary_auc_weighted(weights, positive[:, c], probs[:, c]) for c in range(probs.shape[1])], axis=1
    )


def _micro_auc(weights: np.ndarray, positive: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """AUC (B,) of every (image, label) pair pooled; each pair weighs as much as its image."""
    k = probs.shape[1]
    return compute_binary_auc_weighted(np.repeat(weights, k, axis=1), positive.ravel(), probs.ravel())


def _exact_match(weights: np.ndarray, positive: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return (weights @ (positive == predicted).all(axis=1)) / weights.sum(axis=1)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Row means over the defined (non-NaN) entries, NaN for a row with none."""
    defined = ~np.isnan(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(defined, values, 0.0).sum(axis=1) / defined.sum(axis=1)


def _sample_rates(positive: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 per image, averaged (scikit-learn ``average="samples"``, ``zero_division=1``)."""
    tp = (positive & predicted).sum(axis=1)
    n_true, n_pred = positive.sum(axis=1), predicted.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / n_pred, 1.0)
        recall = np.where(n_true > 0, tp / n_true, 1.0)
        f1 = np.where(n_true + n_pred > 0, 2 * tp / (n_true + n_pred), 1.0)
    return {"precision": precision.mean(), "recall": recall.mean(), "f1": f1.mean()}


def _average_precision(positive: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """scikit-learn's average precision per label, NaN for a label without positives (or without negatives)."""
    from sklearn.metrics import average_precision_score

    out = np.full(probs.shape[1], np.nan)
    for c in range(probs.shape[1]):
        if 0 < positive[:, c].sum() < len(positive):
            out[c] = average_precision_score(positive[:, c], probs[:, c])
    return out


def _pooled_average_precision(positive: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    if not 0 < positive.sum() < positive.size:
        return float("nan")
    return float(average_precision_score(positive.ravel(), probs.ravel()))


def _binary_log_loss(positive: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy over images and labels, probabilities clipped to [eps, 1 - eps]."""
    eps = np.finfo(np.float64).eps
    p = np.clip(probs, eps, 1 - eps)
    return float(-np.where(positive, np.log(p), np.log1p(-p)).mean())


# ---------------------------------------------------------------------------------------------------- bootstrap


def _bootstrap_intervals(
    positive: np.ndarray,
    probs: np.ndarray,
    predicted: np.ndarray,
    classes: list[str],
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> tuple[dict, list[str]]:
    """Percentile intervals of the headline and per-label metrics, and one warning listing the labels whose AUC
    was undefined in some resamples."""

    def statistics(weights: np.ndarray) -> dict[str, np.ndarray]:
        rates = _label_rates(_label_counts(weights, positive, predicted))
        class_auc = _label_auc(weights, positive, probs)
        return {
            "auc": _nanmean(class_auc),
            "micro_auc": _micro_auc(weights, positive, probs),
            "accuracy": _exact_match(weights, positive, predicted),
            "balanced_accuracy": _nanmean(rates["balanced"]),
            "f1": rates["f1"].mean(axis=1),
            "class_auc": class_auc,
            "class_f1": rates["f1_or_nan"],
            "class_recall": rates["recall_or_nan"],
        }

    intervals, samples = compute_bootstrap_intervals(
        statistics,
        len(positive),
        classes,
        ("auc", "micro_auc", "accuracy", "balanced_accuracy", "f1"),
        ("auc", "f1", "recall"),
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
        cells_per_image=probs.shape[1],  # the pooled (image, label) pairs of the micro AUC: the largest array
    )
    missing = np.isnan(samples["class_auc"]).sum(axis=0)
    partly = [f"{name} ({int(m)})" for name, m in zip(classes, missing, strict=True) if 0 < m < n_bootstrap]
    warnings = []
    if partly:
        warnings.append(
            f"the AUC of some labels was undefined in some of the {n_bootstrap} bootstrap resamples (no positive "
            f"image drawn): {', '.join(partly)}; their intervals use the other resamples"
        )
    return intervals, warnings


def _point_warnings(classes: list[str], support: np.ndarray, n: int, predicted: np.ndarray) -> list[str]:
    """Messages for labels whose AUC is undefined here and for labels never predicted."""
    messages = []
    absent = ", ".join(f"'{name}'" for name, count in zip(classes, support, strict=True) if count == 0)
    if absent:
        messages.append(
            f"no positive image here for label(s) {absent}: AUC undefined (None) and left out of the macro AUC; "
            "recall 0"
        )
    everywhere = ", ".join(f"'{name}'" for name, count in zip(classes, support, strict=True) if count == n)
    if everywhere:
        messages.append(f"label(s) {everywhere} present in every image here: AUC undefined (None)")
    never = [name for name, count in zip(classes, predicted, strict=True) if count == 0]
    if never:
        messages.append(f"never predicted at its threshold (precision set to 0): {', '.join(never)}")
    return messages
