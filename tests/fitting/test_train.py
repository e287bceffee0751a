"""medtune.train through its Python API (the function the command line, the queue and notebooks call): a run with
its history in the task's columns, its evaluation, its report, and a refusal that names the fix."""

from __future__ import annotations

import pandas as pd
import pytest

import medtune
from medtune.errors import DataError
from medtune.fitting.train import TrainResult
from medtune.tasks import get_task
from tests.conftest import shared_path

KEYS = {"limit": 48, "image_size": 32, "epochs": 1, "batch_size": 16, "workers": 0, "threads": 1}


def test_a_run_trains_evaluates_and_reports_from_python(tmp_path):
    result = medtune.train(data=str(shared_path("pneumoniamnist", "pneumoniamnist.npz")), out=tmp_path / "run",
                           progress=False, **KEYS)  # fmt: skip
    assert isinstance(result, TrainResult) and not result.resumed and result.report == tmp_path / "run" / "report.html"
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert tuple(history.columns) == get_task("classify").history_columns() and len(history) == 1
    assert set(result.metrics["per_class"]) == {"normal", "pneumonia"} and 0 <= result.metrics["macro"]["auc"] <= 1


def test_one_class_is_refused_with_its_reason(tmp_path):
    folder = tmp_path / "one" / "normal"
    folder.mkdir(parents=True)
    for image in sorted(shared_path("cxr3", "normal").glob("*.png"))[:6]:
        (folder / image.name).write_bytes(image.read_bytes())
    with pytest.raises(DataError, match="a classifier needs at least two"):
        medtune.train(data=str(tmp_path / "one"), out=tmp_path / "run", progress=False, **KEYS)


def test_a_class_from_one_source_is_said_before_training_and_on_the_report(tmp_path, capsys):
    labels = str(shared_path("cxr3", "labels.csv"))
    result = medtune.train(data=labels, label="label", out=tmp_path / "run", progress=False, **KEYS)
    assert "warning: class covid comes only from domain ieee8023" in capsys.readouterr().err
    assert "covid" in (tmp_path / "run" / "shortcuts.json").read_text()
    assert "Shortcut check" in result.report.read_text() and "class covid comes only" in result.report.read_text()
    quiet = medtune.train(data=labels, label="label", out=tmp_path / "quiet", progress=False, report=False,
                          shortcut_check=False, **KEYS)  # fmt: skip
    assert "class covid comes only" not in capsys.readouterr().err and not quiet.run.shortcuts_file.exists()


def test_mixup_and_cutmix_train_on_mixed_labels(tmp_path):
    result = medtune.train(data=str(shared_path("pneumoniamnist", "pneumoniamnist.npz")), out=tmp_path / "run",
                           progress=False, mixup=0.4, cutmix=1.0, augment_strength=1.5, guard=False, report=False,
                           **KEYS)  # fmt: skip
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["train_loss"].notna().all() and history["val_loss"].notna().all()
    assert 0 <= result.metrics["macro"]["auc"] <= 1
