"""Sweep parsing, grids, the leaderboard's ranking and formats: pure functions, no training."""

from __future__ import annotations

import doctest

import pandas as pd
import pytest

from medtune.errors import ConfigError
from medtune.experiments import leaderboard, queue, storage
from medtune.experiments.queue import Dimension, grid, parse_sweep


def test_doctests():
    for module in (queue, storage):
        assert doctest.testmod(module).failed == 0


def test_a_sweep_splits_lists_and_ranges_and_keeps_list_keys_whole():
    fixed, dims = parse_sweep(["classes=a,b", "batch_size=8,16,32", "epochs=2..6", "strategy=freeze,finetune"])
    assert fixed == {"classes": "a,b"}  # a list-valued key is a setting (split by the configuration), not a sweep
    assert [d.key for d in dims] == ["batch_size", "epochs", "strategy"]
    assert dims[0].choices == (8, 16, 32) and dims[2].choices == ("freeze", "finetune")
    assert dims[1].integer and (dims[1].low, dims[1].high) == (2, 6) and not dims[1].log
    assert Dimension.from_dict("epochs", dims[1].to_dict()) == dims[1]


def test_a_grid_is_every_combination_in_order():
    _, dims = parse_sweep(["optimizer=adamw,adam,sgd", "lr=1e-3,1e-2"])
    combos = grid(dims)
    assert len(combos) == 6 and combos[0] == {"optimizer": "adamw", "lr": 1e-3}
    assert combos[1] == {"optimizer": "adamw", "lr": 1e-2} and combos[-1] == {"optimizer": "sgd", "lr": 1e-2}


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("lr=1e-2..1e-4", "LOW must be below HIGH"),
        ("lr=0..1e-2:log", "log scale needs LOW > 0"),
        ("epochs=1.5..4", "whole numbers"),
        ("lr=a..b", "LOW..HIGH with numbers"),
        ("optimizer=adam,adam", "listed twice"),
        ("optimizer", "key=value"),
        ("optimizer=adam,rmsprop", "optimizer='rmsprop' in the sweep"),
        ("batch_size=8,sixteen", "batch_size='sixteen' in the sweep"),
    ],
)
def test_bad_sweep_arguments_say_what_is_wrong(argument, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep([argument])


def test_a_range_in_a_grid_asks_for_search():
    _, dims = parse_sweep(["lr=1e-4..1e-2"])
    with pytest.raises(ConfigError, match="--search"):
        grid(dims)


def _frame() -> pd.DataFrame:
    rows = [
        {"id": 1, "study": "s", "state": "finished", "val_auc": 0.90, "val_loss": 0.30},
        {"id": 2, "study": "s", "state": "failed", "val_auc": None, "val_loss": None},
        {"id": 3, "study": "s", "state": "finished", "val_auc": 0.95, "val_loss": 0.40},
        {"id": 4, "study": "s", "state": "running", "val_auc": 0.97, "val_loss": 0.20},
        {"id": 5, "study": "s", "state": "pruned", "val_auc": 0.60, "val_loss": 0.90},
    ]
    return pd.DataFrame(rows)


def test_ranking_puts_finished_experiments_first_best_first():
    ranked = leaderboard.rank(_frame(), "val_auc")
    assert list(ranked["id"]) == [3, 1, 4, 5, 2] and list(ranked["rank"][:2]) == [1, 2]
    assert ranked["rank"][2:].isna().all()
    assert list(leaderboard.rank(_frame(), "val_loss")["id"][:2]) == [1, 3]  # lower is better for a loss


def test_differing_keys_are_the_swept_ones():
    base = {"data": "/d/x.npz", "epochs": 4}
    configs = [
        leaderboard._full_config({**base, "optimizer": o}, {"lr": lr}) for o in ("adam", "sgd") for lr in (0.1, 0.01)
    ]
    assert leaderboard.differing_keys(configs) == ["lr", "optimizer"]  # in the configuration's order


def test_markdown_and_display_formats():
    frame = leaderboard.rank(_frame(), "val_auc")
    frame["test_auc"], frame["test_auc_low"], frame["test_auc_high"] = 0.9, 0.85, 0.95
    shown = leaderboard.display_frame(frame)
    assert shown.loc[0, "test AUC [95% CI]"] == "0.900 [0.850, 0.950]" and shown.loc[0, "val AUC"] == "0.950"
    compact = leaderboard.display_frame(frame, compact=True)
    assert "study" not in compact and "val loss" not in compact and compact.loc[0, "test AUC"] == "0.900 [0.85, 0.95]"
    markdown = leaderboard.to_markdown(frame).splitlines()
    assert markdown[0].startswith("| id | study | rank | state |") and len(markdown) == 2 + len(frame)
    with pytest.raises(ConfigError, match="--out"):
        leaderboard.write_leaderboard(frame, "xlsx", None)
    with pytest.raises(ConfigError, match="choose one of"):
        leaderboard.write_leaderboard(frame, "json", "x.json")
