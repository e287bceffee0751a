"""``medtune ensemble``: real runs on real images, averaged, evaluated, predicted, exported and refused."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from medtune.apply.scoring import store_probabilities
from medtune.runs import Run, prepare_dataset
from medtune.runs.trained import load_trained
from tests.conftest import medtune, shared_path

KEYS = ("train_limit=64", "image_size=32", "epochs=1", "batch_size=16", "workers=0")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two RetinaMNIST runs (classes named 0-4; the file gives the splits, the seed draws the 64 training images)
    and a PneumoniaMNIST run (other classes)."""
    root = tmp_path_factory.mktemp("ensemble")
    retina = shared_path("retinamnist", "retinamnist.npz")
    first = medtune("train", retina, *KEYS, "seed=0", "--out", root / "a")
    assert first.returncode == 0, first.stderr
    assert (root / "a" / "report.html").is_file()  # numeric class names: the report's mistakes section reads them
    second = medtune("train", retina, *KEYS, "seed=1", "report=false", "--out", root / "b")
    assert second.returncode == 0, second.stderr
    other = medtune("train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *KEYS, "report=false", "--out",
                    root / "pneumonia")  # fmt: skip
    assert other.returncode == 0, other.stderr
    return root


def test_the_ensemble_averages_its_members_probabilities_and_works_as_a_run(members, tmp_path):
    out = tmp_path / "ens"
    result = medtune("ensemble", members / "a", members / "b", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "ensemble of 2 runs" in result.stdout and (out / "report.html").is_file()
    described = json.loads((out / "ensemble.json").read_text())["members"]
    assert [m["run"] for m in described] == [str((members / n).resolve()) for n in "ab"]
    # the test predictions are the mean of each member's probabilities on the same stored images
    ensemble, a, b = (load_trained(p) for p in (out, members / "a", members / "b"))
    dataset = prepare_dataset(ensemble.config, Run(out), split="test", progress=False)
    rows = np.arange(len(dataset.table))
    probs = [store_probabilities(t.model, t.preprocessing, dataset.store, rows, t.config) for t in (ensemble, a, b)]
    np.testing.assert_allclose(probs[0], (probs[1] + probs[2]) / 2, atol=1e-5)
    written = pd.read_csv(out / "predictions.csv")
    assert len(written) == json.loads((out / "metrics.json").read_text())["n"] == 400
    # the other commands take the folder as a run
    assert medtune("evaluate", out, "--split", "val", "--out", tmp_path / "val").returncode == 0
    exported = medtune("export", out)
    assert exported.returncode == 0, exported.stderr
    assert json.loads((out / "export" / "model.parity.json").read_text())["agreement"] == 1.0
    image = tmp_path / "eye.png"
    from PIL import Image

    Image.fromarray(np.load(shared_path("retinamnist", "retinamnist.npz"))["test_images"][0]).save(image)
    predicted = medtune("predict", out, image, "--out", tmp_path / "p.json", "--probs")
    assert predicted.returncode == 0, predicted.stderr
    explained = medtune("explain", out, image, "--out", tmp_path / "cams")
    assert explained.returncode == 0, explained.stderr


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (("a",), "needs two runs or more"),
        (("a", "a"), "named twice"),
        (("a", "pneumonia"), "has classes"),
    ],
)
def test_refusals_name_the_run_and_the_fix(members, tmp_path, names, message):
    result = medtune("ensemble", *(members / n for n in names), "--out", tmp_path / "ens")
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_a_member_that_trained_on_the_test_split_is_refused(members, tmp_path):
    # the second run's split file edited so that one test image of the first run was a training image
    split = pd.read_csv(members / "b" / "split.csv", dtype=str)
    test_id = split.loc[split["split"] == "test", "id"].iloc[0]
    leaky = tmp_path / "leaky"
    import shutil

    shutil.copytree(members / "b", leaky)
    split.loc[split["id"] == test_id, "split"] = "train"
    split.to_csv(leaky / "split.csv", index=False)
    result = medtune("ensemble", members / "a", leaky, "--out", tmp_path / "ens")
    assert result.returncode != 0 and "split_file=" in result.stderr and test_id in result.stderr
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "x").write_text("x")
    result = medtune("ensemble", members / "a", members / "b", "--out", occupied)
    assert result.returncode != 0 and "not empty" in result.stderr
