"""Masks on real lung X-rays (lungseg: 256 px images with 0/255 lung masks): pairing, the three modes in the image
store, masks following augmentation, and every bad mask input with its message."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from medtune.config import load_config
from medtune.data import read_table
from medtune.data.images import prepare, read_image
from medtune.data.masks import apply_mask, attach_masks, find_mask, mask_box, prepare_masked, read_mask
from medtune.data.store import StoreSpec, open_store
from medtune.errors import ConfigError, DataError, ImageReadError
from medtune.training.augment import AugmentSpec, create_train_transform
from tests.conftest import SHARED_DATA, shared_path

NAMES = sorted(p.name for p in SHARED_DATA.joinpath("lungseg", "images").glob("*.png"))[:4]


@pytest.fixture
def lungs(tmp_path):
    """Four real lungseg images in two class folders, and a copy of their masks (edited by some tests)."""
    images, masks = shared_path("lungseg", "images"), shared_path("lungseg", "masks")
    for i, name in enumerate(NAMES):
        folder = tmp_path / "data" / ("a" if i % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(images / name, folder / name)
    shutil.copytree(masks, tmp_path / "masks", ignore=lambda d, files: [f for f in files if f not in NAMES])
    return tmp_path


def lung_config(root, **keys):
    keys = {"masks": str(root / "masks"), "mask": "multiply", **keys}
    return load_config(data=str(root / "data"), **keys)


def test_masks_are_paired_by_file_name(lungs):
    config = lung_config(lungs)
    table = attach_masks(read_table(config.data, config), config)
    for path, mask in zip(table.frame["path"], table.frame["mask"], strict=True):
        assert mask == str(lungs / "masks" / path.rsplit("/", 1)[-1])
    # the same stem with another image suffix pairs too
    (lungs / "masks" / NAMES[0]).rename(lungs / "masks" / NAMES[0].replace(".png", ".tif"))
    assert find_mask(lungs / "masks", NAMES[0]).suffix == ".tif"


def test_multiply_zeroes_outside_the_lungs_at_the_working_size(lungs, tmp_path):
    config = lung_config(lungs, image_size=64)
    table = attach_masks(read_table(config.data, config), config)
    store = open_store(table, StoreSpec(64, mask="multiply"), cache_dir=tmp_path / "cache", workers=0)
    for row in range(len(table)):
        mask = np.asarray(Image.open(table.frame["mask"][row]).resize((64, 64), Image.Resampling.NEAREST)) > 0
        image = store[row][..., 0]
        plain = prepare(read_image(table.frame["path"][row]), 64, 1)[..., 0]
        assert image[~mask].max() == 0  # exactly zero outside
        core = erode(mask, 3)  # the resampling filter reaches 2 px past the edge at this scale
        assert np.array_equal(image[core], plain[core])  # the lungs themselves are unchanged


def erode(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        padded = np.pad(mask, 1)
        mask = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask


def test_crop_keeps_the_lungs_box_with_its_margin(lungs):
    path, mask = shared_path("lungseg", "images", NAMES[0]), shared_path("lungseg", "masks", NAMES[0])
    inside = read_mask(mask, (256, 256))
    top, bottom, left, right = mask_box(inside, 0.1)
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    height, width = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
    assert (top, left) == (max(0, rows[0] - round(0.1 * height)), max(0, cols[0] - round(0.1 * width)))
    cropped = prepare_masked(read_image(path), str(mask), StoreSpec(48, mask="crop", mask_margin=0.1))
    expected = prepare(read_image(path)[top:bottom, left:right], 48, 1)
    np.testing.assert_array_equal(cropped, expected)


def test_channel_mode_stores_the_mask_as_a_last_channel(lungs, tmp_path):
    config = lung_config(lungs, mask="channel")
    table = attach_masks(read_table(config.data, config), config)
    store = open_store(table, StoreSpec(32, channels=3, mask="channel"), cache_dir=tmp_path / "c", workers=0)
    assert store.images.shape == (4, 32, 32, 4)
    plane = store[0][..., 3]
    expected = np.asarray(Image.open(table.frame["mask"][0]).resize((32, 32), Image.Resampling.NEAREST)) > 0
    assert set(np.unique(plane)) == {0, 255} and np.array_equal(plane > 0, expected)
    np.testing.assert_array_equal(store[0][..., :3], prepare(read_image(table.frame["path"][0]), 32, 3))


def test_a_mask_at_another_resolution_is_resized_to_its_image(lungs):
    mask = lungs / "masks" / NAMES[0]
    Image.open(mask).resize((128, 128), Image.Resampling.NEAREST).save(mask)
    inside = read_mask(mask, (256, 256))
    original = np.asarray(Image.open(shared_path("lungseg", "masks", NAMES[0]))) > 0
    assert inside.shape == (256, 256) and (inside == original).mean() > 0.98


def test_masks_follow_every_spatial_augmentation():
    """The mask channel moves with the image under crops, rotations and flips, stays 0/255, and is left out of the
    intensity jitter; with multiply, pixels outside stay exactly 0 through brightness and contrast."""
    image = torch.zeros(2, 32, 32, dtype=torch.uint8)
    image[0, 4:20, 6:14] = 200  # a bright block in the image...
    image[1, 4:20, 6:14] = 255  # ...and the mask over exactly that block
    spec = AugmentSpec(hflip=1.0, rotate=10.0, crop_scale=0.8, brightness=0.3, contrast=0.3)
    transform = create_train_transform(spec, 32, "channel")
    torch.manual_seed(0)
    for _ in range(20):
        out = transform(image)
        assert set(out[1].unique().tolist()) <= {0, 255}
        inside, outside = out[0][out[1] > 0].float(), out[0][out[1] == 0].float()
        assert inside.mean() > 100 and (outside < 40).float().mean() > 0.95  # the block is still under its mask
    flipped = create_train_transform(AugmentSpec(hflip=1.0), 32, "channel")(image)
    assert torch.equal(flipped, image.flip(-1))
    gray = torch.randint(60, 250, (1, 32, 32), dtype=torch.uint8)
    gray[:, :, 20:] = 0
    jitter = create_train_transform(AugmentSpec(brightness=0.5, contrast=0.5), 32, "multiply")
    for _ in range(10):
        assert jitter(gray)[:, :, 20:].max() == 0  # contrast would lift the outside towards the mean


def test_apply_mask_without_a_mask_uses_the_whole_image():
    image = np.full((8, 8, 1), 7, np.uint8)
    assert np.array_equal(apply_mask(image, None, "multiply"), image)
    assert np.array_equal(apply_mask(image, None, "crop"), image)
    assert apply_mask(image, None, "channel")[..., 1].min() == 255


# --- bad input: every one names the file or key and the fix ---------------------------------------------------


def test_image_without_a_mask_is_listed_or_uses_the_whole_image(lungs):
    (lungs / "masks" / NAMES[1]).unlink()
    config = lung_config(lungs)
    with pytest.raises(DataError, match=r"1 of 4 image\(s\) have no mask in .*masks, e\.g\. Viral Pneumonia-1002\.png"
                       r".*mask_missing=whole"):  # fmt: skip
        attach_masks(read_table(config.data, config), config)
    config = lung_config(lungs, mask_missing="whole")
    table = attach_masks(read_table(config.data, config), config)
    assert table.frame["mask"].isna().sum() == 1
    assert any("1 image(s) without a mask use the whole image" in note for note in table.notes)


def test_mask_of_other_proportions_is_refused_with_both_sizes(lungs, tmp_path):
    mask = lungs / "masks" / NAMES[0]
    Image.open(mask).resize((256, 128)).save(mask)
    config = lung_config(lungs)
    table = attach_masks(read_table(config.data, config), config)
    with pytest.raises(DataError) as error:
        open_store(table, StoreSpec(32, mask="multiply"), cache_dir=tmp_path / "c", workers=0)
    assert NAMES[0] in str(error.value) and "mask is 256x128 pixels but its image" in str(error.value)
    assert "is 256x256" in str(error.value) and "give the mask made for this image" in str(error.value)


def test_empty_corrupt_and_absent_masks(lungs, tmp_path):
    Image.new("L", (256, 256)).save(lungs / "masks" / NAMES[0])
    with pytest.raises(
        ImageReadError, match=r"the mask of .*1004.png is empty \(no pixel above 0\).*mask_missing=whole"
    ):
        read_mask(lungs / "masks" / NAMES[0], (256, 256), image="1004.png")
    (lungs / "masks" / NAMES[1]).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    config = lung_config(lungs)
    table = attach_masks(read_table(config.data, config), config)
    with pytest.raises(DataError) as error:
        open_store(table, StoreSpec(32, mask="multiply"), cache_dir=tmp_path / "c", workers=0)
    message = str(error.value)
    assert NAMES[0] in message and "empty" in message and NAMES[1] in message
    manifest = tmp_path / "list.csv"
    pd.DataFrame({"path": [str(p) for p in table.frame["path"]], "label": table.frame["label"],
                  "mask": ["gone.png"] * 4}).to_csv(manifest, index=False)  # fmt: skip
    config = load_config(data=str(manifest), mask="crop")
    with pytest.raises(DataError, match=r"4 mask file\(s\) do not exist, e\.g\. .*gone\.png.*mask column"):
        attach_masks(read_table(config.data, config), config)


def test_mask_settings_that_do_not_fit(lungs):
    with pytest.raises(ConfigError, match=r"masks=.*nowhere: no such folder"):
        attach_masks(read_table(str(lungs / "data"), load_config()), lung_config(lungs, masks=str(lungs / "nowhere")))
    config = lung_config(lungs, mask="none")
    with pytest.raises(ConfigError, match=r"masks=.* is given but mask=none; choose how to use them: mask=multiply"):
        attach_masks(read_table(config.data, config), config)
    config = load_config(data=str(lungs / "data"), mask="multiply")
    with pytest.raises(DataError, match=r"mask=multiply needs masks, but .* has none: give masks=FOLDER"):
        attach_masks(read_table(config.data, config), config)
    with pytest.raises(ConfigError, match="mask=none"):
        attach_masks(read_table(config.data, config), load_config(data=config.data, mask_column="m"))
