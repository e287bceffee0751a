"""Splitting on real tables: stratified, seeded, grouped by patient, saved and reloaded."""

from __future__ import annotations

import shutil

import pytest

from medtune.config import load_config
from medtune.data.readers import read_table
from medtune.data.split import assign_splits, load_split, save_split
from medtune.errors import DataError
from medtune.runs import load_table
from tests.conftest import shared_path


@pytest.fixture
def cxr3_grouped():
    return read_table(shared_path("cxr3", "labels.csv"), load_config(label="label", group="patient_id"))


def test_no_patient_in_two_splits(cxr3_grouped):
    table = assign_splits(cxr3_grouped, 0.15, 0.15, seed=3)
    grouped = table.frame[table.frame["group"].notna()]
    assert (grouped.groupby("group")["split"].nunique() == 1).all()
    # the 21 patients that have both a normal and a pneumonia image stay whole too
    both = grouped.groupby("group")["label"].nunique()
    assert (both > 1).sum() == 21


def test_stratified_fractions(cxr3_grouped):
    counts = assign_splits(cxr3_grouped, 0.15, 0.15, seed=0).class_counts()
    shares = counts.div(counts.sum(axis=1), axis=0)
    assert shares["test"].between(0.10, 0.20).all(), shares
    assert shares["val"].between(0.10, 0.20).all(), shares
    assert (counts["val"] > 0).all() and (counts["test"] > 0).all()


def test_seed_repeats_and_changes(cxr3_grouped):
    a = assign_splits(cxr3_grouped, seed=1).frame["split"]
    b = assign_splits(cxr3_grouped, seed=1).frame["split"]
    c = assign_splits(cxr3_grouped, seed=2).frame["split"]
    assert a.equals(b) and not a.equals(c)


def test_given_splits_are_kept():
    table = read_table(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    assert assign_splits(table).frame["split"].equals(table.frame["split"])


def test_val_is_carved_from_train_when_missing(tmp_path):
    for split in ("train", "test"):
        for name in ("normal", "pneumonia"):
            dst = tmp_path / split / name
            dst.mkdir(parents=True)
            for f in sorted((shared_path("cxr3") / name).glob("*.png"))[:20]:
                shutil.copy(f, dst / f.name)
    table = assign_splits(read_table(tmp_path), 0.2, 0.2, seed=0)
    counts = table.class_counts()
    assert counts["test"].tolist() == [20, 20]  # the given test split is untouched
    assert counts["val"].sum() > 0 and counts["train"].sum() + counts["val"].sum() == 40


def _image_folder(root, splits, per_class):
    for split, offset in zip(splits, (0, per_class), strict=False):
        for name in ("normal", "pneumonia"):
            dst = root / split / name
            dst.mkdir(parents=True)
            for f in sorted((shared_path("cxr3") / name).glob("*.png"))[offset : offset + per_class]:
                shutil.copy(f, dst / f.name)
    return root


def test_a_given_val_without_test_is_held_out_as_the_test_split(tmp_path):
    table = assign_splits(read_table(_image_folder(tmp_path, ("train", "val"), 20)), 0.2, 0.2, seed=0)
    counts = table.class_counts()
    given_val = {i for i in table.frame["id"] if i.startswith("val/")}
    assert set(table.frame.loc[table.frame["split"] == "test", "id"]) == given_val  # ImageFolder's val: test
    assert counts["val"].sum() > 0 and counts["train"].sum() + counts["val"].sum() == 40  # val carved from train
    assert any("val images are the held-out test split" in note for note in table.notes)


def test_a_run_on_train_and_val_folders_is_scored_on_images_it_never_selected_on(tmp_path):
    from tests.conftest import medtune

    data = _image_folder(tmp_path / "data", ("train", "val"), 16)
    result = medtune("train", data, "image_size=32", "epochs=1", "batch_size=8", "report=false", "--out",
                     tmp_path / "run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["split"] == ["test"] and metrics["n"] == 32
    assert any("held-out test split" in w for w in metrics["warnings"]) and "held-out test split" in result.stdout


def test_save_and_load_split_round_trip(tmp_path, cxr3_grouped):
    table = assign_splits(cxr3_grouped, seed=5)
    save_split(table, tmp_path / "split.csv")
    again = load_table(load_config(data=str(shared_path("cxr3", "labels.csv")), label="label",
                                   split_file=str(tmp_path / "split.csv"), seed=99))  # fmt: skip
    assert again.frame["split"].equals(table.frame["split"])


def test_split_file_for_other_data(tmp_path, cxr3_grouped):
    table = assign_splits(cxr3_grouped, seed=5)
    save_split(table.with_frame(table.frame.iloc[:100]), tmp_path / "split.csv")
    with pytest.raises(DataError, match=r"does not list 1024 image\(s\).*drop split_file="):
        load_split(cxr3_grouped, tmp_path / "split.csv")


def test_too_few_patients(cxr3_grouped):
    few = cxr3_grouped.frame[cxr3_grouped.frame["group"].isin(["3140", "1684", "1543"])]
    with pytest.raises(DataError, match=r"only 3 patient groups for a 15% split"):
        assign_splits(cxr3_grouped.with_frame(few))


def test_the_split_is_the_same_with_and_without_pyarrow():
    """Rows without a patient are groups of one (``"\\0<id>"``). pandas' string type without pyarrow dropped the
    leading NUL of ``"\\0" + series``, so the same seed gave another split on an install without pyarrow (the
    audit extra no longer brings it). Checked in a process where pyarrow cannot be imported."""
    import json
    import subprocess
    import sys

    code = """
import sys, json
sys.modules["pyarrow"] = None  # as on an install without it
import pandas as pd
from medtune.data.split import split_groups
frame = pd.DataFrame({"id": [f"img{i}" for i in range(6)], "group": ["p1", None, "p2", None, "p1", None]})
print(json.dumps(split_groups(frame).tolist()))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["p1", "\0img1", "p2", "\0img3", "p1", "\0img5"]
