"""Classification with masks from a segmentation run (``masks=SEG_RUN``): cxr3 X-rays, which come without lung
masks, masked by a lung segmenter trained on lungseg, through the real command line and a real server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medtune.config import load_config
from medtune.errors import ConfigError
from medtune.runs import read_dataset_table
from medtune.runs.segmasks import is_segmentation_run
from tests.conftest import medtune, shared_path

SMALL = ("label=label", "group=patient_id", "limit=20", "image_size=64", "epochs=1", "batch_size=16", "workers=0")


@pytest.fixture(scope="module")
def masked_run(tiny_segment_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "cxr3-lungs"
    result = medtune("train", shared_path("cxr3", "labels.csv"), f"masks={tiny_segment_run}", "mask=multiply", *SMALL,
                     "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def _cached_masks() -> list[Path]:
    return sorted(Path(os.environ["MEDTUNE_CACHE"]).glob("masks/*-none/*.png"))


def test_the_classifier_trains_on_predicted_masks_and_records_its_segmenter(masked_run, tiny_segment_run):
    config = (masked_run / "config.yaml").read_text()
    assert f"masks: {tiny_segment_run}" in config and "mask: multiply" in config
    assert is_segmentation_run(tiny_segment_run) and not is_segmentation_run(masked_run)
    metrics = json.loads((masked_run / "metrics.json").read_text())
    assert metrics["n"] > 0 and metrics["macro"]["auc"] is not None
    assert (masked_run / "report.html").is_file()
    masks = _cached_masks()
    assert len(masks) >= 1124  # every cxr3 image segmented once, at its own size, 0 or 255
    sample = np.asarray(Image.open(masks[0]))
    assert set(np.unique(sample)) <= {0, 255}


def test_reading_again_segments_nothing(masked_run, tiny_segment_run):
    before = {p: p.stat().st_mtime_ns for p in _cached_masks()}
    config = load_config(data=str(shared_path("cxr3", "labels.csv")), label="label", masks=str(tiny_segment_run),
                         mask="multiply")  # fmt: skip
    table = read_dataset_table(config, progress=False)
    assert table.frame["mask"].map(lambda m: Path(m).is_file()).all()
    assert any("predicted by the segmentation run" in note for note in table.notes)
    assert {p: p.stat().st_mtime_ns for p in _cached_masks()} == before


def test_predict_evaluate_and_serve_segment_new_images_themselves(masked_run, tmp_path):
    from tests.deploy.test_server import _start

    images = sorted(shared_path("lungseg", "images").glob("*.png"))[:3]  # images the classifier never saw
    result = medtune("predict", masked_run, *images, "--out", tmp_path / "p.csv")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "p.csv")
    assert frame["error"].isna().all() and set(frame["label"]) <= {"covid", "normal", "pneumonia"}
    url, process = _start(masked_run)
    try:
        answer = httpx.post(f"{url}/predict", files=[("files", (images[0].name, images[0].read_bytes(), "image/png"))],
                            timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
        served = answer.json()[0]
        assert served["label"] == frame.loc[0, "label"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_classifier_run_is_no_segmenter(masked_run, tmp_path):
    result = medtune("train", shared_path("cxr3", "labels.csv"), f"masks={masked_run}", "mask=multiply", *SMALL,
                     "--out", tmp_path / "x")  # fmt: skip
    assert result.returncode == 2 and "is a run directory, not a folder of masks" in result.stderr


def test_mask_missing_predict_needs_a_segmentation_run():
    config = load_config(data=str(shared_path("cxr3", "labels.csv")), mask="multiply", mask_missing="predict",
                         masks=str(shared_path("lungseg", "masks")))  # fmt: skip
    with pytest.raises(ConfigError, match="mask_missing=predict segments the images without a mask"):
        read_dataset_table(config)
