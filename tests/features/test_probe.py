"""``medtune probe``: scikit-learn baselines on frozen features of real X-rays, written as run directories."""

from __future__ import annotations

import json

import pandas as pd

from tests.conftest import medtune, shared_path


def test_three_probes_are_scored_on_the_test_split_and_reported(tmp_path):
    out = tmp_path / "probes"
    storage = f"sqlite:///{tmp_path / 'queue.db'}"
    result = medtune("probe", shared_path("cxr3", "labels.csv"), "label=label", "group=patient_id", "image_size=32",
                     "--method", "all", "--out", out, "--study", "baselines", "--storage", storage,
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = {row["method"]: row for row in json.loads(result.stdout)}
    assert sorted(printed) == ["knn", "logreg", "svm"] and 0 <= printed["svm"]["metrics"]["macro"]["auc"] <= 1
    runs = sorted(p.name for p in out.iterdir())
    assert runs == [f"cxr3-tf_efficientnet_lite0-{m}" for m in ("knn", "logreg", "svm")]
    for run in out.iterdir():
        metrics = json.loads((run / "metrics.json").read_text())
        low, high = metrics["intervals"]["auc"]
        assert metrics["split"] == ["test"] and low <= metrics["macro"]["auc"] <= high
        assert metrics["macro"]["auc"] > 0.6  # frozen ImageNet features separate covid / normal / pneumonia
        facts = json.loads((run / "probe.json").read_text())
        assert facts["params"] and 0 < facts["cv_auc"] <= 1
        split = pd.read_csv(run / "split.csv")
        test_groups = set(split.loc[split["split"] == "test", "group"].dropna())
        assert not test_groups & set(split.loc[split["split"] != "test", "group"].dropna())  # grouped by patient
    board = tmp_path / "board.csv"
    ranked = medtune("leaderboard", "--storage", storage, "--metric", "test_auc", "-f", "csv", "-o", board)
    assert ranked.returncode == 0, ranked.stderr
    frame = pd.read_csv(board)
    assert sorted(frame["probe"]) == ["knn", "logreg", "svm"] and (frame["state"] == "finished").all()
    assert frame["test_auc"].is_monotonic_decreasing and (frame["test_auc_low"] <= frame["test_auc"]).all()
    page = medtune("report", out / "cxr3-tf_efficientnet_lite0-logreg")
    assert page.returncode == 0, page.stderr
    html = (out / "cxr3-tf_efficientnet_lite0-logreg" / "report.html").read_text()
    assert "Probe" in html and "logreg on frozen" in html and "Most confident mistakes" not in html


def test_an_unknown_method_is_refused_before_any_work(tmp_path):
    result = medtune("probe", shared_path("cxr3", "labels.csv"), "--method", "forest", "--out", tmp_path)
    assert result.returncode == 2 and "'forest'" in result.stderr and "logreg" in result.stderr
