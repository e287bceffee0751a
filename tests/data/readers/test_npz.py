"""MedMNIST-style .npz reader on the real PneumoniaMNIST archive and on archives users get wrong."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medtune.config import load_config
from medtune.data.decode import read_entry
from medtune.data.readers import read_table
from medtune.errors import DataError
from tests.conftest import shared_path


def test_pneumoniamnist_official_splits_and_names():
    table = read_table(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    assert table.classes == ("normal", "pneumonia")
    counts = table.class_counts()
    assert counts.sum().to_dict() == {"train": 4708, "val": 524, "test": 624}
    assert counts["train"].to_dict() == {"normal": 1214, "pneumonia": 3494}
    row = table.frame.iloc[4708 + 5]  # the sixth val image
    with np.load(shared_path("pneumoniamnist", "pneumoniamnist.npz")) as archive:
        expected = archive["val_images"][5]
    np.testing.assert_array_equal(read_entry(row["path"], row["array"], row["index"]), expected)


@pytest.fixture
def small(tmp_path):
    with np.load(shared_path("pneumoniamnist", "pneumoniamnist.npz")) as archive:
        return {k: archive[k][:40] for k in archive.files}


def test_classes_from_option_and_sidecar(tmp_path, small):
    np.savez(tmp_path / "xr.npz", **small)
    assert read_table(tmp_path / "xr.npz").classes == ("0", "1")
    (tmp_path / "xr.json").write_text(json.dumps({"label": {"0": "healthy", "1": "sick"}}))
    assert read_table(tmp_path / "xr.npz").classes == ("healthy", "sick")
    assert read_table(tmp_path / "xr.npz", load_config(classes="a,b")).classes == ("a", "b")


def test_rgb_and_multilabel(tmp_path, small):
    rgb = np.repeat(small["train_images"][..., None], 3, axis=-1)
    labels = np.stack([small["train_labels"][:, 0], 1 - small["train_labels"][:, 0], np.zeros(40, np.uint8)], 1)
    np.savez(tmp_path / "multi.npz", images=rgb, labels=labels)
    table = read_table(tmp_path / "multi.npz", load_config(classes="p,n,x"))
    assert table.multilabel and len(table) == 40 and not table.has_splits
    assert read_entry(*table.frame.loc[0, ["path", "array", "index"]]).shape == (28, 28, 3)
    np.testing.assert_array_equal(table.targets(), labels.astype(np.float32))


def test_wrong_keys(tmp_path, small):
    np.savez(tmp_path / "x.npz", x_train=small["train_images"])
    with pytest.raises(DataError, match=r"holds arrays \['x_train'\]; expected train_images/train_labels"):
        read_table(tmp_path / "x.npz")


def test_length_mismatch_and_bad_shape(tmp_path, small):
    np.savez(tmp_path / "a.npz", train_images=small["train_images"], train_labels=small["train_labels"][:10])
    with pytest.raises(DataError, match=r"40 train_images but 10 train_labels"):
        read_table(tmp_path / "a.npz")
    np.savez(
        tmp_path / "b.npz", train_images=small["train_images"][:, :, :, None, None], train_labels=small["train_labels"]
    )
    with pytest.raises(DataError, match=r"expected \(N, H, W\) or \(N, H, W, 3\)"):
        read_table(tmp_path / "b.npz")


def test_too_few_class_names(tmp_path, small):
    np.savez(tmp_path / "c.npz", **small)
    with pytest.raises(DataError, match=r"labels go up to 1 but classes= names only 1 classes"):
        read_table(tmp_path / "c.npz", load_config(classes=["only"]))


def test_truncated_archive(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:5000])
    with pytest.raises(DataError, match=r"cannot read .*cut\.npz as an \.npz archive"):
        read_table(tmp_path / "cut.npz")
