"""A sweep of segmentation losses through the queue: `medtune sweep segment`, a worker, and the leaderboard ranked
by Dice with intervals (the course portfolio's loss table, as one command)."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import TINY_SEGMENT, medtune, medtune_subprocess, shared_path

pytestmark = pytest.mark.slow


def test_a_loss_sweep_of_segmenters_is_ranked_by_dice(tmp_path, sqlite_url):
    images, masks = shared_path("lungseg", "images"), shared_path("lungseg", "masks")
    queued = medtune("sweep", "segment", images, f"masks={masks}", *TINY_SEGMENT, "report=false",
                     "loss=dice,jaccard+bce", "--storage", sqlite_url, "--study", "losses", cwd=tmp_path)  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    assert "a grid of 2 experiments" in queued.stdout
    log = medtune_subprocess("queue", "run", "--storage", sqlite_url, cwd=tmp_path)
    assert log.returncode == 0, log.stdout + log.stderr
    csv = tmp_path / "board.csv"
    board = medtune("leaderboard", "--storage", sqlite_url, "-f", "csv", "-o", csv, cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    frame = pd.read_csv(csv)
    assert list(frame["state"]) == ["finished", "finished"] and set(frame["loss"]) == {"dice", "jaccard+bce"}
    assert frame["val_dice"].is_monotonic_decreasing and "test_auc" not in frame
    assert ((frame["test_dice_low"] <= frame["test_dice"]) & (frame["test_dice"] <= frame["test_dice_high"])).all()
    assert (frame["images_per_s"] > 0).all()
    table = medtune("leaderboard", "--storage", sqlite_url, cwd=tmp_path)
    assert "ranked by val_dice" in table.stdout and "test Dice" in table.stdout


def test_a_segmentation_sweep_checks_its_losses_before_queueing(tmp_path, sqlite_url):
    images, masks = shared_path("lungseg", "images"), shared_path("lungseg", "masks")
    result = medtune("sweep", "segment", images, f"masks={masks}", "loss=dice,cross-entropy", "--storage",
                     sqlite_url, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "unknown segmentation loss 'cross-entropy'" in result.stderr
