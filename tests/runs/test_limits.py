"""``limit=`` caps every split; ``train_limit=`` only the training images, so a small-data trial is scored on the
whole validation and test splits."""

from __future__ import annotations

from medtune.config import load_config
from medtune.runs import load_table
from medtune.runs.dataset import limit_table
from tests.conftest import shared_path


def test_train_limit_keeps_validation_and_test_whole():
    table = load_table(load_config(data=str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))))
    limited = limit_table(table, 300, seed=0, splits=("train",))
    counts = limited.frame["split"].value_counts()
    assert counts["train"] == 300 and counts["val"] == 524 and counts["test"] == 624
    train = limited.frame[limited.frame["split"] == "train"]["label"].value_counts(normalize=True)
    assert abs(train["pneumonia"] - 3494 / 4708) < 0.02  # stratified by label
    every = limit_table(table, 300, seed=0).frame["split"].value_counts()
    assert (every == 300).all()
