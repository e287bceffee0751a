"""``medtune segment train|evaluate|predict`` on real lungseg X-rays and masks, scaled down (64 px, one epoch)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
from PIL import Image

from tests.conftest import REPO, TINY_SEGMENT, medtune, medtune_subprocess, shared_path


def test_train_writes_a_segmentation_run(tiny_segment_run):
    metrics = json.loads((tiny_segment_run / "metrics.json").read_text())
    assert metrics["task"] == "segment" and metrics["n"] == 16 and metrics["split"] == ["test"]
    for name in ("dice", "iou"):
        low, high = metrics["intervals"][name]
        assert 0 <= low <= metrics[name] <= high <= 1
    history = pd.read_csv(tiny_segment_run / "history.csv")
    assert {"train_dice", "val_dice", "val_iou", "val_loss"} <= set(history.columns) and len(history) == 1
    per_image = pd.read_csv(tiny_segment_run / "predictions.csv")
    assert len(per_image) == 16 and per_image["dice"].between(0, 1).all() and per_image["hd95"].notna().any()
    config = (tiny_segment_run / "config.yaml").read_text()
    assert "task: segment" in config and "arch: unet" in config and "loss: dice+bce" in config
    page = (tiny_segment_run / "report.html").read_text()
    assert "Worst images" in page and "Dice" in page and (tiny_segment_run / "report" / "worst.png").is_file()
    printed = (tiny_segment_run.parent / "train-stdout.txt").read_text()
    assert "Dice" in printed and "Hausdorff 95%" in printed


def test_evaluate_on_other_data_with_its_masks(tiny_segment_run, tmp_path):
    images, masks = tmp_path / "images", shared_path("lungseg", "masks")
    images.mkdir()
    for path in sorted(shared_path("lungseg", "images").glob("*.png"))[-6:]:
        shutil.copy(path, images / path.name)
    result = medtune("segment", "evaluate", tiny_segment_run, images, f"masks={masks}", "--out", tmp_path / "eval")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 6 and metrics["data"] == str(images) and "Dice" in result.stdout


def test_predict_writes_masks_at_the_input_resolution(tiny_segment_run, tmp_path):
    inputs = sorted(shared_path("lungseg", "images").glob("*.png"))[:3]
    wide = tmp_path / "wide.jpg"  # another size and format: the mask comes back at 300 x 200
    Image.open(inputs[0]).convert("L").resize((300, 200)).save(wide)
    broken = tmp_path / "broken.png"
    broken.write_bytes(inputs[1].read_bytes()[:400])  # truncated
    out = tmp_path / "masks"
    result = medtune_subprocess("segment", "predict", tiny_segment_run, *inputs, wide, broken, "--out", out,
                                "postprocess=lungs")  # fmt: skip
    assert result.returncode == 3, result.stderr  # the broken file failed, the others were written
    assert "4 mask(s) written" in result.stdout and "broken.png" in result.stdout
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted([*(p.name for p in inputs), "wide.png"])
    mask = np.asarray(Image.open(out / "wide.png"))
    assert mask.shape == (200, 300) and set(np.unique(mask)) <= {0, 255}
    assert np.asarray(Image.open(out / inputs[0].name)).shape == (256, 256)


def test_a_killed_run_resumes(tmp_path, tiny_segment_run):
    images, masks = shared_path("lungseg", "images"), shared_path("lungseg", "masks")
    out = tmp_path / "run"
    args = ["segment", "train", images, f"masks={masks}", *TINY_SEGMENT, "epochs=3", "report=false", "--out", out]
    args = [a for a in args if a != "epochs=1"]
    process = subprocess.Popen([sys.executable, "-m", "medtune", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 300
    while not (out / "checkpoints" / "last.ckpt").is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "metrics.json").is_file()
    result = medtune(*args)
    assert result.returncode == 0, result.stderr
    assert "resumed and finished" in result.stdout
    assert len(pd.read_csv(out / "history.csv")) == 3
    compared = medtune("report", out, tiny_segment_run, "--out", tmp_path / "both.html")
    assert compared.returncode == 0, compared.stderr
    page = (tmp_path / "both.html").read_text()
    assert "test Dice" in page and "best val Dice" in page


def test_bad_inputs_name_the_file_and_the_fix(tmp_path, tiny_segment_run, tiny_run):
    images = tmp_path / "images"
    images.mkdir()
    sources = sorted(shared_path("lungseg", "images").glob("*.png"))[:12]
    for path in sources:
        shutil.copy(path, images / path.name)
    unpaired = tmp_path / "unpaired"
    unpaired.mkdir()
    result = medtune("segment", "train", images, f"masks={unpaired}", *TINY_SEGMENT, "--out", tmp_path / "a")
    assert result.returncode == 1 and "segmentation learns from masks" in result.stderr
    assert "images/NAME.png and masks/NAME.png" in result.stderr
    odd = tmp_path / "odd"
    odd.mkdir()
    for path in sources:
        Image.open(shared_path("lungseg", "masks", path.name)).resize((128, 64)).save(odd / path.name)
    result = medtune("segment", "train", images, f"masks={odd}", *TINY_SEGMENT, "--out", tmp_path / "b")
    assert result.returncode == 1 and "the mask is 128x64 pixels" in result.stderr and sources[0].name in result.stderr
    result = medtune("predict", tiny_segment_run, sources[0], "--out", tmp_path / "p.csv")
    assert result.returncode == 1 and "is a segmentation run" in result.stderr and "segment predict" in result.stderr
    result = medtune("segment", "predict", tiny_run, sources[0], "--out", tmp_path / "m")
    assert result.returncode == 1 and "is a classification run" in result.stderr
    result = medtune("segment", "evaluate", tiny_segment_run, images)
    assert result.returncode == 2 and "needs its masks: add --masks FOLDER" in result.stderr
    (tmp_path / "taken").write_text("a file")
    result = medtune("segment", "predict", tiny_segment_run, sources[0], "--out", tmp_path / "taken")
    assert result.returncode == 2 and "is a file" in result.stderr
