"""medtune.tasks through its Python API: the registry, how a run's task is found, and what each task owns (batch
targets, epoch metrics, label matching, scoring, thresholds, decoded predictions, sizes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from medtune.config import load_config
from medtune.data.table import create_table
from medtune.errors import ConfigError, DataError
from medtune.tasks import TASKS, get_task, task_for, task_of_meta


def _table(labels: list[str], splits: list[str], multilabel: bool = False):
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(len(labels))], "label": labels, "split": splits})
    return create_table(frame, multilabel=multilabel)


def test_the_registry_knows_every_task_and_names_the_closest():
    assert {"classify", "multilabel", "segment"} <= set(TASKS.names())
    with pytest.raises(ConfigError, match=r"unknown task 'segmnt'.*segment"):
        get_task("segmnt")


def test_a_run_task_follows_from_its_configuration_data_and_checkpoint():
    single = _table(["a", "b"], ["train", "test"])
    multi = _table(["a|b", ""], ["train", "test"], multilabel=True)
    assert task_for(load_config(), single).name == "classify"
    assert task_for(load_config(), multi).name == "multilabel"
    assert task_for(load_config(task="segment")).name == "segment"
    assert task_of_meta({"multilabel": True}).name == "multilabel"
    assert task_of_meta({"task": "classify", "multilabel": False}).name == "classify"
    assert task_of_meta({"task": "segment"}).name == "segment"


def test_history_columns_and_run_names_come_from_the_task():
    classify, segment = get_task("classify"), get_task("segment")
    assert classify.history_columns()[:3] == ("epoch", "train_loss", "train_acc")
    assert "val_dice" in segment.history_columns() and "val_auc" not in segment.history_columns()
    assert segment.history_columns()[-4:] == classify.history_columns()[-4:]
    config = load_config(task="segment", backbone="resnet18")
    assert segment.network_name(config) == "unet-resnet18"


def test_classify_scores_only_the_rows_whose_label_matches():
    table = _table(["a", "b", "a", "b", "zebra"], ["test"] * 5)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]])
    asked = []

    def probabilities(positions: np.ndarray) -> np.ndarray:
        asked.append(positions.tolist())
        return probs[positions]

    metrics, frame = get_task("classify").score(table, ("a", "b"), probabilities, load_config())
    assert asked == [[0, 1, 2, 3]]  # the unmatched label is never predicted
    assert metrics["accuracy"] == 1.0 and metrics["unmatched_labels"] == {"zebra": 1}
    assert frame["predicted"].tolist() == ["a", "b", "a", "b"] and frame["correct"].all()
    with pytest.raises(DataError, match="no label of the data matches"):
        get_task("classify").score(_table(["x"], ["test"]), ("a", "b"), probabilities, load_config())


def test_multilabel_thresholds_are_chosen_on_validation_and_decode_predictions():
    labels = ["a", "a|b", "", "b", "a", ""] * 4
    table = _table(labels, ["val"] * 12 + ["test"] * 12, multilabel=True)
    rng = np.random.default_rng(0)
    targets = table.targets()
    probs = np.clip(targets * 0.6 + rng.uniform(0, 0.4, targets.shape), 0, 1)
    task = get_task("multilabel")
    chosen = task.fit_thresholds(table, lambda rows: probs[rows], load_config(labels="label", label_sep="|"))
    assert chosen["split"] == "val" and chosen["images"] == 12 and set(chosen["thresholds"]) == {"a", "b"}
    thresholds = tuple(chosen["thresholds"].values())
    results = task.results(["x.png", "y.png"], ("a", "b"), np.array([[0.99, 0.0], [np.nan, np.nan]]), {1: "bad"},
                           thresholds)  # fmt: skip
    assert results["labels"][0] == "a" and pd.isna(results["labels"][1]) and results["error"][1] == "bad"


def test_segment_batches_carry_the_mask_as_their_last_channel():
    task = get_task("segment")
    batch = torch.zeros(2, 2, 4, 4, dtype=torch.uint8)
    batch[:, 1, :2] = 255
    images, targets = task.split_batch((batch,))
    assert images.shape == (2, 1, 4, 4) and targets.shape == (2, 1, 4, 4) and targets.sum() == 16
    predicted, truth = task.metric_inputs(torch.full((2, 1, 4, 4), 1.0), targets)
    assert predicted.shape == truth.shape == (2, 4, 4) and predicted.sum() == 32
    assert task.working_size(100, given=False) == 96
    with pytest.raises(ConfigError):
        task.working_size(100, given=True)


def test_each_task_builds_its_epoch_metrics():
    metrics = get_task("multilabel").create_epoch_metrics(3, "val_")
    metrics.update(torch.tensor([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1]]), torch.tensor([[1, 0, 1], [0, 1, 0]]))
    assert float(metrics.compute()["val_acc"]) == 1.0
    assert set(get_task("segment").create_epoch_metrics(1, "train_").keys()) == {"train_dice", "train_iou"}


def test_multilabel_is_the_data_s_choice_not_a_key():
    with pytest.raises(ConfigError, match="task=multilabel follows from the data"):
        get_task("multilabel").check_trainable(_table(["a", "b"], ["train", "test"]))
