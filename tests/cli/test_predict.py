"""`medtune predict` through the real command line: files, folders, globs and CSVs in; JSON, CSV, submission out."""

from __future__ import annotations

import json

import pandas as pd

from tests.conftest import medtune, medtune_subprocess, shared_path


def test_predict_folder_writes_one_entry_per_image(tiny_run, tmp_path):
    folder = shared_path("cxr-fullres")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    result = medtune_subprocess("predict", tiny_run, folder, "--out", tmp_path / "results.json")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert sorted(results) == sorted(str(p) for p in images)
    assert set(results.values()) <= {"normal", "pneumonia"}


def test_unreadable_inputs_are_reported_and_the_rest_predicted(tiny_run, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    truncated = tmp_path / "truncated.png"
    source = sorted(shared_path("cxr3", "normal").glob("*.png"))[0]
    truncated.write_bytes(source.read_bytes()[:200])
    good = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:3]
    out = tmp_path / "results.json"
    result = medtune("predict", tiny_run, broken, truncated, tmp_path / "missing.png", *good, "--out", out, "--probs")
    assert result.returncode == 3, result.stderr  # some inputs failed: the others are written
    records = {r["file"]: r for r in json.loads(out.read_text())}
    assert len(records) == 6
    assert records[str(tmp_path / "missing.png")]["error"] == "file not found"
    assert records[str(broken)]["label"] is None and records[str(broken)]["error"]
    assert records[str(truncated)]["error"]
    for path in good:
        record = records[str(path)]
        assert "error" not in record and abs(sum(record["probabilities"].values()) - 1) < 1e-4
        assert record["label"] == max(record["probabilities"], key=record["probabilities"].get)
    assert "unreadable" in result.stdout and "missing.png" in result.stdout


def test_predictions_on_standard_output_and_an_old_spelling(tiny_run, tmp_path):
    good = sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:2]
    result = medtune("predict", tiny_run, *good, "--tta", "--out", "-")
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {str(p) for p in good}  # nothing but the predictions on stdout
    assert "2 image(s) predicted" in result.stderr and "written to standard output" in result.stderr
    assert "deprecated: `predict --tta` is now written `tta=true`" in " ".join(result.stderr.split())


def test_glob_and_csv_inputs_to_csv_output(tiny_run, tmp_path):
    pattern = str(shared_path("cxr3", "covid")) + "/*.png"
    manifest = tmp_path / "list.csv"
    names = sorted(p.name for p in shared_path("cxr3", "normal").glob("*.png"))[:5]
    manifest.write_text("image,note\n" + "".join(f"{shared_path('cxr3', 'normal', n)},x\n" for n in names))
    out = tmp_path / "results.csv"
    result = medtune("predict", tiny_run, pattern, manifest, "--out", out, "tta=true")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 124 + 5
    assert {"file", "label", "confidence", "prob_normal", "prob_pneumonia", "error"} <= set(frame.columns)
    assert frame["error"].isna().all()


def test_submission_format(tiny_run, tmp_path):
    out = tmp_path / "submission.csv"
    result = medtune("predict", tiny_run, shared_path("cxr-fullres"), "--out", out, "--format", "submission")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "label"] and len(frame) == 8
    assert "00000061_012" in set(frame["id"])


def test_nothing_to_predict(tiny_run, tmp_path):
    (tmp_path / "empty").mkdir()
    result = medtune("predict", tiny_run, tmp_path / "empty", "--out", tmp_path / "r.json")
    assert result.returncode == 1 and "no images found" in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_multilabel_predictions_follow_the_stored_thresholds(tiny_findings_run, tmp_path):
    images = [*sorted(shared_path("cxr3", "pneumonia").glob("*.png"))[:10]]
    images += sorted(shared_path("cxr3", "normal").glob("*.png"))[:10]
    thresholds = json.loads((tiny_findings_run / "thresholds.json").read_text())["thresholds"]
    result = medtune("predict", tiny_findings_run, *images, "--out", tmp_path / "findings.csv")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(tmp_path / "findings.csv", keep_default_na=False)
    columns = ["file", "labels", *(f"prob_{n}" for n in thresholds), "error", "guard_score", "in_distribution"]
    assert list(frame.columns) == columns  # the guard training fitted marks every image
    assert len(frame) == 20
    for row in frame.to_dict("records"):
        assert row["labels"] == "|".join(n for n, t in thresholds.items() if row[f"prob_{n}"] >= t)
    assert "no finding" in result.stdout

    as_json = medtune("predict", tiny_findings_run, *images[:3], "--out", tmp_path / "findings.json", "--probs")
    assert as_json.returncode == 0, as_json.stderr
    for record in json.loads((tmp_path / "findings.json").read_text()):
        assert record["labels"] == [n for n, t in thresholds.items() if round(record["probabilities"][n], 6) >= t]
