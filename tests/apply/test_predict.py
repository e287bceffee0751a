"""medtune.predict through its Python API: typed answers whose table holds every probability, unreadable files kept
with their error, and the files `write_predictions` makes of it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

import medtune
from medtune.apply.predict import prediction_records, write_predictions
from tests.conftest import shared_path


def test_predictions_come_back_as_a_frame_with_every_probability(tiny_run, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    images = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:3]
    predictions = medtune.predict(tiny_run, [*images, broken], progress=False, workers=0)
    assert predictions[3].error and predictions[3].label is None and predictions[0].label in ("normal", "pneumonia")
    results = predictions.to_frame()
    assert list(results.columns) == ["file", "label", "confidence", "prob_normal", "prob_pneumonia", "error",
                                     "guard_score", "in_distribution"]  # fmt: skip
    assert results["guard_score"].iloc[:3].gt(0).all() and results["in_distribution"].iloc[3] is None  # unreadable
    read = results[results["error"].isna()]
    assert len(read) == 3 and set(read["label"]) <= {"normal", "pneumonia"}
    np.testing.assert_allclose(read[["prob_normal", "prob_pneumonia"]].sum(axis=1), 1.0, atol=1e-5)
    assert pd.isna(results.loc[3, "label"]) and "broken.png" in results.loc[3, "file"] and results.loc[3, "error"]
    written = write_predictions(results, tmp_path / "answers.json", probs=True)
    records = json.loads(written.read_text())
    assert records == prediction_records(results) and records[0]["probabilities"].keys() == {"normal", "pneumonia"}
