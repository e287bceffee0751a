"""What the Python API gives back: `Predictions` (iterable, indexable, a table), `EvaluationResult` and
`TrainingResult` (their metrics with intervals as tables), each with a readable repr and a table in Jupyter; the
last two still are the library's `Evaluation` and `TrainResult`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import medtune
from medtune.api.outcomes import TrainingResult, metrics_frame
from medtune.apply.evaluate import Evaluation
from medtune.fitting.train import TrainResult
from medtune.runs import Run
from tests.conftest import shared_path


def test_predictions_iterate_index_and_show_as_a_table(tiny_run, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    images = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:2]
    predictions = medtune.predict(tiny_run, [*images, broken], progress=False, workers=0)
    assert len(predictions) == 3 and [p.file for p in predictions] == [*map(str, images), str(broken)]
    first = predictions[0]
    assert first.label in ("normal", "pneumonia") and first.confidence == pytest.approx(
        max(first.probabilities.values())
    )
    assert sum(first.probabilities.values()) == pytest.approx(1.0, abs=1e-5) and first.in_distribution in (True, False)
    assert predictions["label"].tolist()[:2] == predictions.labels[:2] and predictions.labels[2] is None
    assert predictions.probabilities.shape == (3, 2) and np.isnan(predictions.probabilities[2]).all()
    assert list(predictions.errors) == [str(broken)] and predictions[2].error == predictions.errors[str(broken)]
    frame = predictions.to_frame()
    frame.loc[0, "label"] = "changed"
    assert predictions[0].label == first.label  # the table handed out is a copy
    shown = repr(predictions)
    assert shown.startswith("Predictions(3 image(s) predicted by") and "1 unreadable" in shown
    assert "broken.png': unreadable:" in shown and f"{first.label} (" in shown
    page = predictions._repr_html_()
    assert "<table" in page and "broken.png" in page and "prob_pneumonia" in page


def test_an_evaluation_shows_its_metrics_with_their_intervals(tiny_run, tmp_path):
    result = medtune.evaluate(tiny_run, out=tmp_path / "again", progress=False)
    assert isinstance(result, Evaluation) and result.out == tmp_path / "again"
    table = result.to_frame().set_index("metric")
    metrics = result.metrics
    assert table.loc["accuracy", "value"] == pytest.approx(metrics["accuracy"])
    assert [table.loc["accuracy", "low"], table.loc["accuracy", "high"]] == pytest.approx(
        metrics["intervals"]["accuracy"]
    )
    assert table.loc["macro_auc", "low"] == pytest.approx(metrics["intervals"]["auc"][0])
    assert math.isnan(table.loc["log_loss", "low"]) and "n" not in table.index  # no interval; counts are no metric
    per_class = result.per_class()
    assert per_class["class"].tolist() == ["normal", "pneumonia"] and {"auc_low", "recall_high"} <= set(per_class)
    assert len(result.predictions()) == metrics["n"]
    assert repr(result).startswith(f"EvaluationResult(Evaluation on {metrics['n']} images (test): auc ")
    page = result._repr_html_()
    assert page.count("<table") == 2 and "balanced_accuracy" in page and "pneumonia" in page


def test_a_training_result_reads_its_run(tiny_run):
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    result = TrainingResult.of(TrainResult(Run(tiny_run), metrics, False, tiny_run / "report.html"))
    assert isinstance(result, TrainResult) and result.path == tiny_run and result.metrics is metrics
    assert len(result.history()) == 2  # the tiny run's two epochs, one row each
    assert result.to_frame().equals(metrics_frame(metrics)) and result.evaluation().metrics is metrics
    assert f"run finished: {tiny_run}" in repr(result) and "report=" in repr(result)
    assert "report.html" in result._repr_html_() and "<table" in result._repr_html_()
    failed = TrainingResult.of(TrainResult(Run(tiny_run), metrics, True, None, "the disk is full"))
    assert "resumed and finished" in repr(failed) and "no report: the disk is full" in repr(failed)
