"""Epochs are counted from 1 in every file and line a run writes (`HistoryWriter`, ``kept.json``), and a run written
when ``history.csv`` and ``kept.json`` counted from 0 still resumes and reads right."""

from __future__ import annotations

import json

import lightning as L
import pandas as pd
import pytest
import torch

import medtune
from medtune.data import demo_data
from medtune.experiments.leaderboard import _best_epoch
from medtune.fitting.callbacks import EpochBar, HistoryWriter
from medtune.reports.results import read_results
from medtune.runs import Run, read_history
from tests.interrupt import Killed, StopAtSecondEpoch

KEYS = {"limit": 48, "image_size": 28, "epochs": 2, "batch_size": 16, "workers": 0, "threads": 1, "report": False,
        "guard": False}  # fmt: skip


def _as_written_before(run: Run) -> None:
    """Turn an interrupted run into what the version that counted epochs from 0 left: its history.csv and the row
    its last checkpoint still has to report, both from 0, without ``epoch_base``."""
    history = pd.read_csv(run.history_file)
    history["epoch"] -= 1
    history.to_csv(run.history_file, index=False)
    checkpoint = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    state = checkpoint["callbacks"]["HistoryWriter"]
    state["pending"]["epoch"] -= 1
    del state["epoch_base"]
    torch.save(checkpoint, run.last_checkpoint)


def test_an_interrupted_run_from_before_epochs_counted_from_1_resumes_and_counts_from_1(tmp_path, capsys):
    with pytest.raises(Killed):
        medtune.train(data=str(demo_data()), out=tmp_path / "run", progress=False, callbacks=[StopAtSecondEpoch()],
                      **KEYS)  # fmt: skip
    run = Run(tmp_path / "run")
    assert pd.read_csv(run.history_file)["epoch"].tolist() == [1]
    assert "epoch 1/2: train loss" in capsys.readouterr().err  # the log line and the file say the same epoch
    _as_written_before(run)
    assert read_history(run.history_file)["epoch"].tolist() == [1]  # read from 1 as it is
    copy = tmp_path / "history-copy.csv"
    copy.write_bytes(run.history_file.read_bytes())
    writer = HistoryWriter(copy)
    writer.load_state_dict(torch.load(run.last_checkpoint, weights_only=True)["callbacks"]["HistoryWriter"])
    writer.on_train_end(None, None)  # the old checkpoint's pending row, written as a resumed run writes it
    assert pd.read_csv(copy)["epoch"].tolist() == [1]

    result = medtune.train(data=str(demo_data()), out=tmp_path / "run", progress=False, **KEYS)
    assert result.resumed and pd.read_csv(run.history_file)["epoch"].tolist() == [1, 2]  # rewritten from 1
    assert "epoch 2/2: train loss" in capsys.readouterr().err
    kept = json.loads(run.kept_file.read_text())
    assert kept["epoch_base"] == 1 and kept["last_epoch"] == 2 and kept["epoch"] in (1, 2)


def test_a_finished_run_from_before_reads_its_kept_epoch_from_1(tmp_path):
    run = Run(tmp_path / "old")
    run.path.mkdir()
    (run.path / "config.yaml").write_text("monitor: val_auc\n")
    pd.DataFrame({"epoch": [0, 1, 2], "val_auc": [0.8, 0.9, 0.85]}).to_csv(run.history_file, index=False)
    run.kept_file.write_text(json.dumps({"rule": "auto", "best_epoch": 1, "last_epoch": 2, "epoch": 1, "kept": "best",
                                         "reason": "early stopping ended training"}))  # fmt: skip
    kept = run.read_kept()
    assert (kept["epoch"], kept["best_epoch"], kept["last_epoch"], run.kept_epoch) == (2, 2, 3, 2)
    results = read_results(run.path)
    assert results.history["epoch"].tolist() == [1, 2, 3] and results.best_epoch == 2  # the report's epoch
    assert _best_epoch({"best_epoch": 1}) == 2  # a leaderboard result recorded from 0
    assert _best_epoch({"best_epoch": 2, "epoch_base": 1}) == 2


def test_the_progress_bar_counts_epochs_from_1_of_the_total():
    bar = EpochBar()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", callbacks=[bar], logger=False, enable_checkpointing=False)
    bar.setup(trainer, None, "fit")  # as Lightning attaches its progress bar when fitting starts
    assert [bar._get_train_description(epoch).strip() for epoch in (0, 4)] == ["Epoch 1/5", "Epoch 5/5"]
