"""The cross-domain matrix through the real command line: PneumoniaMNIST (Guangzhou children) against cxr3's NIH
adults in both directions, cxr3's AP against PA views from one table, and the shortcut probe on cxr3's sources."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import medtune, medtune_subprocess, shared_path

pytestmark = pytest.mark.slow
SMALL = ("limit=32", "image_size=32", "epochs=1", "batch_size=16", "workers=0")


def test_two_datasets_give_the_matrix_on_their_shared_classes(tmp_path):
    data = (shared_path("pneumoniamnist", "pneumoniamnist.npz"), shared_path("cxr3", "labels.csv"))
    out = tmp_path / "xd"
    result = medtune("crossdomain", *data, "label=label", "group=patient_id", *SMALL, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "normal, pneumonia" in result.stdout and "pneumoniamnist" in result.stdout
    matrix = pd.read_csv(out / "matrix.csv")
    assert len(matrix) == 4 and set(matrix["train"]) == set(matrix["test"]) == {"pneumoniamnist", "cxr3"}
    for score in ("auc", "accuracy", "balanced_accuracy"):
        assert ((matrix[f"{score}_low"] <= matrix[score]) & (matrix[score] <= matrix[f"{score}_high"])).all()
    assert (matrix["images"] > 0).all() and (matrix["dropped"] == 0).all()  # covid never reaches the runs
    facts = json.loads((out / "matrix.json").read_text())
    assert facts["classes"] == ["normal", "pneumonia"] and facts["domain_classes"]["cxr3"] == [
        "covid",
        "normal",
        "pneumonia",
    ]
    assert "Train on one, test on every other" in (out / "crossdomain.html").read_text()
    cxr3_run = next((out / "runs" / "crossdomain").glob("*-cxr3"))
    assert (cxr3_run / "evaluations" / "pneumoniamnist-test" / "metrics.json").is_file()
    page = (cxr3_run / "report.html").read_text()
    assert "pneumoniamnist-test" in page and "Other data" in page  # the run's row of the matrix
    again = medtune("crossdomain", *data, "label=label", "group=patient_id", *SMALL, "--out", out)
    assert again.returncode == 0 and "started" not in again.stdout  # finished runs are scored again, not trained
    assert pd.read_csv(out / "matrix.csv")[["auc"]].equals(matrix[["auc"]])


def test_one_table_by_its_domain_column_with_the_shortcut_check(tmp_path):
    out = tmp_path / "views"
    result = medtune("crossdomain", shared_path("cxr3", "labels.csv"), "label=label", "domain=view", *SMALL,
                     "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    matrix = pd.read_csv(out / "matrix.csv")
    assert set(matrix["train"]) == {"ap", "pa"} and len(matrix) == 4
    assert "Shortcut check" in (out / "crossdomain.html").read_text()


def test_shortcuts_warn_about_a_class_that_comes_from_one_source(tmp_path):
    result = medtune_subprocess("data", "shortcuts", shared_path("cxr3", "labels.csv"), "label=label",
                                "domain=source", "image_size=32", "--out", tmp_path / "s.json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "class covid comes only from domain ieee8023" in result.stdout and "borders only" in result.stdout
    facts = json.loads((tmp_path / "s.json").read_text())
    assert facts["whole"]["macro"]["auc"] > 0.8  # the source shows even at 32 px
    assert len(facts["warnings"]) == 1 and facts["counts"]["covid"]["NIH ChestX-ray14"] == 0


def test_datasets_without_two_shared_classes_are_refused(tmp_path):
    result = medtune("crossdomain", shared_path("cxr3", "labels.csv"), "label=label", "domain=source", *SMALL,
                     "--out", tmp_path / "x")  # fmt: skip
    assert result.returncode == 1 and "share 0 class(es) after harmonisation" in result.stderr
    assert "label_map=" in result.stderr
