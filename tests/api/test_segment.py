"""medtune.segment: ``train``, ``evaluate`` and ``predict`` of segmenters from Python, as ``medtune segment
train|evaluate|predict`` on the command line, on a tiny lung segmenter trained on real lungseg X-rays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import medtune
from medtune.errors import DataError
from tests.conftest import shared_path


def test_a_segmenter_is_scored_and_writes_masks_at_each_image_s_size(tiny_segment_run, tmp_path):
    scored = medtune.segment.evaluate(tiny_segment_run, out=tmp_path / "scores", progress=False)
    table = scored.to_frame().set_index("metric")
    assert {"dice", "iou", "hd95"} <= set(table.index) and 0 <= table.loc["dice", "value"] <= 1
    assert table.loc["dice", "low"] <= table.loc["dice", "value"] <= table.loc["dice", "high"]
    images = sorted(shared_path("lungseg", "images").glob("*.png"))[:2]
    written = medtune.segment.predict(tiny_segment_run, images, tmp_path / "masks", postprocess="lungs", progress=False)
    assert written["error"].isna().all() and len(written) == 2
    mask = np.asarray(Image.open(written["mask"].iloc[0]))
    assert mask.shape == np.asarray(Image.open(images[0])).shape[:2] and set(np.unique(mask)) <= {0, 255}


def test_training_a_segmenter_needs_its_masks(tmp_path):
    with pytest.raises(DataError, match="segmentation learns from masks, but no masks were given"):
        medtune.segment.train(data=str(shared_path("lungseg", "images")), out=tmp_path / "run", progress=False)
