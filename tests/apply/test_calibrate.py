"""medtune.apply.calibrate and ``medtune calibrate``: split conformal sets fitted on a real run's validation split,
used by predict (``--sets``) and scored by evaluate (coverage with its interval, mean set size, per class)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import medtune
from medtune.apply.calibrate import (
    Calibration,
    aps_scores,
    calibrate,
    coverage_metrics,
    prediction_sets,
    true_scores,
)
from medtune.errors import ConfigError, DataError
from tests.conftest import medtune as medtune_cli
from tests.conftest import shared_path


def test_aps_scores_and_sets_grow_where_the_network_is_unsure():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2000, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = np.array([rng.choice(3, p=p) for p in probs])  # labels drawn from the probabilities: calibrated
    scores = aps_scores(probs)
    np.testing.assert_allclose(scores.max(axis=1), 1.0)
    calibration = Calibration("c", 0.9, scores[np.arange(1000), truth[:1000]], ("a", "b", "c"))
    found = coverage_metrics(calibration, truth[1000:], probs[1000:], n_bootstrap=200)
    low, high = found["intervals"]["coverage"]
    assert 0.87 <= found["coverage"] <= 0.93 and low <= found["coverage"] <= high
    sets = prediction_sets(calibration, probs[1000:])
    sure = probs[1000:].max(axis=1) > 0.95
    assert sets[sure].sum(axis=1).mean() < sets[~sure].sum(axis=1).mean()  # adaptive: bigger sets when unsure


def test_a_run_is_calibrated_predicts_sets_and_reports_coverage(tiny_run, tmp_path):
    tiny_run = Path(shutil.copytree(tiny_run, tmp_path / "run"))  # the session's run stays as it was
    result = medtune_cli("calibrate", tiny_run, "--coverage", "0.9", "--name", "c90")
    assert result.returncode == 0, result.stderr
    kept = json.loads((tiny_run / "calibrations" / "c90.json").read_text())
    assert kept["coverage"] == 0.9 and kept["split"] == "val" and len(kept["scores"]) == kept["images"] > 10
    images = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:3]
    predicted = medtune.predict(tiny_run, images, progress=False, workers=0, calibration="c90")
    sets = predicted["set"].str.split("|")
    assert all(set(s) <= {"normal", "pneumonia"} and s for s in sets)
    answers = medtune_cli("predict", tiny_run, *images, "--calibration", "c90", "--out", tmp_path / "sets.json")
    assert answers.returncode == 0 and "prediction sets (90% coverage)" in answers.stdout
    assert all(record["set"] for record in json.loads((tmp_path / "sets.json").read_text()))
    calibrate(tiny_run, 0.8)  # the default name: what evaluate reports
    metrics = medtune.evaluate(tiny_run, progress=False).metrics["conformal"]
    assert json.loads((tiny_run / "metrics.json").read_text())["conformal"] == metrics
    assert metrics["target"] == 0.8 and 0 <= metrics["coverage"] <= 1 and 1 <= metrics["mean_set_size"] <= 2
    assert set(metrics["per_class"]) <= {"normal", "pneumonia"} and len(metrics["intervals"]["coverage"]) == 2


def test_a_multilabel_run_gets_a_set_per_finding(tiny_findings_run, tmp_path):
    run = Path(shutil.copytree(tiny_findings_run, tmp_path / "run"))
    found = calibrate(run, 0.9, progress=False)
    assert found.multilabel and found.scores.shape[1] == len(found.classes)
    kept = json.loads((run / "calibrations" / "conformal.json").read_text())
    assert kept["per_finding"] and len(kept["scores"][0]) == len(found.classes)
    images = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:4]
    predicted = medtune.predict(run, images, progress=False, workers=0, calibration="conformal")
    for certain, uncertain in zip(predicted["certain"], predicted["uncertain"], strict=True):
        assert not set(filter(None, certain.split("|"))) & set(filter(None, uncertain.split("|")))
        assert set(filter(None, (certain + "|" + uncertain).split("|"))) <= set(found.classes)
    answers = medtune_cli("predict", run, *images, "--sets", "--out", tmp_path / "sets.json")
    assert answers.returncode == 0 and "per-finding sets (90% coverage each)" in answers.stdout
    assert all("certain" in r and "uncertain" in r for r in json.loads((tmp_path / "sets.json").read_text()))
    metrics = medtune.evaluate(run, progress=False).metrics["conformal"]
    assert metrics["per_finding"] and set(metrics["per_class"]) == set(found.classes)
    for row in metrics["per_class"].values():
        low, high = row["coverage_interval"]
        assert 0 <= low <= row["coverage"] <= high <= 1 and 0 <= row["mean_set_size"] <= 2
    assert 0 <= metrics["coverage"] <= 1 and len(metrics["intervals"]["coverage"]) == 2


def test_what_calibration_refuses(tiny_run):
    with pytest.raises(ConfigError, match="between 0 and 1"):
        calibrate(tiny_run, 1.5)
    with pytest.raises(DataError, match="no calibration 'missing'"):
        medtune.predict(tiny_run, [shared_path("cxr-fullres")], progress=False, workers=0, calibration="missing")


def test_class_conditional_sets_cover_every_class_where_one_calibration_does_not():
    rng = np.random.default_rng(1)
    truth = rng.choice(2, 4000, p=[0.25, 0.75])
    # a network sure of its common class and unsure of the rare one
    positive = np.clip(np.where(truth == 1, rng.beta(8, 2, 4000), rng.beta(4, 3, 4000)), 1e-3, 1 - 1e-3)
    probs = np.stack([1 - positive, positive], axis=1)
    scores = true_scores(probs[:2000], truth[:2000])
    pooled = coverage_metrics(Calibration("m", 0.9, scores, ("a", "b")), truth[2000:], probs[2000:], n_bootstrap=50)
    each = Calibration("c", 0.9, scores, ("a", "b"), truth[:2000])
    found = coverage_metrics(each, truth[2000:], probs[2000:], n_bootstrap=50)
    assert 0.88 <= pooled["coverage"] <= 0.92 and pooled["per_class"]["a"]["coverage"] < 0.7  # the rare class pays
    assert all(0.87 <= row["coverage"] <= 0.93 for row in found["per_class"].values())
    assert Calibration("c", 0.9, scores, ("a", "b"), truth[:2000]).to_dict()["per_class"] is True


def test_per_class_sets_are_refused_where_they_cannot_hold(tiny_run, tiny_findings_run, tmp_path):
    with pytest.raises(DataError, match="already per finding"):
        calibrate(tiny_findings_run, per_class=True)
    result = medtune_cli("calibrate", tiny_run, "--coverage", "0.99", "--per-class", "--name", "rare")
    assert result.returncode != 0 and "needs at least 99 validation images of every class" in result.stderr
