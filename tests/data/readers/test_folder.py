"""Folder readers on the real cxr3 folders and on layouts built from its files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medtune.config import load_config
from medtune.data.readers import read_table
from medtune.errors import DataError
from tests.conftest import shared_path


def _copy(src_dir: Path, dst_dir: Path, n: int) -> None:
    dst_dir.mkdir(parents=True, exist_ok=True)
    for file in sorted(src_dir.glob("*.png"))[:n]:
        shutil.copy(file, dst_dir / file.name)


def test_class_folders_cxr3():
    table = read_table(shared_path("cxr3"))
    assert table.reader == "folder" and table.classes == ("covid", "normal", "pneumonia")
    assert table.class_counts().sum(axis=1).to_dict() == {"covid": 124, "normal": 500, "pneumonia": 500}
    assert not table.has_splits
    assert any("labels.csv" in note for note in table.notes)  # the CSV beside the folders is named as skipped


def test_split_folders_keep_their_split(tmp_path):
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        _copy(shared_path("cxr3", "normal"), tmp_path / split / "normal", n)
        _copy(shared_path("cxr3", "pneumonia"), tmp_path / split / "pneumonia", n)
    table = read_table(tmp_path)
    counts = table.class_counts()
    assert list(counts.columns) == ["train", "val", "test"]
    assert counts.loc["normal"].tolist() == [6, 2, 3]


def test_kaggle_layout_with_unlabelled_test(tmp_path):
    _copy(shared_path("cxr3", "normal"), tmp_path / "train" / "normal", 4)
    _copy(shared_path("cxr3", "covid"), tmp_path / "train" / "covid", 4)
    _copy(shared_path("cxr3", "pneumonia"), tmp_path / "test", 3)  # loose images: no labels
    table = read_table(tmp_path)
    assert len(table) == 8 and set(table.frame["split"]) == {"train"}
    assert any("test/ has no class folders" in note and "3 image(s)" in note for note in table.notes)


def test_unlabelled_folder_recursive(tmp_path):
    _copy(shared_path("cxr3", "normal"), tmp_path / "a", 2)
    _copy(shared_path("cxr3", "covid"), tmp_path / "a" / "b", 2)
    table = read_table(tmp_path, labelled=False)
    assert len(table) == 4 and table.classes == () and table.frame["label"].isna().all()


def test_empty_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"no images found in .*expected .*<class>/\*\.png"):
        read_table(tmp_path)


def test_folder_of_loose_images_asks_for_class_folders(tmp_path):
    _copy(shared_path("cxr3", "normal"), tmp_path, 3)
    with pytest.raises(DataError, match=r"3 image\(s\) but no class folders.*<class>/image\.png"):
        read_table(tmp_path)


def test_empty_class_folder_is_kept_as_a_class(tmp_path):
    _copy(shared_path("cxr3", "normal"), tmp_path / "normal", 3)
    (tmp_path / "covid").mkdir()
    table = read_table(tmp_path)
    assert table.classes == ("covid", "normal")
    assert table.class_counts().sum(axis=1)["covid"] == 0


def test_hidden_folders_and_non_images_are_skipped(tmp_path):
    _copy(shared_path("cxr3", "normal"), tmp_path / "normal", 2)
    _copy(shared_path("cxr3", "normal"), tmp_path / ".ipynb_checkpoints", 2)
    (tmp_path / "normal" / "readme.txt").write_text("notes")
    table = read_table(tmp_path)
    assert table.classes == ("normal",) and len(table) == 2
    assert any("readme.txt" in note for note in table.notes)


def test_missing_source():
    with pytest.raises(DataError, match=r"does not exist; give a folder of images, a CSV"):
        read_table("/nonexistent/folder")


def test_unknown_reader_name_suggests():
    with pytest.raises(Exception, match=r"unknown reader 'folders'.*Did you mean 'folder'"):
        read_table(shared_path("cxr3"), load_config(reader="folders"))
