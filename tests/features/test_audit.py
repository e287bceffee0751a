"""``medtune data audit``: duplicates (leakage first), label errors and outliers found on real data, and a fixed
split that keeps each duplicate group in one split."""

from __future__ import annotations

import json
import shutil
import sys

import pandas as pd
import pytest

from medtune import audit
from medtune.config import load_config
from medtune.errors import ConfigError
from medtune.runs import load_table
from tests.conftest import medtune, shared_path

pytest.importorskip("cleanlab", reason="the audit needs cleanlab (pip install 'medtune[audit]')")


@pytest.fixture
def without_datalab(monkeypatch):
    """Importing ``datasets`` (what cleanlab's Datalab needs) fails: the audit needs plain cleanlab only."""
    monkeypatch.setitem(sys.modules, "datasets", None)


def test_the_eight_pneumoniamnist_copies_across_splits_are_found_and_fixed(tmp_path):
    data = shared_path("pneumoniamnist", "pneumoniamnist.npz")
    found = audit(data, image_size=64, out=tmp_path / "audit", fix_split=True,
                  checks=["duplicates"], progress=False)  # fmt: skip
    assert found.counts["exact_across"] == 8  # pixel for pixel in two splits (train/val/test of MedMNIST)
    leaks = found.duplicates[found.duplicates["across"] & (found.duplicates["kind"] == "exact")]
    assert leaks["group"].nunique() == 8 and set(leaks["evidence"]) == {"identical pixels"}
    assert found.duplicates["group"].iloc[0] == 1 and bool(found.duplicates["across"].iloc[0])  # leakage first
    fixed = load_table(load_config(data=str(data), split_file=str(found.split_file)))
    split = dict(zip(fixed.frame["id"], fixed.frame["split"], strict=True))
    for _, group in found.duplicates.groupby("group"):
        assert len({split[i] for i in group["id"]}) == 1
    original = load_table(load_config(data=str(data)))
    moved = (original.frame["split"].to_numpy() != fixed.frame["split"].to_numpy()).sum()
    assert moved >= 8  # at least one image of each leaking group
    assert (tmp_path / "audit" / "audit.html").is_file() and (tmp_path / "audit" / "duplicates.csv").is_file()


def _small_cxr3(tmp_path, per_class=25):
    folder = tmp_path / "cxr3-small"
    for name in ("covid", "normal", "pneumonia"):
        (folder / name).mkdir(parents=True)
        for path in sorted(shared_path("cxr3", name).iterdir())[:per_class]:
            shutil.copy(path, folder / name / path.name)
    return folder


def test_a_label_flipped_on_purpose_is_found(tmp_path, without_datalab):
    folder = _small_cxr3(tmp_path)
    flipped = sorted((folder / "normal").iterdir())[3]
    shutil.move(flipped, folder / "covid" / flipped.name)  # an NIH normal film filed as covid
    found = audit(folder, image_size=64, out=tmp_path / "audit", checks=["labels"], progress=False)
    issues = found.label_issues.set_index("id")
    assert f"covid/{flipped.name}" in issues.index
    assert issues.loc[f"covid/{flipped.name}", "given"] == "covid"
    assert issues.loc[f"covid/{flipped.name}", "suggested"] == "normal"
    # Thresholded: a minority of the 75 (NIH normal and pneumonia films are hard to tell apart, so the probe doubts
    # some of those labels too), worst first.
    assert len(issues) < 25 and issues["quality"].is_monotonic_increasing


def test_tiles_grown_from_one_original_are_matched_by_keypoints(tmp_path):
    folder = tmp_path / "tiles"
    (folder / "lung_n").mkdir(parents=True)
    pairs = [("lungn1119", "lungn3654"), ("lungn1528", "lungn3160")]  # rotated / flipped copies, checked by eye
    names = [n for pair in pairs for n in pair]
    others = [p for p in sorted(shared_path("lc25000-lung", "lung_n").iterdir()) if p.stem not in names][:22]
    for path in [shared_path("lc25000-lung", "lung_n", f"{n}.jpeg") for n in names] + others:
        shutil.copy(path, folder / "lung_n" / path.name)
    found = audit(folder, image_size=64, out=tmp_path / "audit", checks=["duplicates"], progress=False)
    groups = found.duplicates.groupby("group")["id"].apply(lambda ids: sorted(i.split("/")[-1][:-5] for i in ids))
    assert sorted(groups) == sorted(sorted(pair) for pair in pairs)
    assert found.duplicates["evidence"].str.endswith("keypoints agree").all()
    assert set(found.duplicates["kind"]) == {"near"}


def test_the_command_writes_its_files_and_names_a_bad_check(tmp_path, without_datalab):
    folder = _small_cxr3(tmp_path, per_class=12)
    out = tmp_path / "audit"
    result = medtune("data", "audit", folder, "image_size=32", "--checks", "duplicates,outliers", "--out", out,
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["facts"]["images"] == 36 and printed["counts"]["images_in_groups"] >= 0
    assert "images in duplicate groups" in result.stderr and "outliers of their class" in result.stderr
    facts = json.loads((out / "audit.json").read_text())
    assert facts["images"] == 36 and facts["checks"] == ["duplicates", "outliers"]
    outliers = pd.read_csv(out / "outliers.csv")
    assert list(outliers.columns) == ["id", "path", "split", "label", "scope", "score"]
    html = (out / "audit.html").read_text()
    assert "Duplicates" in html and "not checked" in html  # labels were left out
    bad = medtune("data", "audit", folder, "--checks", "labels,leaks")
    assert bad.returncode != 0 and "leaks" in bad.stderr and "duplicates, labels, outliers" in bad.stderr


def test_fix_split_without_the_duplicate_check_is_refused():
    with pytest.raises(ConfigError, match="keep the duplicates check"):
        audit(shared_path("cxr3"), fix_split=True, checks=["labels"], progress=False)
