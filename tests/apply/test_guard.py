"""medtune.apply.guard and ``medtune guard``: a real run's guard fitted on its training images (at the end of
training, or by the command) and calibrated on its validation images, flagging pathology tiles and skin photographs
given to a chest X-ray model, with ``predict --reject`` withholding their answers; exported beside the model with
the same verdicts; reported by evaluate (`medtune.apply.shift`) and drawn by the report (`medtune.reports.guard`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import medtune as api
from medtune.apply.guard import exported_guard_file, fit_guard, kept_scores, load_guard
from medtune.apply.scoring import load_model
from medtune.errors import ConfigError, DataError
from medtune.runs import Run, prepare_dataset
from tests.conftest import TINY, medtune, shared_path


@pytest.fixture(scope="module")
def guarded(tiny_run, tmp_path_factory):
    run = Path(shutil.copytree(tiny_run, tmp_path_factory.mktemp("guard") / "run"))  # the session's run stays as it was
    result = medtune("guard", run)
    assert result.returncode == 0, result.stderr
    assert "validation images pass" in result.stdout
    return run


def test_the_guard_is_calibrated_on_validation_and_accepts_the_test_split(guarded):
    meta = json.loads((guarded / "guard" / "guard.json").read_text())
    assert meta["share"] == 0.95 and abs(meta["accepted_validation"] - 0.95) <= 0.03
    assert set(meta["thresholds"]) == {"run", "generic"} and meta["seconds_per_image"] > 0
    trained = load_model(guarded)
    guard = load_guard(guarded, trained)
    test = prepare_dataset(trained.config, Run(guarded), split="test", progress=False)
    scores = guard.score(torch.from_numpy(np.array(test.store.images)).permute(0, 3, 1, 2))
    assert (scores <= 1).mean() >= 0.85  # the run's own kind of image passes


def test_far_images_are_flagged_and_their_answers_withheld(guarded, tmp_path):
    tiles = sorted(shared_path("pathology-tiles").glob("*.tif"))
    far = tiles + sorted(shared_path("ham10000-subset", "images").glob("*.jpg"))[:5]
    result = medtune("predict", guarded, *far, "--reject", "--out", tmp_path / "far.csv")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "far.csv")
    flagged = ~frame["in_distribution"].astype(bool)
    # a 32 px, 2-epoch run on 96 images has a loose guard; the default run flags all of these (README)
    assert flagged.sum() >= 10 and f"{flagged.sum()} of {len(far)} image(s) look unlike" in result.stdout
    assert frame.loc[flagged, "label"].isna().all() and frame.loc[~flagged, "label"].notna().all()
    assert (frame.loc[flagged, "guard_score"] > 1).all() and (frame.loc[~flagged, "guard_score"] <= 1).all()
    kept = medtune("predict", guarded, *far, "--out", tmp_path / "kept.csv")  # without --reject: flagged, answered
    assert kept.returncode == 0 and pd.read_csv(tmp_path / "kept.csv")["label"].notna().all()


def test_bad_settings_are_refused(guarded):
    with pytest.raises(ConfigError, match="between 0"):
        fit_guard(guarded, share=1.2)


def test_a_served_run_marks_images_unlike_its_training_images(guarded, tmp_path):
    import httpx

    from tests.deploy.test_server import _start
    from tests.reports.test_browser import launched_chromium

    url, process = _start(guarded)
    tile = sorted(shared_path("pathology-tiles").glob("*.tif"))[1]
    try:
        assert httpx.get(f"{url}/model", timeout=10).json()["guard"] == {"share": 0.95}
        [record] = httpx.post(f"{url}/predict", files={"files": (tile.name, tile.read_bytes())}, timeout=60).json()
        assert record["in_distribution"] is False and record["guard_score"] > 1
        png = tmp_path / "tile.png"
        from PIL import Image

        Image.open(tile).convert("RGB").save(png)
        with launched_chromium() as browser:
            page = browser.new_page(viewport={"width": 1100, "height": 600})
            page.goto(url)
            page.set_input_files("#files", str(png))
            page.wait_for_selector(".result .unlike", timeout=60_000)
            warning = page.inner_text(".result .unlike")
            if os.environ.get("MEDTUNE_SCREENSHOTS"):
                page.screenshot(path=os.environ["MEDTUNE_SCREENSHOTS"])
        assert warning.startswith("looks unlike the training images")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_training_fits_the_guard_and_guard_false_skips_it(tiny_run, tmp_path):
    meta = json.loads((tiny_run / "guard" / "guard.json").read_text())  # the session's run, as training left it
    kept = kept_scores(tiny_run)
    assert meta["share"] == 0.95 and len(kept["test"]) == len(kept["test_ids"]) > 0 and "accepted_test" in meta
    out = tmp_path / "off"
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    result = medtune("train", data, *TINY, "epochs=1", "guard=false", "report=false", "--out", out)
    assert result.returncode == 0, result.stderr
    assert (out / "metrics.json").is_file() and not (out / "guard").exists() and "guard fitted" not in result.stderr


def _nih_films(tmp_path: Path, per_class: int = 15) -> Path:
    """A CSV of NIH normal and pneumonia films from cxr3 (another hospital than PneumoniaMNIST's)."""
    frame = pd.read_csv(shared_path("cxr3", "labels.csv"))
    frame = frame[frame["label"] != "covid"].groupby("label").head(per_class)
    frame["path"] = [str(shared_path("cxr3", p)) for p in frame["path"]]
    frame[["path", "label"]].to_csv(tmp_path / "nih.csv", index=False)
    return tmp_path / "nih.csv"


def test_evaluate_reports_the_guard_and_the_report_draws_it(guarded, tmp_path):
    result = medtune("evaluate", guarded, _nih_films(tmp_path), "--out", tmp_path / "nih")
    assert result.returncode == 0, result.stderr
    assert "look unlike the training images" in result.stdout and "AUROC" in result.stdout
    metrics = json.loads((tmp_path / "nih" / "metrics.json").read_text())["guard"]
    separation = metrics["auroc_vs_test"]
    assert metrics["images"] == 30 and metrics["flagged"] + metrics["accepted"]["images"] == 30
    assert separation["outside"] == 30 and separation["inside"] == len(kept_scores(guarded)["test"])
    assert separation["interval"][0] <= separation["auroc"] <= separation["interval"][1]
    assert separation["auroc"] > 0.7  # another hospital, adults: told apart even by a 32 px run
    predictions = pd.read_csv(tmp_path / "nih" / "predictions.csv")
    assert ((predictions["guard_score"] > 1) == ~predictions["in_distribution"]).all()
    assert int((~predictions["in_distribution"]).sum()) == metrics["flagged"]
    own = api.evaluate(guarded, progress=False).metrics["guard"]  # its own test split: nothing to tell apart
    assert "auroc_vs_test" not in own and own["share_flagged"] <= 0.2
    shutil.copytree(tmp_path / "nih", guarded / "evaluations" / "nih")
    assert medtune("report", guarded).returncode == 0
    page = (guarded / "report.html").read_text()
    assert "Guard: does an image belong here?" in page and "nih" in page
    assert (guarded / "report" / "guard_scores.png").stat().st_size > 5000
    assert (guarded / "report" / "risk_coverage.png").stat().st_size > 5000


def test_the_exported_guard_gives_the_verdicts_of_the_run(guarded, tmp_path):
    model = tmp_path / "model.onnx"
    result = medtune("export", guarded, "--out", model)
    assert result.returncode == 0, result.stderr
    assert "its guard beside it: model.guard.onnx" in result.stdout and exported_guard_file(model).is_file()
    parity = json.loads((tmp_path / "model.parity.json").read_text())["guard"]
    assert parity["same_verdict"] == 1.0 and parity["max_abs_diff"] <= 1e-3
    images = sorted(shared_path("pathology-tiles").glob("*.tif"))[:4] + sorted(shared_path("cxr3", "normal").glob(
        "*.png"))[:4]  # fmt: skip
    onnx = api.predict(model, images, progress=False, workers=0)
    torch_answers = api.predict(guarded, images, progress=False, workers=0, engine="torch")
    np.testing.assert_allclose(onnx["guard_score"], torch_answers["guard_score"], atol=1e-3)
    assert onnx["in_distribution"].tolist() == torch_answers["in_distribution"].tolist()
    from medtune.deploy.service import Predictor

    served = Predictor(model).run([(p.name, p.read_bytes()) for p in images])  # serve MODEL.onnx answers alike
    assert [r["in_distribution"] for r in served] == onnx["in_distribution"].tolist()
    exported_guard_file(model).rename(tmp_path / "elsewhere.onnx")
    with pytest.raises(DataError, match=r"model\.guard\.onnx, which is not beside it"):
        api.predict(model, images, progress=False, workers=0)
