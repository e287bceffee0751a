"""`medtune evaluate` through the real command line: the run's own test split, and other labelled data."""

from __future__ import annotations

import json

import pandas as pd

from tests.conftest import medtune, medtune_subprocess, shared_path


def test_evaluate_own_test_split_rewrites_the_same_metrics(tiny_run):
    before = json.loads((tiny_run / "metrics.json").read_text())
    result = medtune_subprocess("evaluate", tiny_run)
    assert result.returncode == 0, result.stderr
    after = json.loads((tiny_run / "metrics.json").read_text())
    assert after["accuracy"] == before["accuracy"] and after["macro"]["auc"] == before["macro"]["auc"]
    assert after["intervals"] == before["intervals"]
    for key in ("balanced_accuracy", "log_loss", "ece", "confusion_matrix", "per_class", "weighted"):
        assert key in after
    assert "ROC AUC (macro)" in result.stdout and "pneumonia" in result.stdout


def test_evaluate_with_flip_tta_on_the_validation_split(tiny_run, tmp_path):
    result = medtune("evaluate", tiny_run, "--split", "val", "tta=true", "--out", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert json.loads(result.stdout)["metrics"]["accuracy"] == metrics["accuracy"]  # --json: on standard output
    assert metrics["split"] == ["val"] and metrics["tta"] is True and metrics["n"] == 96


def test_other_data_matches_labels_by_name_and_reports_the_rest(tiny_run):
    """A PneumoniaMNIST run (normal / pneumonia) on cxr3 (covid / normal / pneumonia, another hospital)."""
    result = medtune("evaluate", tiny_run, shared_path("cxr3"))
    assert result.returncode == 0, result.stderr
    out = tiny_run / "evaluations" / "cxr3-all"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["unmatched_labels"] == {"covid": 124}
    assert metrics["n"] == 1000 and set(metrics["per_class"]) == {"normal", "pneumonia"}
    assert any("covid (124)" in w for w in metrics["warnings"])
    assert "covid (124)" in result.stdout
    assert len(pd.read_csv(out / "predictions.csv")) == 1000


def test_evaluate_refuses_what_is_not_a_run(tmp_path):
    result = medtune("evaluate", tmp_path)
    assert result.returncode == 1 and "is not a medtune run" in result.stderr
    missing = medtune("evaluate", tmp_path / "nope")
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_evaluate_with_no_matching_label(tiny_run, tmp_path):
    folder = tmp_path / "pets"
    (folder / "cat").mkdir(parents=True)
    (folder / "dog").mkdir()
    for name in ("cat", "dog"):
        for source in sorted(shared_path("cxr3", "normal").glob("*.png"))[:2]:
            (folder / name / source.name).write_bytes(source.read_bytes())
    result = medtune("evaluate", tiny_run, folder)
    assert result.returncode == 1
    assert "no label of the data matches the run's classes" in result.stderr and "cat" in result.stderr


def test_other_data_read_with_key_value_settings(tiny_run, tmp_path):
    result = medtune("evaluate", tiny_run, shared_path("cxr3", "labels.csv"), "label=label", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 1000 and metrics["unmatched_labels"] == {"covid": 124}


def test_multilabel_run_is_evaluated_with_its_stored_thresholds(tiny_findings_run, tmp_path):
    saved = json.loads((tiny_findings_run / "metrics.json").read_text())
    thresholds = json.loads((tiny_findings_run / "thresholds.json").read_text())["thresholds"]
    result = medtune("evaluate", tiny_findings_run, "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["thresholds"] == thresholds and metrics["threshold_method"] == "youden"
    assert metrics["macro"]["auc"] == saved["macro"]["auc"] and metrics["intervals"] == saved["intervals"]
    predictions = pd.read_csv(tmp_path / "predictions.csv", keep_default_na=False)
    for row in predictions.to_dict("records"):
        assert row["predicted"] == "|".join(n for n in metrics["classes"] if row[f"prob_{n}"] >= thresholds[n])
    assert (predictions["correct"].mean() - metrics["accuracy"]) < 1e-9  # exact match
    assert "ROC AUC (macro over labels)" in result.stdout and "Pneumonia" in result.stdout
