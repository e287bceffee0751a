"""Problems found in real data and in data broken the way users break it."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd

from medtune.config import load_config
from medtune.data.checks import check_table, scan_images
from medtune.data.readers import read_table
from medtune.runs import load_table
from tests.conftest import shared_path


def _titles(problems):
    return {p.title: p for p in problems}


def test_clean_folder_has_no_errors(tmp_path):
    for name in ("normal", "pneumonia"):
        (tmp_path / name).mkdir()
        for f in sorted((shared_path("cxr3") / name).glob("*.png"))[:12]:
            shutil.copy(f, tmp_path / name / f.name)
    table = load_table(load_config(data=str(tmp_path), val_fraction=0.25, test_fraction=0.25))
    scan = scan_images(table, workers=0)
    assert scan["error"].isna().all() and (scan["height"] == 256).all()
    assert [p for p in check_table(table, scan) if p.level == "error"] == []


def test_unreadable_and_missing_files_are_named(tmp_path):
    rows = pd.read_csv(shared_path("cxr3", "labels.csv")).iloc[:30][["path", "label"]]
    rows["path"] = [str(shared_path("cxr3") / p) for p in rows["path"]]
    data = shared_path("cxr3", rows["path"].iloc[0]).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:3000])
    rows.loc[len(rows)] = [str(tmp_path / "cut.png"), "normal"]
    rows.loc[len(rows)] = [str(tmp_path / "gone.png"), "normal"]
    rows.to_csv(tmp_path / "labels.csv", index=False)
    table = read_table(tmp_path / "labels.csv")
    found = _titles(check_table(table, scan_images(table, workers=2)))
    assert "cut.png" in found["unreadable images"].message and found["unreadable images"].level == "warning"
    assert "gone.png" in found["missing files"].message
    # without decoding, missing files are still found from the table alone
    assert "gone.png" in _titles(check_table(table))["missing files"].message


def test_everything_unreadable_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.png").write_text("not an image")
    (tmp_path / "b" / "y.jpg").write_bytes(b"\xff\xd8\xff\xe0 nonsense")
    table = read_table(tmp_path)
    problems = check_table(table, scan_images(table, workers=0))
    assert _titles(problems)["unreadable images"].level == "error"


def test_empty_class_and_single_class(tmp_path):
    (tmp_path / "normal").mkdir()
    (tmp_path / "covid").mkdir()
    shutil.copy(shared_path("cxr3", "normal", "00001280_004.png"), tmp_path / "normal" / "a.png")
    found = _titles(check_table(read_table(tmp_path)))
    assert found["empty classes"].level == "error" and "'covid'" in found["empty classes"].message
    shutil.rmtree(tmp_path / "covid")
    assert "one class" in _titles(check_table(read_table(tmp_path)))


def test_duplicates_across_splits_in_real_pneumoniamnist():
    table = read_table(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    found = _titles(check_table(table, scan_images(table, workers=0)))
    across = found["duplicates across splits"]
    assert across.level == "warning" and len(across.items) >= 5
    assert all(" = " in pair for pair in across.items)


def test_duplicate_copied_into_test_is_caught(tmp_path):
    for split in ("train", "test"):
        for name in ("normal", "pneumonia"):
            (tmp_path / split / name).mkdir(parents=True)
    files = sorted((shared_path("cxr3") / "normal").glob("*.png"))
    for i, f in enumerate(files[:6]):
        shutil.copy(f, tmp_path / ("train" if i < 4 else "test") / "normal" / f.name)
        shutil.copy(
            sorted((shared_path("cxr3") / "pneumonia").glob("*.png"))[i],
            tmp_path / ("train" if i < 4 else "test") / "pneumonia" / f"p{i}.png",
        )
    shutil.copy(files[0], tmp_path / "test" / "normal" / "copy.png")
    table = read_table(tmp_path)
    across = _titles(check_table(table, scan_images(table, workers=0)))["duplicates across splits"]
    assert "copy.png" in across.message and files[0].name in across.message


def test_imbalance_and_patient_leak(tmp_path):
    rows = pd.read_csv(shared_path("cxr3", "labels.csv"), dtype=str)
    rows = pd.concat([rows[rows["label"] == "pneumonia"].iloc[:110], rows[rows["label"] == "covid"].iloc[:10]])
    rows["path"] = [str(shared_path("cxr3") / p) for p in rows["path"]]
    rows["split"] = np.where(np.arange(len(rows)) % 2 == 0, "train", "test")
    rows.to_csv(tmp_path / "m.csv", index=False)
    table = read_table(tmp_path / "m.csv", load_config(label="label", group="patient_id"))
    found = _titles(check_table(table))
    assert "11x" in found["class imbalance"].message and "class_weights=auto" in found["class imbalance"].message
    assert "patients in several splits" in found
