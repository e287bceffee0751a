"""`medtune explain` through the real command line: maps, overlays and explanations.csv for real X-rays, masks from
the lung segmentation data, unreadable files, bad settings, and CNN and ViT runs end to end."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medtune.data.images import prepare, read_image
from tests.conftest import medtune, medtune_subprocess, shared_path


def lungseg_images(count: int) -> list:
    return sorted(shared_path("lungseg", "images").glob("*.png"))[:count]


def test_maps_for_every_readable_image_and_the_error_of_a_corrupt_one(tiny_run, tmp_path):
    good = sorted(shared_path("cxr3", "normal").glob("*.png"))[:3]
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    for folder in ("a", "b"):  # the same file name twice: the second gets its own output files
        (tmp_path / folder).mkdir()
        shutil.copy(good[0], tmp_path / folder / "same.png")
    out = tmp_path / "cams"
    result = medtune_subprocess("explain", tiny_run, *good, corrupt, tmp_path / "a", tmp_path / "b", "--out", out)
    assert result.returncode == 3, result.stderr  # one input failed
    assert "5 image(s) explained with gradcam" in result.stdout and "unreadable" in result.stdout

    table = pd.read_csv(out / "explanations.csv").set_index("file")
    assert len(table) == 6
    assert "not a recognised image" in table.loc[str(corrupt), "error"]
    assert pd.isna(table.loc[str(corrupt), "overlay"])
    explained = table[table["error"].isna()]
    assert sorted(explained["overlay"]) == sorted([*(f"{p.stem}.png" for p in good), "same.png", "same-2.png"])
    assert set(explained["predicted"]) <= {"normal", "pneumonia"}
    assert (explained["target"] == explained["predicted"]).all()  # --target predicted by default
    assert explained["probability"].between(0.5, 1).all()  # the top class of two
    for row in explained.itertuples():
        heat = np.load(out / row.heatmap)
        assert heat.shape == (32, 32) and heat.dtype == np.float32  # the run's working size
        assert heat.min() >= 0 and heat.max() <= 1 and heat.std() > 0
        with Image.open(out / row.overlay) as picture:
            panel = np.asarray(picture.convert("L"))
        scale = 192 // 32  # the 32 px pictures are enlarged (nearest) to 192 px, input left, overlay right
        assert panel.shape == (192 + 18, 2 * 192 + 4)  # and an 18 px caption strip below
        assert np.array_equal(panel[:192:scale, :192:scale], prepare(read_image(row.Index), 32, 1)[..., 0])
    assert np.array_equal(np.load(out / "same.npy"), np.load(out / f"{good[0].stem}.npy"))


def test_masks_give_the_energy_inside_the_lungs(tiny_run, tmp_path):
    images = lungseg_images(3)
    unpaired = sorted(shared_path("cxr3", "covid").glob("*.png"))[0]
    out = tmp_path / "cams"
    masks = shared_path("lungseg", "masks")
    result = medtune("explain", tiny_run, *images, unpaired, f"masks={masks}", "--out", out, "--target", "Pneumonia")
    assert result.returncode == 0, result.stderr
    assert "mean mask energy" in result.stdout and "no mask named" in result.stdout

    table = pd.read_csv(out / "explanations.csv").set_index("file")
    paired = table.loc[[str(p) for p in images]]
    assert paired["mask_energy"].between(0, 1).all() and paired["mask"].notna().all()
    assert (table["target"] == "pneumonia").all()  # the class as the run names it
    assert pd.isna(table.loc[str(unpaired), "mask_energy"]) and "no mask named" in table.loc[str(unpaired), "warning"]
    assert pd.isna(table.loc[str(unpaired), "error"])  # still explained
    assert f"mean mask energy {paired['mask_energy'].mean():.3f} over 3 image(s)" in result.stdout


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--method", "gradcm", "'gradcm' is not one of 'gradcam', 'gradcam++', 'scorecam', 'eigencam', 'hirescam'"),
        ("--target", "covid", "The run's classes are normal, pneumonia"),
        ("--layer", "blocks.9", "has no layer 'blocks.9'"),
    ],
)
def test_bad_settings_exit_2_and_name_the_choices(tiny_run, tmp_path, option, value, message):
    image = lungseg_images(1)[0]
    result = medtune("explain", tiny_run, image, "--out", tmp_path / "cams", option, value)
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.split())
    assert not (tmp_path / "cams").exists()


# --- end to end: a CNN and a vision transformer trained through the CLI -----------------------------------------

#: Runs trained from scratch in seconds; the ViT runs at 64 px, not its native 224 (its position embedding resampled).
RUNS = {
    "resnet18": ("backbone=resnet18", "image_size=64"),
    "vit_tiny_patch16_224": ("backbone=vit_tiny_patch16_224", "image_size=64"),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def scratch_run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / request.param
    data = shared_path("cxr3")
    settings = ("pretrained=false", "limit=24", "epochs=1", "batch_size=8", "workers=0", "report=false")
    result = medtune("train", data, *RUNS[request.param], *settings, "--out", out)
    assert result.returncode == 0, result.stderr
    assert not (out / "report.html").exists() and "report:" not in result.stdout  # report=false is obeyed
    return request.param, out


def test_cnn_and_vit_runs_explained_end_to_end(scratch_run, tmp_path):
    backbone, run = scratch_run
    size, layer = {"resnet18": (64, "layer3"), "vit_tiny_patch16_224": (64, "blocks.11.norm1")}[backbone]
    images = sorted(shared_path("cxr3", "covid").glob("*.png"))[:2]
    out = tmp_path / "cams"
    result = medtune("explain", run, *images, "--out", out, "--target", "covid", "--method", "gradcam++")
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out / "explanations.csv")
    assert len(table) == 2 and table["error"].isna().all()
    assert (table["layer"] == layer).all() and (table["method"] == "gradcam++").all()
    assert (table["target"] == "covid").all() and table["target_probability"].between(0, 1).all()
    for name in table["heatmap"]:
        heat = np.load(out / name)
        assert heat.shape == (size, size) and heat.std() > 0
