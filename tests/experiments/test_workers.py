"""Workers on real storage, training real (tiny) PneumoniaMNIST experiments through the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from medtune.experiments import QueueStorage
from medtune.experiments.queue import state_of
from medtune.runs import Run, read_history
from tests.conftest import medtune, medtune_subprocess, shared_path
from tests.experiments.conftest import FAST

pytestmark = pytest.mark.slow


def _data() -> Path:
    return shared_path("pneumoniamnist", "pneumoniamnist.npz")


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _starts(log: str) -> Counter:
    return Counter(int(i) for i in re.findall(r"#(\d+) \S+: started", log))


def _worker(url: str, cwd: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "medtune", "queue", "run", "--storage", url, *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_twelve_tiny_trials_on_one_sqlite_file_each_run_exactly_once_by_two_workers(tmp_path, sqlite_url):
    seeds = ",".join(map(str, range(12)))
    _ok(medtune("sweep", _data(), *FAST, f"seed={seeds}", "--storage", sqlite_url, "--study", "seeds", cwd=tmp_path))
    log = _ok(medtune_subprocess("queue", "run", "--workers", "2", "--storage", sqlite_url, cwd=tmp_path))
    starts = _starts(log)
    storage = QueueStorage(sqlite_url)
    trials = [t for _, t in storage.trials()]
    assert len(trials) == 12 and sorted(starts) == sorted(t._trial_id for t in trials)
    assert set(starts.values()) == {1}, starts  # each experiment started once, by one worker
    assert {"w1", "w2"} <= set(re.findall(r"\[(w\d)\] \S+ #\d+ \S+: started", log))  # both workers took a share
    for trial in trials:
        assert state_of(trial) == "finished" and trial.user_attrs["claims"] == 1
        run = Path(trial.user_attrs["run"])
        assert run.is_relative_to(tmp_path / "runs" / "seeds") and (run / "metrics.json").is_file()
        assert len(read_history(run / "history.csv")) == 1  # one epoch, trained once
    assert sorted(t.params["seed"] for t in trials) == list(range(12))
    status = _ok(medtune("queue", "status", "--storage", sqlite_url, cwd=tmp_path))
    assert "12 finished" in status
    printed = json.loads(_ok(medtune("queue", "status", "--storage", sqlite_url, "--json", cwd=tmp_path)))
    assert len(printed) == 12 and {r["state"] for r in printed} == {"finished"} and printed[0]["epochs_done"] == 1


def test_grid_of_optimizers_and_learning_rates_on_postgresql_and_its_leaderboard(tmp_path, postgres_url):
    _ok(medtune("sweep", _data(), *FAST, "epochs=2", "optimizer=adamw,adam,sgd", "lr=1e-3,1e-2",
                "--storage", postgres_url, "--study", "optim", cwd=tmp_path))  # fmt: skip
    log = _ok(medtune_subprocess("queue", "run", "--workers", "2", "--storage", postgres_url, cwd=tmp_path))
    assert set(_starts(log).values()) == {1} and len(_starts(log)) == 6
    csv = tmp_path / "board.csv"
    _ok(medtune("leaderboard", "--storage", postgres_url, "--study", "optim", "-f", "csv", "-o", csv, cwd=tmp_path))
    board = pd.read_csv(csv)
    assert len(board) == 6 and (board["state"] == "finished").all()
    assert list(board["rank"]) == [1, 2, 3, 4, 5, 6]
    assert board["val_auc"].is_monotonic_decreasing
    assert {(o, lr) for o, lr in zip(board["optimizer"], board["lr"], strict=True)} == {
        (o, lr) for o in ("adamw", "adam", "sgd") for lr in (1e-3, 1e-2)
    }
    assert ((board["test_auc_low"] <= board["test_auc"]) & (board["test_auc"] <= board["test_auc_high"])).all()
    assert (board["epochs"] == 2).all() and (board["params"] > 3e6).all() and (board["weights_mb"] > 10).all()
    assert (board["images_per_s"] > 0).all() and (board["wall_min"] > 0).all()
    assert "batch_size" not in board  # only keys that differ between the experiments
    # the terminal table and Markdown show the same ranking; the spreadsheet has a sheet per study
    table = _ok(medtune("leaderboard", "--storage", postgres_url, cwd=tmp_path))
    ids = [int(line.split()[0]) for line in table.splitlines() if re.match(r"^\s*\d+\s+finished", line)]
    assert ids == list(board["id"])
    printed = json.loads(_ok(medtune("leaderboard", "--storage", postgres_url, "--json", cwd=tmp_path)))
    assert [e["id"] for e in printed["experiments"]] == list(board["id"]) and printed["metric"] == "val_auc"
    md = _ok(medtune("leaderboard", "--storage", postgres_url, "-f", "md", cwd=tmp_path))
    assert md.count("| finished |") == 6 and "test AUC [95% CI]" in md
    xlsx = tmp_path / "board.xlsx"
    _ok(medtune("leaderboard", "--storage", postgres_url, "-f", "xlsx", "-o", xlsx, cwd=tmp_path))
    book = openpyxl.load_workbook(xlsx)
    assert book.sheetnames == ["optim"] and book["optim"].max_row == 7
    speed = list((tmp_path / "runs" / "optim").glob("*/speed.json"))
    assert len(speed) == 6  # measured once on this machine, then read back
    # the top of the board, exported as one file
    best = _ok(medtune("export", "--best", "--storage", postgres_url, "--study", "optim", "--out",
                       tmp_path / "best.onnx", cwd=tmp_path))  # fmt: skip
    assert "best run by val_auc:" in best and Path(board["run"].iloc[0]).name in best
    assert (tmp_path / "best.onnx").is_file() and (tmp_path / "best.parity.json").is_file()
    both = medtune("export", board["run"].iloc[0], "--best", "--storage", postgres_url, cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr


def test_a_killed_worker_s_experiment_is_taken_back_and_resumes_from_its_checkpoint(tmp_path, sqlite_url):
    slow = ("limit=240", "image_size=32", "epochs=6", "batch_size=16", "workers=0", "report=false", "guard=false")
    _ok(medtune("queue", "add", _data(), *slow, "--storage", sqlite_url, cwd=tmp_path))
    storage = QueueStorage(sqlite_url)
    (trial_id,) = [t._trial_id for _, t in storage.trials()]
    victim = _worker(sqlite_url, tmp_path, "--heartbeat", "1", "--grace", "4")
    deadline = time.monotonic() + 900  # generous: on a slow, busy CPU an epoch can take a minute
    run = None
    while time.monotonic() < deadline:
        run = storage.trial(trial_id).user_attrs.get("run")
        if run and len(read_history(Path(run) / "history.csv")) >= 2:
            break
        time.sleep(0.1)
    assert run, "the worker never started the experiment"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=120)
    epochs_before = len(read_history(Path(run) / "history.csv"))
    assert 2 <= epochs_before < 6 and state_of(storage.trial(trial_id)) == "running"  # killed mid-experiment
    rescuer = subprocess.run(
        [sys.executable, "-m", "medtune", "queue", "run", "--storage", sqlite_url, "--heartbeat", "1", "--grace", "4"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1800, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    log = _ok(rescuer)
    assert f"#{trial_id} taken back from silent worker" in log and "(resuming)" in log
    trial = storage.trial(trial_id)
    assert state_of(trial) == "finished"
    assert trial.user_attrs["claims"] == 2 and trial.user_attrs["recovered"] == 1
    history = read_history(Path(run) / "history.csv")
    assert list(history["epoch"]) == list(range(1, 7))  # every epoch once, the file matching the weights
    assert "epoch 1/6" not in rescuer.stderr  # resumed from the checkpoint, not from scratch
    assert sorted(trial.intermediate_values) == list(range(6))


def test_a_failed_experiment_keeps_its_error_and_can_be_retried(tmp_path, sqlite_url):
    labels = shared_path("cxr3", "labels.csv")
    _ok(medtune("queue", "add", labels, "label=diagnosis_typo", *FAST, "--storage", sqlite_url, cwd=tmp_path))
    log = _ok(medtune_subprocess("queue", "run", "--storage", sqlite_url, cwd=tmp_path))
    assert "failed" in log and "diagnosis_typo" in log
    status = _ok(medtune("queue", "status", "--storage", sqlite_url, cwd=tmp_path))
    assert "failed" in status and "diagnosis_typo" in status
    again = _ok(medtune("queue", "retry", "1", "--storage", sqlite_url, cwd=tmp_path))
    assert "queued again as 2" in again
    status = _ok(medtune("queue", "status", "--storage", sqlite_url, cwd=tmp_path))
    assert "retried" in status and "queued" in status


def test_cancelling_a_running_experiment_stops_its_worker(tmp_path, sqlite_url):
    slow = ("limit=400", "image_size=32", "epochs=30", "batch_size=16", "workers=0", "report=false", "guard=false")
    _ok(medtune("queue", "add", _data(), *slow, "--storage", sqlite_url, cwd=tmp_path))
    worker = _worker(sqlite_url, tmp_path, "--heartbeat", "1", "--grace", "30")
    storage = QueueStorage(sqlite_url)
    deadline = time.monotonic() + 900  # wait for the event the test needs: an epoch reported and checkpointed
    while time.monotonic() < deadline and not _checkpointed(storage.trial(1)):
        time.sleep(0.2)
    assert _ok(medtune("queue", "cancel", "1", "--storage", sqlite_url, cwd=tmp_path)).strip().endswith("shortly")
    out, _ = worker.communicate(timeout=900)
    assert worker.returncode == 0, out
    trial = storage.trial(1)
    assert state_of(trial) == "cancelled" and "#1 cancelled" in out
    assert len(trial.intermediate_values) < 30
    assert (Path(trial.user_attrs["run"]) / "checkpoints" / "last.ckpt").is_file()


def _checkpointed(trial) -> bool:
    """True once the trial reported an epoch and its run holds ``last.ckpt`` (written after the report)."""
    run = trial.user_attrs.get("run")
    return bool(trial.intermediate_values) and bool(run) and Run(run).last_checkpoint.is_file()


def test_a_search_samples_new_values_and_prunes_clearly_worse_trials(tmp_path, sqlite_url):
    import optuna

    _ok(medtune("sweep", _data(), *FAST, "epochs=4", "lr=1e-4..1e-2:log", "optimizer=adamw,sgd", "logger=mlflow",
                "--search", "2", "--study", "search", "--storage", sqlite_url, cwd=tmp_path))  # fmt: skip
    # five earlier trials that reached a perfect validation AUC at every epoch: anything below is clearly worse
    study = optuna.load_study(study_name="search", storage=sqlite_url)
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    opt = optuna.distributions.CategoricalDistribution(["adamw", "sgd"])
    for i in range(5):
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 1e-3 * (i + 1), "optimizer": "adamw"}, distributions={"lr": lr, "optimizer": opt},
            value=1.0, intermediate_values={step: 1.0 for step in range(4)},
        ))  # fmt: skip
    log = _ok(medtune_subprocess("queue", "run", "--storage", sqlite_url, cwd=tmp_path))
    storage = QueueStorage(sqlite_url)
    searched = [t for _, t in storage.trials() if t.user_attrs.get("search")]
    assert len(searched) == 2 and log.count("pruned:") == 2
    for trial in searched:
        assert state_of(trial) == "pruned"
        assert 1e-4 <= trial.params["lr"] <= 1e-2 and trial.params["optimizer"] in ("adamw", "sgd")
        assert sorted(trial.intermediate_values) == [0, 1, 2]  # stopped at the first epoch after the warm-up
        assert len(read_history(Path(trial.user_attrs["run"]) / "history.csv")) == 3
    assert searched[0].params["lr"] != searched[1].params["lr"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'search' / 'mlflow.db'}")
    tracked = client.search_runs([client.get_experiment_by_name("search").experiment_id])
    assert len(tracked) == 2  # pruned on purpose: KILLED with why, not FAILED
    assert all(r.info.status == "KILLED" and "is clearly worse" in r.data.tags["stopped"] for r in tracked)


def test_queue_commands_refuse_bad_input_before_queueing_anything(tmp_path, sqlite_url):
    data = _data()
    bad = medtune("queue", "add", data, "epochz=3", "--storage", sqlite_url, cwd=tmp_path)
    assert bad.returncode == 2 and "epochs" in bad.stderr  # the closest key is suggested
    missing = medtune("queue", "add", tmp_path / "nope.npz", "--storage", sqlite_url, cwd=tmp_path)
    assert missing.returncode != 0 and "nope.npz" in missing.stderr
    grid_range = medtune("sweep", data, "lr=1e-4..1e-2", "--storage", sqlite_url, cwd=tmp_path)
    assert grid_range.returncode == 2 and "--search" in grid_range.stderr
    out_of_range = medtune("sweep", data, "lr=1e-3,-1", "--storage", sqlite_url, cwd=tmp_path)
    assert out_of_range.returncode == 2 and "lr" in out_of_range.stderr
    nothing = medtune("sweep", data, "epochs=3", "--storage", sqlite_url, cwd=tmp_path)
    assert nothing.returncode == 2 and "nothing is swept" in nothing.stderr
    assert "the queue is empty" in _ok(medtune("queue", "status", "--storage", sqlite_url, cwd=tmp_path))
    # two YAML files: one experiment each, the key=value settings applied to both
    for name, backbone in (("a.yaml", "tf_efficientnet_lite0"), ("b.yaml", "tf_efficientnet_lite1")):
        (tmp_path / name).write_text(f"data: {data}\nbackbone: {backbone}\n")
    _ok(medtune("queue", "add", tmp_path / "a.yaml", tmp_path / "b.yaml", "epochs=1", "--storage", sqlite_url,
                cwd=tmp_path))  # fmt: skip
    configs = [t.user_attrs["config"] for _, t in QueueStorage(sqlite_url).trials()]
    assert [c.get("backbone", "tf_efficientnet_lite0") for c in configs] == ["tf_efficientnet_lite0",
                                                                              "tf_efficientnet_lite1"]  # fmt: skip
    assert all(c["epochs"] == 1 for c in configs)


def test_each_trial_of_a_tracked_sweep_is_an_mlflow_run_in_its_study_s_experiment(tmp_path, sqlite_url):
    from mlflow.tracking import MlflowClient

    _ok(medtune("sweep", _data(), *FAST, "seed=0,1", "logger=mlflow", "--storage", sqlite_url, "--study", "seeds",
                cwd=tmp_path))  # fmt: skip
    sigterm = signal.getsignal(signal.SIGTERM)
    try:  # one worker in this process (fast); the queue's process tests above run real worker processes
        _ok(medtune("queue", "run", "--storage", sqlite_url, cwd=tmp_path))
    finally:
        signal.signal(signal.SIGTERM, sigterm)  # the worker turns SIGTERM into KeyboardInterrupt
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'seeds' / 'mlflow.db'}")  # beside the study's runs
    assert {e.name for e in client.search_experiments()} == {"Default", "seeds"}  # MLflow's own, and the study's
    tracked = client.search_runs([client.get_experiment_by_name("seeds").experiment_id])
    trials = [t for _, t in QueueStorage(sqlite_url).trials()]
    assert sorted(Path(r.data.tags["medtune.run"]) for r in tracked) == sorted(
        Path(t.user_attrs["run"]).resolve() for t in trials)  # fmt: skip
    assert sorted(r.data.params["seed"] for r in tracked) == ["0", "1"] and len({r.info.run_id for r in tracked}) == 2
    for run in tracked:
        assert run.info.status == "FINISHED" and "test_auc" in run.data.metrics and run.data.metrics["kept_epoch"] == 1
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val_auc")] == [1]
