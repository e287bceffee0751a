"""``devices=2`` on the CPU: Lightning's DDP with gloo in two real processes, each stepping on its half of every
batch one process would take, and every validation and test image scored once."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.conftest import medtune_subprocess, shared_path

#: A frozen backbone (no batch-norm statistics that two processes would each compute on half a batch), no dropout
#: or augmentation draws: two processes must then reproduce one, to rounding.
KEYS = ("limit=200", "image_size=32", "epochs=2", "batch_size=16", "augment=none", "dropout=0", "report=false",
        "accelerator=cpu", "strategy=freeze", "cache_features=false", "guard=false")  # fmt: skip
TOLERANCE = 1e-4


def test_two_cpu_processes_train_and_score_as_one(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    one = medtune_subprocess("train", data, *KEYS, "devices=1", "--out", tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = medtune_subprocess("train", data, *KEYS, "devices=2", "--out", tmp_path / "two")
    assert two.returncode == 0, two.stderr
    assert "GLOBAL_RANK: 1" in two.stderr + two.stdout  # a second process really trained
    first, second = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("one", "two"))
    assert second["n"] == first["n"] == 200  # every test image once: no padding, no half
    for key in ("auc", "f1"):
        assert second["macro"][key] == pytest.approx(first["macro"][key], abs=TOLERANCE)
    assert second["accuracy"] == pytest.approx(first["accuracy"], abs=TOLERANCE)
    history_one, history_two = (pd.read_csv(tmp_path / n / "history.csv") for n in ("one", "two"))
    assert len(history_two) == 2  # written once, by the first process
    for column in ("train_loss", "val_loss", "val_auc", "val_acc"):
        assert history_two[column].to_numpy() == pytest.approx(history_one[column].to_numpy(), abs=TOLERANCE)
