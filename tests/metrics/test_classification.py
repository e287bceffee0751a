"""Tests for medtune.metrics.classification: agreement with scikit-learn, ECE, bootstrap intervals, bad inputs."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from sklearn import metrics as skm

from medtune.errors import ConfigError, DataError
from medtune.metrics import classification, compute_auc, compute_ece, compute_metrics


def make_data(n: int, k: int, seed: int = 0, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Seeded targets and softmax probabilities that beat chance.

    With ``ties`` every row is snapped to the nearest of 12 fixed probability vectors, so equal scores are
    exactly equal in every column (rounding logits would leave last-bit differences after the softmax).
    """
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[targets]
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    if ties:
        palette = rng.dirichlet(np.ones(k), size=12)
        probs = palette[np.abs(probs[:, None, :] - palette[None]).sum(axis=2).argmin(axis=1)]
    return targets, probs


def names(k: int) -> list[str]:
    return ["normal", "pneumonia", "covid", "tb", "other"][:k]


CASES = [(2, False), (2, True), (3, False), (3, True)]


@pytest.mark.parametrize(("k", "ties"), CASES)
def test_point_metrics_match_sklearn(k: int, ties: bool) -> None:
    targets, probs = make_data(300, k, seed=k, ties=ties)
    preds = probs.argmax(axis=1)
    labels = list(range(k))
    if ties:
        assert len(np.unique(probs[:, 1])) <= 12, "the ties case must actually contain ties"
    m = compute_metrics(targets, probs, names(k), n_bootstrap=0)

    assert m["n"] == 300
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(targets, preds))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(targets, preds))
    assert m["log_loss"] == pytest.approx(skm.log_loss(targets, probs, labels=labels))
    assert m["confusion_matrix"]["labels"] == names(k)
    assert m["confusion_matrix"]["matrix"] == skm.confusion_matrix(targets, preds, labels=labels).tolist()

    p, r, f, s = skm.precision_recall_fscore_support(targets, preds, labels=labels, zero_division=0)
    for c, name in enumerate(names(k)):
        got = m["per_class"][name]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx([p[c], r[c], f[c]])
        assert got["support"] == s[c]
        assert got["auc"] == pytest.approx(skm.roc_auc_score(targets == c, probs[:, c]))
        if k == 2:
            assert got["auc"] == pytest.approx(skm.roc_auc_score(targets, probs[:, 1]))
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            targets, preds, labels=labels, average=average, zero_division=0
        )
        got = m[average]
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx([p, r, f])

    if k == 2:
        expected_macro = skm.roc_auc_score(targets, probs[:, 1])
        assert m["per_class"]["normal"]["auc"] == m["per_class"]["pneumonia"]["auc"]
    else:
        expected_macro = skm.roc_auc_score(targets, probs, multi_class="ovr", average="macro", labels=labels)
    assert m["macro"]["auc"] == pytest.approx(expected_macro)
    per_class, macro = compute_auc(targets, probs)
    assert macro == pytest.approx(expected_macro)
    assert per_class.tolist() == pytest.approx([m["per_class"][name]["auc"] for name in names(k)])


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize(("k", "ties"), [(2, True), (3, True), (3, False)])
def test_intervals_match_a_slow_sklearn_bootstrap(k: int, ties: bool) -> None:
    """The vectorised bootstrap equals resampling indices from default_rng(seed) and calling sklearn each time."""
    n, n_bootstrap, seed, confidence = 60, 100, 7, 0.9
    targets, probs = make_data(n, k, seed=11, ties=ties)
    targets[:3] = k - 1  # a rare class, so some resamples lack it and its AUC / recall is skipped there
    targets[3:] = np.where(targets[3:] == k - 1, 0, targets[3:])
    m = compute_metrics(targets, probs, names(k), n_bootstrap=n_bootstrap, seed=seed, confidence=confidence)

    draws = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
    samples: dict[str, list[float]] = {"accuracy": [], "balanced_accuracy": [], "f1": [], "auc": []}
    per_class = {c: {"auc": [], "f1": [], "recall": []} for c in range(k)}
    for idx in draws:
        t, p = targets[idx], probs[idx]
        pred = p.argmax(axis=1)
        samples["accuracy"].append(skm.accuracy_score(t, pred))
        samples["balanced_accuracy"].append(skm.balanced_accuracy_score(t, pred))
        samples["f1"].append(skm.f1_score(t, pred, labels=list(range(k)), average="macro", zero_division=0))
        aucs = [skm.roc_auc_score(t == c, p[:, c]) if 0 < (t == c).sum() < n else None for c in range(k)]
        if None not in aucs:
            samples["auc"].append(float(np.mean(aucs)))
        for c in range(k):
            if aucs[c] is not None:
                per_class[c]["auc"].append(aucs[c])
            if (t == c).any():
                per_class[c]["recall"].append(skm.recall_score(t == c, pred == c))
            if (t == c).any() or (pred == c).any():
                per_class[c]["f1"].append(skm.f1_score(t == c, pred == c))

    def interval(values: list[float]) -> list[float]:
        return np.percentile(values, [5, 95]).tolist()

    assert len(samples["auc"]) < n_bootstrap, "the rare class should be missing from some resamples"
    for key, values in samples.items():
        assert m["intervals"][key] == pytest.approx(interval(values)), key
    for c, name in enumerate(names(k)):
        for metric, values in per_class[c].items():
            assert m["intervals"]["per_class"][name][metric] == pytest.approx(interval(values)), (name, metric)
    assert any(f"AUC of class '{names(k)[-1]}' was undefined in" in w for w in m["warnings"])


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    targets = np.array([0] * 8 + [1] * 2)
    probs = np.tile([0.8, 0.2], (10, 1))
    assert compute_ece(targets, probs) == pytest.approx(0.0, abs=1e-12)


def test_ece_is_half_when_fully_confident_and_half_right() -> None:
    targets = np.array([0, 1, 0, 1, 2, 2])
    probs = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]])
    assert compute_ece(targets, probs) == pytest.approx(0.5)
    assert compute_metrics(targets, probs, names(3), n_bootstrap=0)["ece"] == pytest.approx(0.5)


def test_ece_weights_bins_by_count() -> None:
    # Bin (0.5, 0.6]: 2 images at 0.6, both right (gap 0.4). Bin (0.8, 0.9]: 2 at 0.9, one right (gap 0.4).
    # Bin (0.9, 1.0]: 4 at 1.0, all right (gap 0). ECE = (2 * 0.4 + 2 * 0.4 + 4 * 0) / 8 = 0.2.
    targets = np.array([0, 0, 0, 1, 0, 0, 0, 0])
    probs = np.array([[0.6, 0.4]] * 2 + [[0.9, 0.1]] * 2 + [[1.0, 0.0]] * 4)
    assert compute_ece(targets, probs, n_bins=10) == pytest.approx(0.2)
    # With one bin everything pools: mean confidence 0.875, accuracy 0.875.
    assert compute_ece(targets, probs, n_bins=1) == pytest.approx(0.0, abs=1e-12)


def test_ece_bins_include_their_upper_edge() -> None:
    # Bins are (lo, hi]: with 2 bins, confidence 0.5 (right) and 1.0 (wrong) fall in different bins,
    # so ECE = (|1 - 0.5| + |0 - 1.0|) / 2 = 0.75; pooled together they would give 0.25.
    assert compute_ece([0, 1], [[0.5, 0.5], [1.0, 0.0]], n_bins=2) == pytest.approx(0.75)


def test_intervals_contain_the_estimate_and_narrow_with_more_data() -> None:
    small = compute_metrics(*make_data(150, 3, seed=1), names(3), seed=0)
    large = compute_metrics(*make_data(3000, 3, seed=1), names(3), seed=0)
    for m in (small, large):
        for key, point in [
            ("accuracy", m["accuracy"]),
            ("balanced_accuracy", m["balanced_accuracy"]),
            ("auc", m["macro"]["auc"]),
            ("f1", m["macro"]["f1"]),
        ]:
            lo, hi = m["intervals"][key]
            assert lo <= point <= hi, key
        for name in names(3):
            for metric in ("auc", "f1", "recall"):
                lo, hi = m["intervals"]["per_class"][name][metric]
                assert lo <= m["per_class"][name][metric] <= hi, (name, metric)

    def width(m: dict, key: str) -> float:
        return m["intervals"][key][1] - m["intervals"][key][0]

    for key in ("accuracy", "balanced_accuracy", "auc", "f1"):
        assert width(large, key) < 0.6 * width(small, key), key


def test_same_seed_repeats_and_another_seed_differs() -> None:
    targets, probs = make_data(200, 3, seed=4)
    first = compute_metrics(targets, probs, names(3), n_bootstrap=300, seed=5)
    again = compute_metrics(targets, probs, names(3), n_bootstrap=300, seed=5)
    other = compute_metrics(targets, probs, names(3), n_bootstrap=300, seed=6)
    assert json.dumps(first) == json.dumps(again)
    assert other["intervals"]["auc"] != first["intervals"]["auc"]
    assert other["intervals"]["per_class"] != first["intervals"]["per_class"]
    assert {k: v for k, v in other.items() if k != "intervals"} == {k: v for k, v in first.items() if k != "intervals"}


def test_result_layout_is_plain_json() -> None:
    m = compute_metrics(*make_data(50, 3), names(3), n_bootstrap=20)
    assert set(m) == {
        "n",
        "classes",
        "accuracy",
        "balanced_accuracy",
        "log_loss",
        "ece",
        "macro",
        "weighted",
        "per_class",
        "confusion_matrix",
        "intervals",
        "confidence",
        "n_bootstrap",
        "warnings",
    }
    assert set(m["macro"]) == {"precision", "recall", "f1", "auc"}
    assert set(m["weighted"]) == {"precision", "recall", "f1"}
    assert list(m["per_class"]) == names(3)
    assert set(m["per_class"]["covid"]) == {"precision", "recall", "f1", "support", "auc"}
    assert set(m["intervals"]) == {"accuracy", "balanced_accuracy", "auc", "f1", "per_class"}
    assert m["intervals"]["per_class"]["covid"].keys() == {"auc", "f1", "recall"}
    assert (m["confidence"], m["n_bootstrap"], m["warnings"]) == (0.95, 20, [])
    assert json.loads(json.dumps(m, allow_nan=False)) == m  # only plain lists, dicts, str, int, float


def test_absent_class_gives_none_auc_and_a_warning() -> None:
    targets, probs = make_data(120, 3, seed=2)
    targets = np.where(targets == 2, 0, targets)  # no covid images, but covid is still predicted sometimes
    m = compute_metrics(targets, probs, names(3), n_bootstrap=100)

    assert m["per_class"]["covid"]["auc"] is None
    assert m["per_class"]["covid"]["support"] == 0
    assert m["per_class"]["covid"]["recall"] == 0.0
    assert m["macro"]["auc"] is None
    assert m["per_class"]["normal"]["auc"] == pytest.approx(skm.roc_auc_score(targets == 0, probs[:, 0]))
    assert m["intervals"]["per_class"]["covid"]["auc"] == [None, None]
    assert m["intervals"]["per_class"]["covid"]["recall"] == [None, None]
    assert m["intervals"]["auc"] == [None, None]
    assert m["intervals"]["per_class"]["normal"]["auc"][0] is not None
    assert any("'covid' has no images" in w and "AUC is undefined" in w for w in m["warnings"])
    json.dumps(m, allow_nan=False)


def test_single_class_targets_do_not_raise() -> None:
    _, probs = make_data(40, 2, seed=3)
    m = compute_metrics(np.zeros(40, dtype=int), probs, ["normal", "pneumonia"], n_bootstrap=50)
    assert m["per_class"]["normal"]["auc"] is None
    assert m["macro"]["auc"] is None
    assert any("'normal' is the only class" in w for w in m["warnings"])
    assert any("'pneumonia' has no images" in w for w in m["warnings"])
    per_class, macro = compute_auc(np.zeros(40, dtype=int), probs)
    assert np.isnan(per_class).all() and np.isnan(macro)
    json.dumps(m, allow_nan=False)


GOOD_T = [0, 1, 1, 0]
GOOD_P = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]


@pytest.mark.parametrize(
    ("targets", "probs", "classes", "match"),
    [
        (GOOD_T, [0.1, 0.8, 0.4, 0.3], ["a", "b"], r"probs must be 2-D.*got shape \(4,\)"),
        (GOOD_T, GOOD_P, ["a", "b", "c"], r"probs has 2 columns but 3 classes"),
        ([*GOOD_T, 1], GOOD_P, ["a", "b"], r"targets has 5 entries but probs has 4 rows"),
        ([0, 1, 2, 0], GOOD_P, ["a", "b"], r"class indices in 0\.\.1.*got 2"),
        ([0, -1, 1, 0], GOOD_P, ["a", "b"], r"class indices in 0\.\.1.*got -1"),
        ([], np.zeros((0, 2)), ["a", "b"], r"empty"),
        ([], [], ["a", "b"], r"empty"),
        (GOOD_T, [[0.9, 0.1], [np.nan, 0.8], [0.6, 0.4], [0.7, 0.3]], ["a", "b"], r"NaN.*row 1"),
        (GOOD_T, [[2.5, -1.0], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], ["a", "b"], r"softmax"),
        ([0.0, 1.5, 1.0, 0.0], GOOD_P, ["a", "b"], r"whole-number"),
        (GOOD_T, GOOD_P, ["a", "a"], r"unique"),
        (np.zeros((4, 1), dtype=int), GOOD_P, ["a", "b"], r"targets must be 1-D"),
    ],
)
def test_bad_input_raises_data_error(targets: object, probs: object, classes: list[str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        compute_metrics(targets, probs, classes, n_bootstrap=10)


@pytest.mark.parametrize(
    ("option", "match"),
    [({"confidence": 1.5}, "confidence"), ({"n_bootstrap": -1}, "n_bootstrap"), ({"n_bins": 0}, "n_bins")],
)
def test_bad_option_raises_config_error(option: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        compute_metrics(GOOD_T, GOOD_P, ["a", "b"], **option)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(classification).failed == 0
