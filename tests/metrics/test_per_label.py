"""Tests for medtune.metrics.per_label: hand-checked values, agreement with scikit-learn, thresholds, intervals."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from sklearn import metrics as skm

from medtune.errors import DataError
from medtune.metrics import choose_thresholds, compute_multilabel_metrics, per_label, predict_labels

NAMES = ["effusion", "edema", "mass", "nodule", "hernia"]


def make_data(n: int, seed: int = 0, prevalence=(0.4, 0.25, 0.1, 0.05, 0.02)) -> tuple[np.ndarray, np.ndarray]:
    """Seeded multi-hot targets with the given label prevalences and sigmoid scores that beat chance, rounded to
    6 decimals (as predictions.csv holds them)."""
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, len(prevalence))) < prevalence).astype(int)
    probs = 1 / (1 + np.exp(-(rng.normal(size=targets.shape) + 1.5 * targets - 1)))
    return targets, probs.round(6)


def test_hand_checked_values() -> None:
    targets = [[1, 0], [0, 1], [1, 1], [0, 0]]
    probs = [[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.2, 0.1]]
    m = compute_multilabel_metrics(targets, probs, ["a", "b"], n_bootstrap=0)
    a, b = m["per_class"]["a"], m["per_class"]["b"]
    assert (a["auc"], b["auc"], m["macro"]["auc"], m["micro"]["auc"]) == (1.0, 1.0, 1.0, 1.0)
    assert (a["precision"], a["recall"], a["f1"]) == (1.0, 1.0, 1.0)
    assert (b["precision"], b["recall"]) == (1.0, 0.5) and b["f1"] == pytest.approx(2 / 3)
    assert (a["support"], a["prevalence"], a["threshold"]) == (2, 0.5, 0.5)
    assert m["accuracy"] == 0.75  # the third image misses edema
    assert m["label_accuracy"] == 7 / 8
    assert m["balanced_accuracy"] == pytest.approx((1.0 + 0.75) / 2)
    assert m["samples"]["f1"] == pytest.approx((3 + 2 / 3) / 4)  # an image with no label and none predicted: 1
    moved = compute_multilabel_metrics(targets, probs, ["a", "b"], [0.5, 0.35], n_bootstrap=0)
    assert moved["per_class"]["b"]["recall"] == 1.0 and moved["accuracy"] == 1.0  # 0.4 now reaches b's threshold


def test_point_metrics_match_sklearn() -> None:
    targets, probs = make_data(400, seed=1)
    thresholds = [0.3, 0.4, 0.5, 0.6, 0.45]
    m = compute_multilabel_metrics(targets, probs, NAMES, thresholds, n_bootstrap=0)
    predicted = probs >= np.array(thresholds)

    per_label = skm.roc_auc_score(targets, probs, average=None)
    assert [m["per_class"][n]["auc"] for n in NAMES] == pytest.approx(per_label)
    assert m["macro"]["auc"] == pytest.approx(skm.roc_auc_score(targets, probs, average="macro"))
    assert m["micro"]["auc"] == pytest.approx(skm.roc_auc_score(targets, probs, average="micro"))
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(targets, predicted, average=average, zero_division=0)
        assert [m[average]["precision"], m[average]["recall"], m[average]["f1"]] == pytest.approx([p, r, f]), average
    p, r, f, _ = skm.precision_recall_fscore_support(targets, predicted, average="samples", zero_division=1)
    assert [m["samples"]["precision"], m["samples"]["recall"], m["samples"]["f1"]] == pytest.approx([p, r, f])
    p, r, f, s = skm.precision_recall_fscore_support(targets, predicted, average=None, zero_division=0)
    for c, name in enumerate(NAMES):
        got = m["per_class"][name]
        assert [got["precision"], got["recall"], got["f1"], got["support"]] == pytest.approx([p[c], r[c], f[c], s[c]])
        assert got["average_precision"] == pytest.approx(skm.average_precision_score(targets[:, c], probs[:, c]))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(targets, predicted))  # exact match
    assert m["label_accuracy"] == pytest.approx(1 - skm.hamming_loss(targets, predicted))
    assert m["macro"]["average_precision"] == pytest.approx(skm.average_precision_score(targets, probs))
    micro_ap = skm.average_precision_score(targets, probs, average="micro")
    assert m["micro"]["average_precision"] == pytest.approx(micro_ap)
    bce = np.mean([skm.log_loss(targets[:, c], probs[:, c]) for c in range(len(NAMES))])
    assert m["log_loss"] == pytest.approx(bce)


def test_intervals_contain_the_estimate_and_repeat_with_the_seed() -> None:
    targets, probs = make_data(300, seed=2)
    m = compute_multilabel_metrics(targets, probs, NAMES, n_bootstrap=400, seed=3)
    for key, point in [
        ("auc", m["macro"]["auc"]),
        ("micro_auc", m["micro"]["auc"]),
        ("accuracy", m["accuracy"]),
        ("balanced_accuracy", m["balanced_accuracy"]),
        ("f1", m["macro"]["f1"]),
    ]:
        lo, hi = m["intervals"][key]
        assert lo <= point <= hi and hi - lo < 0.3, key
    for name in NAMES:
        for metric in ("auc", "f1", "recall"):
            lo, hi = m["intervals"]["per_class"][name][metric]
            assert lo <= m["per_class"][name][metric] <= hi, (name, metric)
    again = compute_multilabel_metrics(targets, probs, NAMES, n_bootstrap=400, seed=3)
    assert json.dumps(again) == json.dumps(m)
    assert json.loads(json.dumps(m, allow_nan=False)) == m


def test_label_without_positives_is_none_with_a_warning() -> None:
    targets, probs = make_data(200, seed=4)
    targets[:, 4] = 0  # no hernia in this split
    m = compute_multilabel_metrics(targets, probs, NAMES, n_bootstrap=200)
    assert m["per_class"]["hernia"]["auc"] is None and m["per_class"]["hernia"]["support"] == 0
    assert m["per_class"]["hernia"]["average_precision"] is None
    assert m["intervals"]["per_class"]["hernia"]["auc"] == [None, None]
    defined = skm.roc_auc_score(targets[:, :4], probs[:, :4], average="macro")
    assert m["macro"]["auc"] == pytest.approx(defined)  # the mean over the labels that have an AUC
    assert any("no positive image here for label(s) 'hernia'" in w for w in m["warnings"])
    everywhere = compute_multilabel_metrics(np.ones((10, 1)), probs[:10, :1], ["all"], n_bootstrap=20)
    assert everywhere["per_class"]["all"]["auc"] is None and everywhere["macro"]["auc"] is None
    assert any("'all' present in every image" in w for w in everywhere["warnings"])


def test_rare_label_intervals_use_the_resamples_that_define_them() -> None:
    targets, probs = make_data(100, seed=5)
    targets[:, 4] = 0
    targets[7, 4] = 1  # one hernia: missing from about a third of the resamples
    m = compute_multilabel_metrics(targets, probs, NAMES, n_bootstrap=300)
    assert m["per_class"]["hernia"]["auc"] is not None
    assert None not in m["intervals"]["per_class"]["hernia"]["auc"]
    assert any("hernia (" in w and "bootstrap resamples" in w for w in m["warnings"])


def test_youden_and_f1_pick_known_cut_points() -> None:
    # label a: negatives 0.1 0.2 0.3 0.55 0.6, positives 0.5 0.7 0.8 0.9 -> both pick 0.7 (J 0.75, F1 6/7)
    # label b: positives 0.4 0.45 0.9 among negatives 0.1 0.2 0.5 0.6 0.7 0.8: J ties at 0.9 and 0.4 (the highest
    # is kept), F1 is best at 0.4 (6/10 against 2/4 at 0.9)
    a_scores, a_targets = [0.1, 0.2, 0.3, 0.55, 0.6, 0.5, 0.7, 0.8, 0.9], [0, 0, 0, 0, 0, 1, 1, 1, 1]
    b_scores, b_targets = [0.4, 0.45, 0.9, 0.1, 0.2, 0.5, 0.6, 0.7, 0.8], [1, 1, 1, 0, 0, 0, 0, 0, 0]
    targets, probs = np.array([a_targets, b_targets]).T, np.array([a_scores, b_scores]).T
    assert choose_thresholds(targets, probs, ["a", "b"], "youden") == ([0.7, 0.9], [])
    assert choose_thresholds(targets, probs, ["a", "b"], "f1") == ([0.7, 0.4], [])


def test_thresholds_match_sklearn_curves() -> None:
    targets, probs = make_data(300, seed=6)
    youden, _ = choose_thresholds(targets, probs, NAMES, "youden")
    best_f1, _ = choose_thresholds(targets, probs, NAMES, "f1")
    for c in range(len(NAMES)):
        fpr, tpr, cuts = skm.roc_curve(targets[:, c], probs[:, c], drop_intermediate=False)
        j = (tpr - fpr)[1:]
        assert youden[c] == cuts[1:][np.flatnonzero(j >= j.max() - 1e-12)[0]]
        precision, recall, cuts = skm.precision_recall_curve(targets[:, c], probs[:, c])
        f1 = (2 * precision * recall / np.maximum(precision + recall, 1e-300))[:-1][::-1]
        assert best_f1[c] == cuts[::-1][np.flatnonzero(f1 >= f1.max() - 1e-12)[0]]  # the highest of equal ones


def test_label_without_positives_keeps_the_default_threshold() -> None:
    targets, probs = make_data(50, seed=7)
    targets[:, 2] = 0
    thresholds, notes = choose_thresholds(targets, probs, NAMES)
    assert thresholds[2] == 0.5
    assert notes == ["label 'mass' has no positive image to choose its threshold on: it keeps 0.5"]


def test_predictions_compare_rounded_probabilities() -> None:
    assert predict_labels(np.array([[0.1234564, 0.1234566]]), [0.123456, 0.123457]).tolist() == [[True, True]]
    assert predict_labels(np.array([[0.49, 0.5]]), [0.5, 0.5]).tolist() == [[False, True]]


@pytest.mark.parametrize(
    ("targets", "probs", "thresholds", "match"),
    [
        ([[1, 0]], [[0.5, 0.5, 0.5]], None, r"shape \(N, C\)"),
        ([[2, 0]], [[0.5, 0.5]], None, "multi-hot"),
        ([[1, 0]], [[1.5, 0.5]], None, "sigmoid"),
        ([[1, 0]], [[np.nan, 0.5]], None, "sigmoid"),
        ([[1, 0]], [[0.5, 0.5]], [0.5], "one finite threshold per label"),
        (np.zeros((0, 2)), np.zeros((0, 2)), None, "empty"),
    ],
)
def test_bad_input_raises_data_error(targets: object, probs: object, thresholds: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        compute_multilabel_metrics(targets, probs, ["a", "b"], thresholds, n_bootstrap=10)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(per_label).failed == 0
