"""Run tracking (``logger=mlflow|tensorboard``) on real tiny runs of the demo file, read back as a user would: the
MLflow store with MLflow's own client, the TensorBoard event file with TensorBoard's EventAccumulator."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import medtune
from medtune.data import demo_data
from medtune.errors import ConfigError, MissingDependencyError
from tests.interrupt import Killed, StopAtSecondEpoch

KEYS = {"limit": 48, "image_size": 28, "epochs": 2, "batch_size": 16, "workers": 0, "threads": 1, "guard": False}


@pytest.fixture(scope="module")
def mlflow_run(tmp_path_factory):
    """One tiny run logged to MLflow's default store (``sqlite:///mlflow.db`` beside the run), with its report."""
    out = tmp_path_factory.mktemp("tracked") / "run"
    result = medtune.train(data=str(demo_data()), out=out, progress=False, logger="mlflow", **KEYS)
    client = MlflowClient(f"sqlite:///{out.parent / 'mlflow.db'}")
    (tracked,) = client.search_runs([client.get_experiment_by_name("medtune").experiment_id])
    return result, client, tracked


def test_an_mlflow_run_holds_the_configuration_epochs_kept_epoch_test_metrics_and_report(mlflow_run):
    result, client, tracked = mlflow_run
    run = result.run
    assert tracked.info.status == "FINISHED" and tracked.info.run_name == "run"
    assert json.loads(run.tracking_file.read_text())["run_id"] == tracked.info.run_id
    params, config = tracked.data.params, run.read_config()  # the resolved configuration, as config.yaml holds it
    assert len(params) == len(config) and params["logger"] == "mlflow" and params["epochs"] == "2"
    assert all(params[key] == str(config[key]) for key in ("lr", "image_size", "backbone", "optimizer", "seed"))
    history = pd.read_csv(run.history_file)
    for metric in ("val_auc", "train_loss", "lr"):
        logged = sorted((m.step, m.value) for m in client.get_metric_history(tracked.info.run_id, metric))
        assert [step for step, _ in logged] == history["epoch"].tolist()  # history.csv keeps 6 digits
        assert [value for _, value in logged] == pytest.approx(history[metric].tolist(), rel=1e-5)
    assert [m.step for m in client.get_metric_history(tracked.info.run_id, "val_auc")] == [1, 2]  # epochs from 1
    kept = json.loads(run.kept_file.read_text())
    assert tracked.data.metrics["kept_epoch"] == kept["epoch"] and tracked.data.tags["kept_reason"] == kept["reason"]
    assert tracked.data.metrics["test_auc"] == pytest.approx(result.metrics["macro"]["auc"])
    assert tracked.data.metrics["test_auc_low"] <= tracked.data.metrics["test_auc"] <= tracked.data.metrics[
        "test_auc_high"]  # fmt: skip
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id)}
    assert {"report.html", "report", "metrics.json", "kept.json", "history.csv", "config.yaml"} <= artifacts
    assert "report/roc.png" in {a.path for a in client.list_artifacts(tracked.info.run_id, "report")}


def test_an_interrupted_tracked_run_resumes_into_the_same_mlflow_run(tmp_path):
    keys = {**KEYS, "report": False, "logger": "mlflow"}
    with pytest.raises(Killed):
        medtune.train(data=str(demo_data()), out=tmp_path / "run", progress=False, callbacks=[StopAtSecondEpoch()],
                      **keys)  # fmt: skip
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (stopped,) = client.search_runs([client.get_experiment_by_name("medtune").experiment_id])
    assert stopped.info.status == "FAILED"
    medtune.train(data=str(demo_data()), out=tmp_path / "run", progress=False, **keys)
    (resumed,) = client.search_runs([client.get_experiment_by_name("medtune").experiment_id])
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "val_auc")] == [1, 2]  # each epoch once


def test_a_tensorboard_run_writes_its_epochs_and_test_metrics_as_scalars(tmp_path, capsys):
    result = medtune.train(data=str(demo_data()), out=tmp_path / "run", progress=False, logger="tensorboard",
                           report=False, **KEYS)  # fmt: skip
    assert f"tracking with TensorBoard in {tmp_path / 'run' / 'tensorboard'}" in capsys.readouterr().err
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    history = pd.read_csv(result.run.history_file)
    assert [e.step for e in events.Scalars("val_auc")] == history["epoch"].tolist() == [1, 2]
    assert [e.value for e in events.Scalars("val_auc")] == pytest.approx(history["val_auc"].tolist(), rel=1e-5)
    (test_auc,) = events.Scalars("test_auc")
    kept = json.loads(result.run.kept_file.read_text())
    assert test_auc.value == pytest.approx(result.metrics["macro"]["auc"]) and test_auc.step == kept["epoch"]
    assert [e.value for e in events.Scalars("kept_epoch")] == [kept["epoch"]]


def test_a_missing_tracking_package_or_a_refused_store_is_said_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the tracking extra were not installed
    with pytest.raises(MissingDependencyError, match=r"logger=mlflow needs the mlflow package: pip install "
                                                     r"'medtune\[tracking\]'"):  # fmt: skip
        medtune.train(data=str(demo_data()), out=tmp_path / "a", progress=False, logger="mlflow", **KEYS)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"tracking_uri='file:\./mlruns': MLflow cannot log there .*maintenance"):
        medtune.train(data=str(demo_data()), out=tmp_path / "b", progress=False, logger="mlflow",
                      tracking_uri="file:./mlruns", **KEYS)  # fmt: skip
    stray = r"tracking_uri='sqlite:///x.db': read by logger=mlflow only, and logger=csv; add logger=mlflow, or leave it"
    with pytest.raises(ConfigError, match=stray):
        medtune.train(data=str(demo_data()), out=tmp_path / "c", progress=False, tracking_uri="sqlite:///x.db", **KEYS)
    assert not any(tmp_path.iterdir())  # refused before a run folder was made
