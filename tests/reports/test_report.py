"""`medtune report` on real runs: the page, its plots, its numbers, a comparison, and bad input."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medtune.reports import create_comparison, create_report, read_results
from medtune.reports.mistakes import confident_mistakes, load_prepared
from medtune.reports.report import comparison_table
from tests.conftest import medtune, medtune_subprocess, shared_path

SECTIONS = ("training", "roc", "pr", "confusion", "calibration", "per-class", "mistakes", "guard", "data", "config")
PLOTS = (
    *("curve_loss", "curve_auc", "curve_acc", "curve_balanced_acc"),
    *("roc", "pr", "confusion", "confusion_normalised", "reliability", "mistakes", "guard_scores", "risk_coverage"),
)


def _embedded_pngs(html: str) -> dict[str, bytes]:
    import base64

    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="[^"]*" data-plot="([^"]+)"', html)
    return {name: base64.b64decode(data) for data, name in found}


def test_train_writes_a_self_contained_report(tiny_run):
    page = tiny_run / "report.html"
    html = page.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}"' in html, section
    # nothing outside the file: no scripts, no links or images to fetch
    assert "<script" not in html
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    pngs = _embedded_pngs(html)
    assert set(PLOTS) <= set(pngs)
    for name in PLOTS:
        assert (tiny_run / "report" / f"{name}.png").read_bytes() == pngs[name]
        image = np.asarray(Image.open(io.BytesIO(pngs[name])).convert("L"))
        assert image.shape[0] > 200 and image.shape[1] > 200, name
        assert (image < 200).mean() > 0.01, f"{name} is blank"


def test_page_numbers_match_metrics_json(tiny_run):
    html = (tiny_run / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    lo, hi = metrics["intervals"]["auc"]
    assert f"{metrics['macro']['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in html
    for name, values in metrics["per_class"].items():
        row = re.search(rf"<td>{name}</td>\s*<td>(\d+)</td>", html)
        assert row and int(row.group(1)) == values["support"]
    split = pd.read_csv(tiny_run / "split.csv")
    assert f"<td>{(split['split'] == 'train').sum()}</td>" in html


def test_confident_mistakes_are_wrong_and_ordered(tiny_run):
    results = read_results(tiny_run)
    wrong = confident_mistakes(results.predictions, results.classes, 5)
    assert len(wrong) == min(5, int((~results.predictions["correct"]).sum()))
    assert (wrong["label"] != wrong["predicted"]).all()
    assert wrong["confidence"].is_monotonic_decreasing
    assert (wrong["confidence"] >= 0.5).all()


def test_load_prepared_gives_what_the_network_saw(tiny_run):
    results = read_results(tiny_run)
    from medtune.config import Config

    config = Config(**results.config)
    ids = results.predictions["id"].head(3).tolist()
    images = load_prepared(config, ids)
    assert [im.shape for im in images] == [(32, 32, 1)] * 3
    assert all(im.dtype == np.uint8 and im.std() > 5 for im in images)


def test_three_class_report(tiny_cxr3_run, tmp_path):
    page = create_report(tiny_cxr3_run, tmp_path / "page.html", mistakes=4)
    html = page.read_text(encoding="utf-8")
    for name in ("covid", "normal", "pneumonia"):
        assert f"<td>{name}</td>" in html
    assert "Split by group" in html
    assert (tmp_path / "page" / "roc.png").is_file()
    assert sorted(p.name for p in (tmp_path / "page").iterdir()) == sorted(f"{p}.png" for p in PLOTS)


def test_comparison_overlays_and_tabulates(tiny_run, tiny_cxr3_run, tmp_path):
    page = create_comparison([tiny_run, tiny_cxr3_run], tmp_path / "compare.html")
    html = page.read_text(encoding="utf-8")
    table = comparison_table([read_results(tiny_run), read_results(tiny_cxr3_run)])
    assert list(table["run"]) == ["tiny", "cxr3"]
    # keys that differ are columns, keys that agree are not
    assert {"data", "image_size", "group"} <= set(table.columns)
    assert "backbone" not in table.columns and "epochs" in table.columns
    assert '<section id="curves"' in html and '<section id="comparison"' in html
    assert (tmp_path / "compare" / "curve_auc.png").is_file()


def test_report_command_several_runs(tiny_run, tiny_cxr3_run, tmp_path):
    result = medtune_subprocess("report", tiny_run, tiny_cxr3_run, "--out", tmp_path / "both.html", "--mistakes", "2")
    assert result.returncode == 0, result.stderr
    assert "comparison: " in result.stdout
    assert (tmp_path / "both.html").is_file()
    assert (tiny_cxr3_run / "report.html").is_file()


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    result = medtune("report", tmp_path)
    assert result.returncode == 1
    assert "is not a medtune run (no config.yaml)" in result.stderr


def test_report_of_an_unfinished_run(tiny_run, tmp_path):
    run = tmp_path / "unfinished"
    run.mkdir()
    for name in ("config.yaml", "split.csv", "history.csv"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    page = create_report(run)
    html = page.read_text(encoding="utf-8")
    assert "Not evaluated yet" in html and '<section id="training"' in html and '<section id="roc"' not in html


def test_report_when_the_data_has_moved(tiny_run, tmp_path):
    run = tmp_path / "moved"
    run.mkdir()
    for name in ("split.csv", "history.csv", "metrics.json", "predictions.csv"):
        (run / name).write_bytes((tiny_run / name).read_bytes())
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "best.ckpt").write_bytes((tiny_run / "checkpoints" / "best.ckpt").read_bytes())
    config = (tiny_run / "config.yaml").read_text().replace("pneumoniamnist.npz", "gone.npz")
    (run / "config.yaml").write_text(config)
    html = create_report(run).read_text(encoding="utf-8")
    assert "The images could not be shown" in html and "gone.npz" in html
    assert '<section id="roc"' in html


@pytest.mark.parametrize("bad", ["{not json", ""])
def test_report_of_a_damaged_run(tiny_run, tmp_path, bad):
    run = tmp_path / "damaged"
    run.mkdir()
    (run / "config.yaml").write_bytes((tiny_run / "config.yaml").read_bytes())
    (run / "metrics.json").write_text(bad)
    result = medtune("report", run)
    assert result.returncode == 1
    assert f"cannot read the files of run {run}" in result.stderr


@pytest.fixture(scope="module")
def lung_run(tmp_path_factory):
    """lungseg images (which have lung masks) against cxr3 normals, 64 px, one epoch: a run whose test images
    partly have masks."""
    lungs = sorted(shared_path("lungseg", "images").glob("*.png"))[:40]
    normals = sorted(shared_path("cxr3", "normal").glob("*.png"))[:40]
    folder = tmp_path_factory.mktemp("lungmix")
    labels = folder / "labels.csv"
    rows = [(p, "viral") for p in lungs] + [(p, "normal") for p in normals]
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(labels, index=False)
    out = folder / "run"
    result = medtune("train", labels, "image_size=64", "epochs=1", "batch_size=16", "workers=0", "report=false",
                     "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_mask_energy_section(lung_run, tmp_path):
    masks = shared_path("lungseg", "masks")
    result = medtune("report", lung_run, f"masks={masks}", "--mistakes", "0", "--out", tmp_path / "page.html")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert '<section id="attention"' in html
    test_viral = pd.read_csv(lung_run / "predictions.csv").query("label == 'viral'")
    match = re.search(r"(\d+) image\(s\): mean share inside ([0-9]+\.[0-9]+), mean mask area ([0-9]+\.[0-9]+)", html)
    assert match, "the section states how many images and their mean share"
    count, share, area = int(match.group(1)), float(match.group(2)), float(match.group(3))
    assert count == len(test_viral) > 0  # every lungseg test image has its mask; the cxr3 normals have none
    assert 0 <= share <= 1 and 0.1 < area < 0.6  # lungs cover a real part of a chest X-ray
    assert (tmp_path / "page" / "attention.png").is_file()


def test_mask_folder_without_matches_and_missing(tiny_run, tmp_path):
    page = create_report(tiny_run, tmp_path / "page.html", mistakes=0, masks=shared_path("lungseg", "masks"))
    assert "No evaluated image has a mask of the same file name" in page.read_text(encoding="utf-8")
    result = medtune("report", tiny_run, f"masks={tmp_path / 'nowhere'}")
    assert result.returncode == 1 and "mask folder" in result.stderr and "does not exist" in result.stderr


def test_method_and_layer_reach_the_maps(tiny_cxr3_run, tmp_path):
    result = medtune("report", tiny_cxr3_run, "--mistakes", "3", "--method", "gradcam++", "--layer", "blocks.3",
                     "--out", tmp_path / "page.html")  # fmt: skip
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "each with its gradcam++ map" in html and "The images could not be shown" not in html
    refusals = [(("--layer", "nowhere"), "has no layer 'nowhere'"), (("--method", "cam"), "'cam' is not one of")]
    for args, message in refusals:
        bad = medtune("report", tiny_cxr3_run, *args, "--out", tmp_path / "bad.html")
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "bad.html").exists()


def test_evaluations_on_other_data_are_tabulated(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("evaluations"))
    assert "Other data" not in create_report(run, mistakes=0).read_text(encoding="utf-8")
    result = medtune("evaluate", run, shared_path("cxr3"))
    assert result.returncode == 0, result.stderr
    (run / "evaluations" / "broken").mkdir()
    (run / "evaluations" / "broken" / "metrics.json").write_text("{")
    html = create_report(run, mistakes=0).read_text(encoding="utf-8")
    metrics = json.loads((run / "evaluations" / "cxr3-all" / "metrics.json").read_text())
    assert '<section id="evaluations"' in html
    assert re.search(rf"<td>cxr3-all</td>\s*<td>cxr3</td>\s*<td>{metrics['n']}</td>", html)
    assert "124 image(s) labelled &#39;covid&#39; match no class" in html
    assert "broken/metrics.json could not be read" in html


def test_multilabel_report(tiny_findings_run, tmp_path):
    """Training wrote the page; per-label AUCs with intervals, thresholds, and the sections that fit multi-label."""
    html = (tiny_findings_run / "report.html").read_text(encoding="utf-8")
    metrics = json.loads((tiny_findings_run / "metrics.json").read_text())
    for section in ("training", "roc", "pr", "per-class", "mistakes", "left-out", "data", "config"):
        assert f'<section id="{section}"' in html, section
    assert '<section id="confusion"' not in html and '<section id="calibration"' not in html
    assert "findings are not exclusive" in html
    for name, values in metrics["per_class"].items():
        if values["auc"] is not None:
            lo, hi = metrics["intervals"]["per_class"][name]["auc"]
            assert f"<td>{name}</td>" in html and f"{values['auc']:.3f} [{lo:.3f}, {hi:.3f}]" in html, name
        assert f"{values['threshold']:.3f}" in html
    lo, hi = metrics["intervals"]["micro_auc"]
    assert f"{lo:.3f} to {hi:.3f}" in html  # the micro AUC card
    assert {"roc", "pr", "mistakes"} <= set(_embedded_pngs(html))
    result = medtune("report", tiny_findings_run, "--out", tmp_path / "page.html", "--mistakes", "4")
    assert result.returncode == 0, result.stderr
    assert "Most confident false positives" in (tmp_path / "page.html").read_text(encoding="utf-8")
