"""Masked classification through the real command line on lungseg (real X-rays with real lung masks).

lungseg holds one class (viral pneumonia), so the task here is one the masks make real: is the lung field larger
or smaller than the median (a real property of each X-ray, read from its mask)? ``mask=multiply`` shows the
network the lungs alone, ``mask=channel`` gives it the mask as a second input.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import medtune, shared_path

FAST = ("limit=120", "image_size=32", "epochs=1", "batch_size=16", "workers=0", "report=false")


@pytest.fixture(scope="module")
def lung_manifest(tmp_path_factory):
    images, masks = shared_path("lungseg", "images"), shared_path("lungseg", "masks")
    paths = sorted(images.glob("*.png"))[:240]
    area = [float((np.asarray(Image.open(masks / p.name)) > 0).mean()) for p in paths]
    labels = np.where(np.asarray(area) > np.median(area), "large", "small")
    out = tmp_path_factory.mktemp("lungs") / "lungs.csv"
    pd.DataFrame({"path": [str(p) for p in paths], "label": labels}).to_csv(out, index=False)
    return out


@pytest.fixture(scope="module")
def multiply_run(lung_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "multiply"
    masks = shared_path("lungseg", "masks")
    result = medtune("train", lung_manifest, f"masks={masks}", "mask=multiply", *FAST, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def test_multiply_run_trains_evaluates_and_predicts(multiply_run, tmp_path):
    config = (multiply_run / "config.yaml").read_text()
    assert "mask: multiply" in config and "lungseg/masks" in config
    metrics = json.loads((multiply_run / "metrics.json").read_text())
    assert metrics["n"] > 0 and metrics["macro"]["auc"] is not None
    images = shared_path("lungseg", "images")
    inputs = [str(p) for p in sorted(images.glob("*.png"))[300:306]]
    out = tmp_path / "pred.csv"
    result = medtune("predict", multiply_run, *inputs, f"masks={shared_path('lungseg', 'masks')}", "--out", out)
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 6 and frame["error"].isna().all() and set(frame["label"]) <= {"large", "small"}


def test_predict_without_masks_says_how_to_give_them(multiply_run, tmp_path):
    image = sorted(shared_path("lungseg", "images").glob("*.png"))[0]
    result = medtune("predict", multiply_run, image, "--out", tmp_path / "p.csv")
    assert result.returncode == 1
    assert "trained with mask=multiply: give the inputs' masks with --masks FOLDER" in result.stderr


def test_an_input_without_its_mask_gets_an_error_row(multiply_run, tmp_path):
    images = sorted(shared_path("lungseg", "images").glob("*.png"))[:3]
    masks = tmp_path / "masks"
    masks.mkdir()
    for image in images[:2]:
        shutil.copy(shared_path("lungseg", "masks", image.name), masks / image.name)
    out = tmp_path / "pred.csv"
    result = medtune("predict", multiply_run, *images, f"masks={masks}", "--out", out)
    assert result.returncode == 3, result.stderr  # one input failed, the others are written
    frame = pd.read_csv(out)
    assert frame["error"].isna().sum() == 2
    assert frame["error"].iloc[2] == "no mask for this image in the masks folder"
    assert "unreadable" in result.stdout and images[2].name in result.stdout


def test_channel_run_gives_the_network_the_mask_as_an_input(lung_manifest, tmp_path):
    out = tmp_path / "channel"
    masks = shared_path("lungseg", "masks")
    result = medtune("train", lung_manifest, f"masks={masks}", "mask=channel", *FAST, "--out", out)
    assert result.returncode == 0, result.stderr
    import torch

    state = torch.load(out / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert state["medtune"]["in_chans"] == 2  # one gray channel and the mask
    image = sorted(shared_path("lungseg", "images").glob("*.png"))[400]
    result = medtune("predict", out, image, f"masks={masks}", "--out", tmp_path / "p.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "p.json").read_text())[str(image)] in ("large", "small")
    # exported, the mask channel is an input of the graph and predict prepares it from --masks as the run does
    exported = medtune("export", out, "--out", tmp_path / "channel.onnx")
    assert exported.returncode == 0, exported.stderr
    from medtune.runs.exported import load_exported

    assert load_exported(tmp_path / "channel.onnx").session.get_inputs()[0].shape[1:] == [32, 32, 2]
    result = medtune("predict", tmp_path / "channel.onnx", image, f"masks={masks}", "--out", tmp_path / "o.json")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "o.json").read_text()) == json.loads((tmp_path / "p.json").read_text())


def test_training_with_a_missing_mask_lists_it_before_anything_runs(lung_manifest, tmp_path):
    masks = tmp_path / "masks"
    shutil.copytree(shared_path("lungseg", "masks"), masks)
    first = pd.read_csv(lung_manifest)["path"][0].rsplit("/", 1)[-1]
    (masks / first).unlink()
    result = medtune("train", lung_manifest, f"masks={masks}", "mask=crop", *FAST, "--out", tmp_path / "run")
    assert result.returncode != 0
    assert "1 of 240 image(s) have no mask" in result.stderr and first in result.stderr
    assert "mask_missing=whole" in result.stderr and not (tmp_path / "run").exists()
