"""`medtune data summary` through the real command line, in a subprocess, on real data."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import medtune, medtune_subprocess, shared_path


def test_cxr3_folder(tmp_path):
    out = medtune_subprocess("data", "summary", shared_path("cxr3"), "--out", tmp_path / "s.json")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert {c: sum(v[c] for v in summary["counts"].values()) for c in summary["classes"]} == {
        "covid": 124, "normal": 500, "pneumonia": 500}  # fmt: skip
    assert "covid" in out.stdout and "1124" in out.stdout
    assert "One sample through preprocessing" in out.stdout and "(1, 1, 224, 224)" in out.stdout


def test_cxr3_csv_with_patient_groups(tmp_path):
    out = medtune("data", "summary", shared_path("cxr3", "labels.csv"), "label=label", "group=patient_id",
                  "--out", tmp_path / "s.json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    totals = {c: sum(v[c] for v in summary["counts"].values()) for c in summary["classes"]}
    assert totals == {"covid": 124, "normal": 500, "pneumonia": 500}
    assert "patients in several splits" not in out.stdout
    assert summary["modes"] == {"gray 8-bit": 1124}
    assert "pixel modes: gray 8-bit: 1124; stored as 1 channel(s) at 224 px" in out.stdout


def test_pneumoniamnist(tmp_path):
    out = medtune("data", "summary", shared_path("pneumoniamnist", "pneumoniamnist.npz"), "image_size=64",
                  "--out", tmp_path / "s.json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["counts"] == {"train": {"normal": 1214, "pneumonia": 3494}, "val": {"normal": 135, "pneumonia": 389},
                                 "test": {"normal": 234, "pneumonia": 390}}  # fmt: skip
    assert "4708" in out.stdout and "524" in out.stdout and "624" in out.stdout
    assert "duplicates across splits" in out.stdout


def test_dicom_folder_without_labels(tmp_path):
    out = medtune("data", "summary", shared_path("dicom"), "--out", tmp_path / "s.json")
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["images"] == 4 and summary["classes"] == [] and summary["modes"] == {"gray float": 4}
    found = {(d["modality"], d["photometric"], d["bits_stored"], d["bits_allocated"], d["images"])
             for d in summary["dicom"]}  # fmt: skip
    assert found == {("OT", "MONOCHROME2", 8, 8, 1), ("DX", "MONOCHROME2", 8, 8, 1), ("CR", "MONOCHROME2", 8, 8, 1),
                     ("CR", "MONOCHROME1", 8, 8, 1)}  # fmt: skip
    assert "4 images, unlabelled" in out.stdout and "DICOM headers" in out.stdout
    rows = [line for line in out.stdout.splitlines() if "MONOCHROME" in line]
    assert len(rows) == 4 and all(line.split("│")[3].strip() == "8" for line in rows)  # bits stored
    assert {line.split("│")[1].strip() for line in rows} == {"OT", "DX", "CR"}
    assert any("MONOCHROME1" in line and "JPEG Baseline (Process 1)" in line for line in rows)
    assert "group from DICOM PatientID" in out.stdout and "no problems found" in out.stdout


def test_multi_frame_dicom_needs_a_frame(tmp_path):
    pydicom = pytest.importorskip("pydicom")
    from pydicom.data import get_testdata_file

    (tmp_path / "data").mkdir()
    shutil.copy(get_testdata_file("rtdose.dcm"), tmp_path / "data" / "dose.dcm")  # 15 frames
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "data" / "ct.dcm")
    out = medtune("data", "summary", tmp_path / "data")
    assert out.returncode == 0, out.stderr  # one of two images unreadable is a warning
    text = " ".join(out.stdout.split())  # rich wraps long lines
    assert "unreadable images: 1 image(s) cannot be decoded" in text
    assert "dose.dcm (holds 15 frames and no frame was chosen: set frame=K (0..14) or frame=middle" in text
    out = medtune("data", "summary", tmp_path / "data", "frame=middle", "--out", tmp_path / "s.json")
    assert out.returncode == 0 and "unreadable images" not in out.stdout
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["height"] == {"min": 10, "median": 69.0, "max": 128}
    assert {(d["modality"], d["bits_stored"]) for d in summary["dicom"]} == {("RTDOSE", 32), ("CT", 16)}
    assert pydicom.dcmread(tmp_path / "data" / "dose.dcm").NumberOfFrames == 15


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


@pytest.mark.parametrize(
    ("args", "message"), [(("probe",), "Missing argument"), (("train", "--bogus"), "No such option: --bogus")]
)
def test_usage_errors_get_a_message_and_exit_2_not_a_traceback(args, message):
    out = medtune_subprocess(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
