"""medtune.evaluate through its Python API: a run's own test split again, and other data read with typed keys."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import medtune
from medtune.apply.evaluate import Evaluation
from medtune.errors import DataError
from tests.conftest import shared_path


def test_the_run_s_own_test_split_scores_as_training_did(tiny_run, tmp_path):
    result = medtune.evaluate(tiny_run, out=tmp_path / "again", progress=False)
    assert isinstance(result, Evaluation) and result.out == tmp_path / "again"
    trained = json.loads((tiny_run / "metrics.json").read_text())
    assert result.metrics["macro"]["auc"] == pytest.approx(trained["macro"]["auc"])
    assert result.metrics["checkpoint"].endswith("best.ckpt") and (tmp_path / "again" / "predictions.csv").is_file()


def test_other_data_is_read_with_typed_keys_and_unmatched_labels_are_said(tiny_run, tmp_path):
    result = medtune.evaluate(tiny_run, shared_path("cxr3", "labels.csv"), label="label", split="all",
                              out=tmp_path / "cxr3", progress=False)  # fmt: skip
    assert result.metrics["unmatched_labels"] == {"covid": 124}
    assert any("match no class" in w for w in result.metrics["warnings"])
    frame = pd.read_csv(tmp_path / "cxr3" / "predictions.csv")
    assert set(frame["label"]) == {"normal", "pneumonia"} and len(frame) == 1000


def test_a_missing_model_is_named_with_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"model\.onnx does not exist; export a run first"):
        medtune.evaluate(tmp_path / "model.onnx")
