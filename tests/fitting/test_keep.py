"""Which epoch a classifier keeps (`medtune.fitting.keep`): real runs, real checkpoints, real validation images."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import torch

from medtune.config import load_config
from medtune.fitting.keep import keep_checkpoint
from medtune.fitting.train import train
from medtune.runs import Run, prepare_dataset
from medtune.runs.trained import load_trained
from tests.conftest import shared_path

KEYS = {"limit": 96, "image_size": 32, "epochs": 2, "batch_size": 16, "workers": 0, "report": False, "guard": False}


def _run(tmp_path, **keys):
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    return train(load_config(data=data, **{**KEYS, **keys}), out=tmp_path / "run", progress=False).run


def _decide(run: Run, **keys):
    """Decide again on a finished run as if training had just ended (its kept.json removed), with other keys."""
    run.kept_file.unlink(missing_ok=True)
    config = load_config(**{**run.read_config(), **keys})
    dataset = prepare_dataset(config, run, progress=False)
    return keep_checkpoint(load_trained(run.path).model, dataset, run)


def _set_history(run: Run, values: list[float]) -> None:
    history = pd.read_csv(run.history_file)
    history["val_auc"] = values
    history.to_csv(run.history_file, index=False)


def test_a_best_epoch_that_is_not_clearly_better_gives_way_to_the_last(tmp_path):
    run = _run(tmp_path)
    decision = json.loads(run.kept_file.read_text())
    assert decision["rule"] == "auto" and decision["epoch"] in (1, 2) and decision["epoch_base"] == 1
    # the first epoch "scored" a hair better, but its weights are the last epoch's: a paired comparison finds no gain
    shutil.copyfile(run.last_checkpoint, run.best_checkpoint)
    _set_history(run, [0.9, 0.8999])
    decision = _decide(run)
    assert (decision["kept"], decision["epoch"], decision["share_better"]) == ("last", 2, 0.0)
    assert run.kept_epoch == 2 and run.best_checkpoint.read_bytes() == run.last_checkpoint.read_bytes()
    assert "under 95%" in decision["reason"]


def test_a_clearly_better_best_epoch_is_kept(tmp_path):
    run = _run(tmp_path)
    shutil.copyfile(run.last_checkpoint, run.best_checkpoint)
    # spoil the last epoch's head (a real checkpoint file, its logits negated: the two class scores swap, so its AUC
    # is one minus the trained one) so the best one wins; random weights were tried and sometimes did as well
    checkpoint = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    for name, tensor in checkpoint["state_dict"].items():
        if name.startswith("model.head."):
            tensor.neg_()
    torch.save(checkpoint, run.last_checkpoint)
    before = run.best_checkpoint.read_bytes()
    _set_history(run, [0.9, 0.5])
    decision = _decide(run)
    assert decision["kept"] == "best" and decision["share_better"] >= 0.95
    assert run.best_checkpoint.read_bytes() == before and run.kept_epoch == 1


def test_early_stopping_and_explicit_rules_keep_what_they_say(tmp_path):
    run = _run(tmp_path)
    shutil.copyfile(run.last_checkpoint, run.best_checkpoint)
    _set_history(run, [0.9, 0.8])
    stopped = _decide(run, epochs=5)  # two of five epochs ran: early stopping ended training
    assert stopped["kept"] == "best" and "early stopping" in stopped["reason"] and "share_better" not in stopped
    assert _decide(run, keep="best")["kept"] == "best"
    assert _decide(run, keep="last")["epoch"] == 2


def test_last_checkpoint_holds_the_last_epoch_even_when_an_earlier_one_was_best(tmp_path):
    # Lightning 2.6 wrote last.ckpt only beside a new best checkpoint, so it held the best epoch: resuming repeated
    # epochs and keep=auto compared the best epoch with itself. A high learning rate makes validation jump about
    # (seed 0, one thread: the best epoch is the second of four here).
    run = _run(tmp_path, limit=200, epochs=4, lr=0.05, threads=1, keep="best")
    history = pd.read_csv(run.history_file)
    last = torch.load(run.last_checkpoint, map_location="cpu", weights_only=True)
    best = torch.load(run.best_checkpoint, map_location="cpu", weights_only=True)
    assert last["epoch"] + 1 == history["epoch"].iloc[-1] == 4  # Lightning counts from 0, history.csv from 1
    assert best["epoch"] + 1 == history.loc[history["val_auc"].idxmax(), "epoch"]
    assert last["global_step"] == 4 * best["global_step"] // (best["epoch"] + 1)
