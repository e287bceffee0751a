"""Segmenters through the same doors as classifiers: a lung segmenter exported to ONNX (uint8 images in, mask
probabilities out, parity checked), predicting masks from the ``.onnx`` equal to the run's, served with its mask
drawn over each upload (the API and the page in Chromium), and a classifier trained with ``masks=SEG_RUN`` exported
with its segmenter so that it predicts with no run directory at all."""

from __future__ import annotations

import json
import os
import shutil

import httpx
import numpy as np
import onnx
import pandas as pd
import pytest
from PIL import Image

from medtune.deploy.export import PARITY_TOLERANCE
from medtune.runs.exported import load_exported
from tests.conftest import medtune, medtune_subprocess, shared_path
from tests.deploy.test_server import _start
from tests.runs.test_segmasks import SMALL


@pytest.fixture(scope="module")
def exported_segmenter(tiny_segment_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("segment-export") / "lungs.onnx"
    result = medtune_subprocess("export", tiny_segment_run, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "same mask pixels" in result.stdout and "medtune segment predict" in result.stdout
    return out


def test_the_segmenter_graph_takes_store_images_and_answers_mask_probabilities(exported_segmenter):
    graph = onnx.load(str(exported_segmenter))
    onnx.checker.check_model(graph, full_check=True)
    (output,) = graph.graph.output
    assert len(output.type.tensor_type.shape.dim) == 3  # (N, H, W): one probability per pixel
    model = load_exported(exported_segmenter)
    assert model.task.name == "segment" and model.classes == () and model.meta["output"] == "mask probabilities"
    probs = model.predict(np.zeros((2, 64, 64, 1), dtype=np.uint8))
    assert probs.shape == (2, 64, 64) and probs.min() >= 0 and probs.max() <= 1
    parity = json.loads(exported_segmenter.with_suffix(".parity.json").read_text())
    assert parity["max_abs_diff"] <= PARITY_TOLERANCE and parity["agreement"] > 0.999


def test_masks_from_the_onnx_equal_the_run_s(exported_segmenter, tiny_segment_run, tmp_path):
    images = shared_path("cxr-fullres")
    by_run = medtune("segment", "predict", tiny_segment_run, images, "--out", tmp_path / "run")
    by_onnx = medtune("segment", "predict", exported_segmenter, images, "--out", tmp_path / "onnx")
    assert by_run.returncode == 0 and by_onnx.returncode == 0, by_onnx.stderr
    files = sorted((tmp_path / "run").glob("*.png"))
    assert len(files) == 8
    for file in files:
        ours, theirs = np.array(Image.open(file)), np.array(Image.open(tmp_path / "onnx" / file.name))
        assert ours.shape == theirs.shape and (ours != theirs).mean() < 1e-3, file.name


@pytest.fixture(scope="module")
def served_segmenter(tiny_segment_run):
    url, process = _start(tiny_segment_run)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_a_served_segmenter_answers_with_the_mask_over_each_image(served_segmenter):
    model = httpx.get(f"{served_segmenter}/model", timeout=10).json()
    assert model["task"] == "segment" and model["classes"] == []
    image = sorted(shared_path("lungseg", "images").glob("*.png"))[0]
    answer = httpx.post(f"{served_segmenter}/predict", files={"files": (image.name, image.read_bytes())}, timeout=60)
    assert answer.status_code == 200, answer.text
    [record] = answer.json()
    assert record["file"] == image.name and 0 <= record["area"] <= 1
    assert (record["height"], record["width"]) == Image.open(image).size[::-1]
    assert record["mask"].startswith("data:image/png;base64,")
    refused = httpx.post(f"{served_segmenter}/predict?cam=true", files={"files": (image.name, image.read_bytes())})
    assert refused.status_code == 400 and "mask" in refused.json()["detail"]


def test_the_page_shows_the_predicted_mask_in_chromium(served_segmenter, tmp_path):
    from tests.reports.test_browser import launched_chromium

    image = sorted(shared_path("lungseg", "images").glob("*.png"))[0]
    with launched_chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        page.goto(served_segmenter)
        page.wait_for_function("document.getElementById('model').textContent.includes('mask per image')")
        page.set_input_files("#files", str(image))
        page.wait_for_selector(".result img.mask", timeout=60_000)
        label = page.inner_text(".result .label")
        loaded = page.eval_on_selector(".result img.mask", "img => img.complete && img.naturalWidth")
        page.screenshot(path=str(tmp_path / "page.png"))
        if os.environ.get("MEDTUNE_SCREENSHOTS"):
            page.screenshot(path=os.environ["MEDTUNE_SCREENSHOTS"])
    assert label.startswith("mask: ") and label.endswith("% of the image") and loaded == 256


def test_a_masked_classifier_exports_with_its_segmenter_and_needs_no_run(tiny_segment_run, tmp_path):
    run = tmp_path / "cxr3-lungs"
    trained = medtune("train", shared_path("cxr3", "labels.csv"), f"masks={tiny_segment_run}", "mask=multiply",
                      *SMALL, "report=false", "--out", run)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    exported = medtune_subprocess("export", run, "--out", tmp_path / "export" / "model.onnx")
    assert exported.returncode == 0, exported.stderr
    meta = load_exported(tmp_path / "export" / "model.onnx").meta
    assert meta["segmenter"] == "model.segmenter.onnx" and len(meta["segmenter_sha256"]) == 64
    shipped = tmp_path / "shipped"
    shutil.copytree(tmp_path / "export", shipped)
    images = shared_path("cxr-fullres")
    expected = medtune("predict", run, images, "--out", tmp_path / "run.csv", "--engine", "torch")
    assert expected.returncode == 0, expected.stderr
    hidden = tiny_segment_run.with_name(tiny_segment_run.name + "-hidden")
    tiny_segment_run.rename(hidden)  # neither the classifier's run nor its segmentation run is needed now
    try:
        alone = medtune("predict", shipped / "model.onnx", images, "--out", tmp_path / "shipped.csv")
    finally:
        hidden.rename(tiny_segment_run)
    assert alone.returncode == 0, alone.stderr
    ours, theirs = pd.read_csv(tmp_path / "shipped.csv"), pd.read_csv(tmp_path / "run.csv")
    assert (ours["label"] == theirs["label"]).all()
    np.testing.assert_allclose(ours.filter(like="prob_"), theirs.filter(like="prob_"), atol=1e-4)
