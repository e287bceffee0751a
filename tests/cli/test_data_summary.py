"""`medtune data summary` through the real command line, in a subprocess, on real data."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import medtune, shared_path


def test_cxr3_folder(tmp_path):
    out = medtune("data", "summary", shared_path("cxr3"), "--json", tmp_path / "s.json")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert {c: sum(v[c] for v in summary["counts"].values()) for c in summary["classes"]} == {
        "covid": 124, "normal": 500, "pneumonia": 500}  # fmt: skip
    assert "covid" in out.stdout and "1124" in out.stdout
    assert "One sample through preprocessing" in out.stdout and "(1, 1, 224, 224)" in out.stdout


def test_cxr3_csv_with_patient_groups(tmp_path):
    out = medtune("data", "summary", shared_path("cxr3", "labels.csv"), "label=label", "group=patient_id",
                  "--json", tmp_path / "s.json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    totals = {c: sum(v[c] for v in summary["counts"].values()) for c in summary["classes"]}
    assert totals == {"covid": 124, "normal": 500, "pneumonia": 500}
    assert "patients in several splits" not in out.stdout
    assert summary["modes"] == {"gray 8-bit": 1124}
    assert "pixel modes: gray 8-bit: 1124; stored as 1 channel(s) at 224 px" in out.stdout


def test_pneumoniamnist(tmp_path):
    out = medtune("data", "summary", shared_path("pneumoniamnist", "pneumoniamnist.npz"), "image_size=64",
                  "--json", tmp_path / "s.json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"] == {"train": {"normal": 1214, "pneumonia": 3494}, "val": {"normal": 135, "pneumonia": 389},
                                 "test": {"normal": 234, "pneumonia": 390}}  # fmt: skip
    assert "4708" in out.stdout and "524" in out.stdout and "624" in out.stdout
    assert "duplicates across splits" in out.stdout


def test_empty_folder_is_refused(tmp_path):
    out = medtune("data", "summary", tmp_path)
    assert out.returncode == 1
    assert "no images found in" in out.stderr and "<class>" in out.stderr
    assert "Traceback" not in out.stderr


def test_empty_class_exits_non_zero(tmp_path):
    (tmp_path / "normal").mkdir()
    (tmp_path / "covid").mkdir()
    for f in sorted((shared_path("cxr3") / "normal").glob("*.png"))[:8]:
        shutil.copy(f, tmp_path / "normal" / f.name)
    out = medtune("data", "summary", tmp_path, "val_fraction=0", "test_fraction=0")
    assert out.returncode == 1
    assert "empty classes" in out.stdout and "'covid'" in out.stdout


def test_missing_label_column_message(tmp_path):
    (tmp_path / "m.csv").write_text("file,view\nx.png,PA\n")
    out = medtune("data", "summary", tmp_path / "m.csv")
    assert out.returncode == 1
    assert "no label column" in out.stderr and "set label=COLUMN" in out.stderr


@pytest.mark.parametrize(("arg", "message"), [("imagesize=64", "Did you mean 'image_size'"), ("seed", "key=value")])
def test_bad_setting_exits_2(arg, message):
    out = medtune("data", "summary", shared_path("cxr3"), arg)
    assert out.returncode == 2 and message in out.stderr


def test_version_and_help():
    assert medtune("--version").stdout.startswith("medtune ")
    out = medtune("data", "summary", "--help")
    assert out.returncode == 0 and "key=value" in out.stdout
