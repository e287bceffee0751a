"""``strategy=freeze augment=none`` trains the head on features computed once: the same training as running the
frozen backbone in every epoch, with checkpoints of the whole network."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from medtune import train
from medtune.config import load_config
from tests.conftest import shared_path

KEYS = {"strategy": "freeze", "augment": "none", "limit": 200, "image_size": 32, "epochs": 2, "batch_size": 16,
        "report": False}  # fmt: skip


def _features_cache() -> list[Path]:
    folder = Path(os.environ["MEDTUNE_CACHE"]) / "features"
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []  # no locks


def test_cached_features_train_the_head_as_the_frozen_backbone_would(tmp_path, capsys):
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    every_epoch = train(load_config(data=data, cache_features=False, **KEYS), out=tmp_path / "slow", progress=False)
    before = _features_cache()
    cached = train(load_config(data=data, **KEYS), out=tmp_path / "fast", progress=False)
    made = [p for p in _features_cache() if p not in before]
    assert len(made) == 1 and (made[0] / "features.npy").is_file()
    slow, fast = pd.read_csv(tmp_path / "slow" / "history.csv"), pd.read_csv(tmp_path / "fast" / "history.csv")
    assert len(fast) == 2 and fast["backbone_frozen"].all()
    for column in ("train_loss", "val_loss", "val_auc"):  # features are kept as float16: equal to rounding
        assert fast[column].to_numpy() == pytest.approx(slow[column].to_numpy(), abs=2e-3)
    assert cached.metrics["macro"]["auc"] == pytest.approx(every_epoch.metrics["macro"]["auc"], abs=5e-3)
    state = torch.load(tmp_path / "fast" / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("model.backbone.") for k in state["state_dict"])  # the whole network, not the head alone
    stamp = (made[0] / "features.npy").stat().st_mtime_ns
    train(load_config(data=data, **{**KEYS, "epochs": 1}), out=tmp_path / "again", progress=False)
    assert set(_features_cache()) == {*before, *made} and (made[0] / "features.npy").stat().st_mtime_ns == stamp


def test_augmentation_with_a_frozen_backbone_says_what_it_costs(tmp_path, capsys):
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    train(load_config(data=data, **{**KEYS, "augment": "flip", "epochs": 1}), out=tmp_path / "run", progress=False)
    err = capsys.readouterr().err
    assert "strategy=freeze with augment=flip runs the frozen backbone" in err and "augment=none" in err
