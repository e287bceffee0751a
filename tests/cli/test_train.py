"""`medtune train` through the real command line, on real data scaled down inside each test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
import yaml

from tests.cli.conftest import TINY
from tests.conftest import REPO, medtune, shared_path


def test_run_directory_holds_every_file(tiny_run):
    files = {p.relative_to(tiny_run).as_posix() for p in tiny_run.rglob("*") if p.is_file()}
    assert {"config.yaml", "split.csv", "history.csv", "metrics.json", "predictions.csv",
            "checkpoints/best.ckpt", "checkpoints/last.ckpt", "report.html", "report/roc.png"} <= files  # fmt: skip
    assert not [f for f in files if f.endswith(".tmp")]
    config = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["image_size"] == 32 and config["channels"] == 1 and os.path.isabs(config["data"])

    history = pd.read_csv(tiny_run / "history.csv")
    assert history["epoch"].tolist() == [1, 2]  # counted from 1, as the console counts
    for column in ("train_loss", "val_loss", "train_acc", "val_acc", "val_balanced_acc", "val_f1", "val_auc", "lr"):
        assert history[column].notna().all(), column
    assert (history["seconds"] > 0).all()
    assert 0.5 < history["val_auc"].iloc[-1] <= 1.0  # learned something in two epochs on 96 images

    split = pd.read_csv(tiny_run / "split.csv")
    assert split.groupby("split").size().to_dict() == {"test": 96, "train": 96, "val": 96}
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["n"] == 96 and metrics["classes"] == ["normal", "pneumonia"] and metrics["split"] == ["test"]
    low, high = metrics["intervals"]["auc"]
    assert low <= metrics["macro"]["auc"] <= high
    predictions = pd.read_csv(tiny_run / "predictions.csv")
    assert len(predictions) == 96
    assert ((predictions["prob_normal"] + predictions["prob_pneumonia"]) - 1).abs().max() < 1e-4
    assert (predictions["correct"].mean() - metrics["accuracy"]) < 1e-9


def test_checkpoint_embeds_what_prediction_needs(tiny_run):
    checkpoint = torch.load(tiny_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    meta = checkpoint["medtune"]
    assert meta["classes"] == ["normal", "pneumonia"] and meta["in_chans"] == 1
    assert meta["config"]["backbone"] == "tf_efficientnet_lite0" and meta["version"]
    assert len(meta["preprocessing"]["mean"]) == 1


def test_a_finished_run_is_never_overwritten(tiny_run):
    before = (tiny_run / "metrics.json").read_bytes()
    again = medtune("train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *TINY, "--out", tiny_run)
    assert again.returncode == 2
    assert "already holds a finished run" in again.stderr and "--out" in again.stderr
    other = medtune("train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *TINY, "lr=0.01", "--out", tiny_run)
    assert other.returncode == 2
    assert "another configuration" in other.stderr and "lr: 0.002 -> 0.01" in other.stderr
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_yaml_file_alone_is_a_complete_run(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    settings = dict(item.split("=") for item in TINY)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"data": str(data), **{k: int(v) for k, v in settings.items()},
                                                       "strategy": "gradual", "freeze_epochs": 1,
                                                       "head": "pool-bn-dropout", "optimizer": "sgd",
                                                       "scheduler": "one-cycle", "augment": "flip",
                                                       "class_weights": "auto", "sampler": "weighted",
                                                       "monitor": "val_f1"}))  # fmt: skip
    result = medtune("train", "--config", tmp_path / "exp.yaml", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["backbone_frozen"].tolist() == [True, False]  # gradual: head first, then everything
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (saved["strategy"], saved["head"], saved["optimizer"]) == ("gradual", "pool-bn-dropout", "sgd")
    assert (saved["class_weights"], saved["sampler"], saved["monitor"]) == ("auto", "weighted", "val_f1")


def test_default_run_name_and_numbering(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    quick = (*TINY, "epochs=1", "limit=48", "report=false", "guard=false")  # the names are what is tested
    first = medtune("train", data, *quick, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = medtune("train", data, *quick, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["pneumoniamnist-tf_efficientnet_lite0", "pneumoniamnist-tf_efficientnet_lite0-2"]


def test_same_seed_repeats_exactly_on_cpu(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    for name in ("a", "b"):
        # threads pinned: with threads=0 a busy machine (the other test process) changes the thread count mid-run
        result = medtune("train", data, *TINY, "seed=3", "threads=1", "report=false", "guard=false",
                         "--out", tmp_path / name)  # fmt: skip
        assert result.returncode == 0, result.stderr
    columns = [c for c in pd.read_csv(tmp_path / "a" / "history.csv").columns if c != "seconds"]
    a, b = (pd.read_csv(tmp_path / n / "history.csv")[columns] for n in ("a", "b"))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert (tmp_path / "a" / "predictions.csv").read_text() == (tmp_path / "b" / "predictions.csv").read_text()


def test_killed_mid_epoch_resumes_from_last_checkpoint(tmp_path):
    """Kill training during its second epoch; the same command resumes from last.ckpt and ends where an
    uninterrupted run ends."""
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    # threads pinned: with threads=0 a busy machine may change the thread count mid-run, and sums in another order
    # drift apart over an epoch (same seed, not the same bits)
    args = [data, "limit=400", "image_size=32", "epochs=3", "batch_size=16", "workers=0", "patience=0", "threads=1",
            "report=false", "guard=false"]  # fmt: skip
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "medtune", "train", *map(str, args), "--out", str(run)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    history = run / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (history.is_file() and len(pd.read_csv(history)) == 1):
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.2)
    time.sleep(1.0)  # inside the second epoch (an epoch takes several seconds here)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run / "metrics.json").exists()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert len(pd.read_csv(history)) == 1

    resumed = medtune("train", *args, "--out", run)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    straight = medtune("train", *args, "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    columns = [c for c in pd.read_csv(history).columns if c != "seconds"]
    got, want = (pd.read_csv(p / "history.csv")[columns] for p in (run, tmp_path / "straight"))
    assert got["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_three_class_patient_grouped_cxr3(tmp_path):
    labels = shared_path("cxr3", "labels.csv")
    result = medtune("train", labels, "label=label", "group=patient_id", "image_size=32", "epochs=1",
                     "batch_size=32", "workers=2", "--out", tmp_path / "cxr3")  # fmt: skip
    assert result.returncode == 0, result.stderr
    split = pd.read_csv(tmp_path / "cxr3" / "split.csv", dtype=str, keep_default_na=False)
    grouped = split[split["group"] != ""].groupby("group")["split"].nunique()
    assert grouped.max() == 1  # no patient in two splits
    metrics = json.loads((tmp_path / "cxr3" / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"covid", "normal", "pneumonia"}
    for name in ("covid", "normal", "pneumonia"):
        low, high = metrics["intervals"]["per_class"][name]["auc"]
        assert low <= metrics["per_class"][name]["auc"] <= high
    assert len(metrics["confusion_matrix"]["matrix"]) == 3
    for name in ("covid", "normal", "pneumonia"):
        assert name in result.stdout  # the per-class table is printed


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["epoch=3"], 2, "Did you mean 'epochs'"),
        (["optimizer=lamb"], 2, "optimizer"),
        (["class_weights=[1, 2, 3]"], 2, "class_weights has 3 values"),
        (["monitor=val_auroc"], 2, "monitor must be one of"),
    ],
)
def test_bad_settings_are_refused_before_training(tmp_path, args, code, message):
    result = medtune(
        "train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *TINY, *args, "--out", tmp_path / "r"
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "r" / "checkpoints" / "best.ckpt").exists()


def test_unusable_data_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    empty = medtune("train", tmp_path / "empty", "--out", tmp_path / "r1")
    assert empty.returncode == 1 and "empty" in empty.stderr.lower()
    nothing = medtune("train", "epochs=1")
    assert nothing.returncode == 2 and "no data given" in nothing.stderr
    both = medtune("train", shared_path("cxr3", "labels.csv"), "labels=Edema,Mass", "label_sep=|", "--out",
                   tmp_path / "r2")  # fmt: skip
    assert both.returncode == 2 and "label_sep= splits one column" in both.stderr


def test_multilabel_findings_run(tiny_findings_run):
    """The issue's command, `labels=finding_labels label_sep='|'`: one sigmoid per finding, thresholds chosen on the
    validation split, per-finding AUCs with bootstrap intervals."""
    run = tiny_findings_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["multilabel"] is True and metrics["split"] == ["test"]
    assert len(metrics["classes"]) == 15 and "No Finding" not in metrics["classes"]
    assert {"Pneumonia", "COVID-19", "Infiltration", "Hernia"} <= set(metrics["classes"])
    defined = {name: v for name, v in metrics["per_class"].items() if v["auc"] is not None}
    assert len(defined) >= 10
    for name, values in defined.items():
        low, high = metrics["intervals"]["per_class"][name]["auc"]
        assert low <= values["auc"] <= high, name
    for key, interval in (("macro", "auc"), ("micro", "micro_auc")):
        low, high = metrics["intervals"][interval]
        assert low <= metrics[key]["auc"] <= high, key
    for name, values in metrics["per_class"].items():
        if values["auc"] is None:
            assert any("no positive image here" in w and f"'{name}'" in w for w in metrics["warnings"])

    stored = json.loads((run / "thresholds.json").read_text())
    assert stored["method"] == "youden" and stored["split"] == "val"
    assert stored["thresholds"] == metrics["thresholds"]
    assert all(metrics["per_class"][n]["threshold"] == t for n, t in stored["thresholds"].items())
    predictions = pd.read_csv(run / "predictions.csv", keep_default_na=False)
    assert len(predictions) == metrics["n"]
    for row in predictions.to_dict("records"):
        flagged = [n for n in metrics["classes"] if row[f"prob_{n}"] >= stored["thresholds"][n]]
        assert row["predicted"] == "|".join(flagged)

    meta = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["medtune"]
    assert meta["multilabel"] is True and meta["classes"] == metrics["classes"]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["label"], config["labels"], config["label_sep"]) == ("finding_labels", None, "|")
    history = pd.read_csv(run / "history.csv")
    assert history[["val_loss", "val_auc", "val_acc", "val_balanced_acc", "val_f1"]].notna().all().all()
    printed = (run.parent / "train-stdout.txt").read_text()
    assert "ROC AUC (micro, pooled)" in printed and "Per label" in printed and "Infiltration" in printed


def test_focal_loss_single_label(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    result = medtune("train", data, *TINY, "loss=focal", "focal_gamma=2", "class_weights=auto", "report=false",
                     "--out", tmp_path / "focal")  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "focal" / "metrics.json").read_text())
    assert metrics["classes"] == ["normal", "pneumonia"] and "multilabel" not in metrics
    assert 0 <= metrics["balanced_accuracy"] <= 1 and metrics["per_class"]["pneumonia"]["recall"] is not None
    history = pd.read_csv(tmp_path / "focal" / "history.csv")
    assert history["train_loss"].notna().all() and history["val_balanced_acc"].notna().all()
    assert "balanced accuracy" in result.stdout and "recall" in result.stdout  # imbalance shown on the console
