"""medtune.experiments.tune and ``medtune tune``: a real search on PneumoniaMNIST scaled down (32 px, a hundred
images, two epochs) that spends its budget, prunes by Hyperband, ranks by validation log loss, makes one run read
once on the test split, and continues its study after Ctrl-C and after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from medtune.errors import ConfigError
from medtune.experiments.queue import Dimension
from medtune.experiments.storage import QueueStorage
from medtune.experiments.tune import default_params, parse_budget, tune_space
from medtune.experiments.tune_result import ranked_trials
from tests.conftest import medtune, shared_path

#: Trials that take seconds: the working size and the data are fixed, so they are not searched.
SMALL = ("limit=96", "image_size=32", "batch_size=16", "workers=0")
BUDGET = "150s"
STUDY = "tune-pneumoniamnist"


def test_budgets_and_the_space_follow_the_data():
    assert parse_budget("1h30m") == 5400 and parse_budget("90s") == 90 and parse_budget("2m") == 120
    for bad in ("soon", "10s", ""):
        with pytest.raises(ConfigError, match="--budget"):
            parse_budget(bad)
    space = {d.key: d for d in tune_space({"lr": 1e-3}, ("normal", "pneumonia"), 28)}
    assert "lr" not in space and "task" not in space and space["image_size"].choices == (64, 96, 128)
    graded = {d.key: d for d in tune_space({}, ("0", "1", "2", "3", "4"), 96)}
    assert graded["task"].choices == ("classify", "ordinal") and graded["image_size"].choices == (64, 96, 128)
    assert space["mixup"].applies({}) and not graded["mixup"].applies({"task": "ordinal"})  # mixed labels: classify
    assert graded["cutmix"].applies({"task": "classify"}) and "mixup" not in {
        d.key for d in tune_space({"loss": "focal"}, ("a", "b"), 64)
    }
    assert Dimension.from_dict("mixup", graded["mixup"].to_dict()) == graded["mixup"]  # kept in the study as it is
    assert {d.key: d for d in tune_space({}, ("a", "b", "c"), 100)}["image_size"].choices == (64, 96, 100, 128)


def _start(data: Path, url: str, cwd: Path, log: Path) -> subprocess.Popen:
    """The real console entry point in its own process, as a user starts it."""
    env = {**os.environ, "COLUMNS": "200", "CUDA_VISIBLE_DEVICES": ""}
    args = ["tune", data, *SMALL, "--budget", BUDGET, "--max-epochs", "2", "--storage", url]
    with log.open("w") as out:
        # as from a terminal: Ctrl-C's signal handled (pytest-xdist's workers ignore SIGINT, and a child inherits that)
        return subprocess.Popen([sys.executable, "-m", "medtune", *map(str, args)], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_terminal_signals)  # fmt: skip


def _terminal_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(log: Path, text: str, process: subprocess.Popen, seconds: float = 240) -> None:
    end = time.time() + seconds
    while text not in log.read_text() and time.time() < end:
        assert process.poll() is None, log.read_text()
        time.sleep(0.5)
    assert text in log.read_text(), log.read_text()


def _training_past_an_epoch(db: QueueStorage) -> bool:
    ids = db.study_ids([STUDY]) if STUDY in db.study_names() else []
    running = [t for _, t in db.trials(ids) if t.state.name == "RUNNING" and t.user_attrs.get("run")]
    return any((Path(t.user_attrs["run"]) / "checkpoints" / "last.ckpt").is_file() for t in running)


def _interrupt_then_kill(data: Path, url: str, cwd: Path) -> QueueStorage:
    """Ctrl-C a tune once its first trial trains; start it again and kill -9 it once it resumes that trial."""
    first = _start(data, url, cwd, cwd / "first.log")
    _wait_for(cwd / "first.log", "started", first)
    db = QueueStorage(url)
    while not _training_past_an_epoch(db):  # Ctrl-C while a trial trains, past its first checkpoint
        assert first.poll() is None, (cwd / "first.log").read_text()
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    assert first.wait(120) != 0
    states = [t.state.name for _, t in db.trials(db.study_ids([STUDY]))]
    assert "WAITING" in states and "RUNNING" not in states  # the interrupted trial queued again, not cancelled
    spent = db.study(STUDY).user_attrs["spent"]
    assert 0 < spent < 120
    second = _start(data, url, cwd, cwd / "second.log")
    _wait_for(cwd / "second.log", "(resuming)", second)  # the same trial, from its last checkpoint
    assert "continuing study" in (cwd / "second.log").read_text()
    time.sleep(16)  # the clock writes what it spent every 15 s: a killed tune leaves it behind
    second.kill()
    second.wait(30)
    assert db.study(STUDY).user_attrs["spent"] > spent + 10
    return db


def test_tune_interrupted_and_killed_continues_and_returns_one_run_read_once_on_test(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    db = _interrupt_then_kill(data, url, tmp_path)
    result = medtune("tune", data, *SMALL, "--budget", BUDGET, "--max-epochs", "2", "--storage", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "continuing study" in result.stdout and "result: " in result.stdout and "chosen: " in result.stdout
    run = tmp_path / "runs" / STUDY / "result"
    summary = json.loads((run / "tune.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == ["test"] and 0 <= metrics["macro"]["auc"] <= 1  # read once, by the result
    assert (run / "guard" / "guard.json").is_file() and (run / "report" / "search.png").is_file()
    assert '<section id="search"' in (run / "report.html").read_text()  # the report shows how it was chosen
    ranked = ranked_trials(db, STUDY)
    assert ranked and summary["validation"]["best"] == pytest.approx(ranked[0].value, abs=0.05)
    for trial in ranked:  # trials left the test split unread: their end-of-training scores are on validation
        assert json.loads((Path(trial.user_attrs["run"]) / "metrics.json").read_text())["split"] == ["val"]
    states = {t["state"] for t in summary["trials"]}
    assert "complete" in states and states <= {"complete", "pruned", "fail", "running"}  # running: the killed one
    spent = db.study(STUDY).user_attrs["spent"]
    assert 60 < spent < 200  # wall clock over the three starts, the final step included
    _the_result_works_in_every_command(run, tmp_path)


def _the_result_works_in_every_command(run: Path, tmp_path: Path) -> None:
    """The tune result is a run like any other: predict, explain, evaluate, export (served runs and
    exported models are the same code as for `medtune train`'s runs, tested in tests/deploy)."""
    images = sorted(shared_path("cxr-fullres").iterdir())[:3]
    predicted = medtune("predict", run, *images, "--out", tmp_path / "p.csv")
    assert predicted.returncode == 0, predicted.stderr
    assert len(pd.read_csv(tmp_path / "p.csv")) == 3
    explained = medtune("explain", run, images[0], "--out", tmp_path / "cams")
    assert explained.returncode == 0 and any((tmp_path / "cams").iterdir()), explained.stderr
    evaluated = medtune("evaluate", run, "--split", "val", "--out", tmp_path / "eval")
    assert evaluated.returncode == 0 and (tmp_path / "eval" / "metrics.json").is_file(), evaluated.stderr
    exported = medtune("export", run, "--out", tmp_path / "model.onnx")
    assert exported.returncode == 0 and (tmp_path / "model.guard.onnx").is_file(), exported.stderr


def test_a_trial_that_cannot_finish_before_the_deadline_stops_once_its_pace_says_so():
    import threading

    import optuna

    from medtune.experiments.worker import BudgetSpent, _TrialCallback

    trial = optuna.create_study().ask()
    soon = _TrialCallback(trial, "val_nll", True, threading.Event(), deadline=time.time() + 300)
    soon.clock = (time.time() - 100, 0)  # one epoch took 100 s
    soon._check_time_left(1, 3)  # two more: 200 s of the 300 left
    with pytest.raises(BudgetSpent, match=r"7 more epochs at 100 s each would end after the study's deadline"):
        soon._check_time_left(1, 8)


def test_the_first_trial_of_a_study_is_the_default_recipe():
    space = tune_space({}, ("0", "1", "2", "3", "4"), 28)
    params = default_params(space, 28)
    assert params["image_size"] == 64 and params["task"] == "classify" and params["augment"] == "medical"
    assert (params["lr"], params["weight_decay"], params["freeze"], params["lr_decay"]) == (2e-3, 0.01, 0, 1.0)
    assert default_params(tune_space({}, ("a", "b"), 256), 256)["image_size"] == 128  # the nearest searched size
    from medtune.config import load_config
    from medtune.experiments.tune import _source_size
    from medtune.runs import read_dataset_table

    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    assert _source_size(read_dataset_table(load_config(data=str(data)))) == 28  # read from the archive's arrays
