"""medtune.apply.recalibrate and ``medtune calibrate RUN DATA``: prevalence estimated without labels and thresholds
re-chosen with them, on real runs and real images at a shifted class mix, then used by predict and evaluate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import medtune
from medtune.apply.recalibrate import calibrate_shift, load_shift
from medtune.errors import ConfigError, DataError
from tests.conftest import medtune as medtune_cli
from tests.conftest import shared_path


def pneumonia_site(folder: Path, pneumonia: int, normal: int, seed: int = 0) -> Path:
    """PneumoniaMNIST test images at a chosen mix, as PNGs with ``labels.csv`` (path, label)."""
    found = np.load(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    labels = found["test_labels"][:, 0]
    rng = np.random.default_rng(seed)
    rows = np.r_[rng.choice(np.flatnonzero(labels == 1), pneumonia, False), rng.choice(np.flatnonzero(labels == 0),
                                                                                      normal, False)]  # fmt: skip
    folder.mkdir(parents=True)
    names = []
    for row in rows:
        Image.fromarray(found["test_images"][row]).save(folder / f"{row}.png")
        names.append(f"{row}.png")
    frame = pd.DataFrame({"path": names, "label": np.array(["normal", "pneumonia"])[labels[rows]]})
    frame.to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


@pytest.fixture
def run(tiny_run, tmp_path):
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))  # the session's run stays as it was


def test_em_moves_toward_a_shifted_prevalence_and_predict_and_evaluate_use_it(run, tmp_path):
    low = pneumonia_site(tmp_path / "low", pneumonia=4, normal=36)  # 10% pneumonia; the run trained at 74%
    high = pneumonia_site(tmp_path / "high", pneumonia=38, normal=2, seed=1)
    result = medtune_cli("calibrate", run, low.parent, "--unlabelled", "--name", "low")  # a folder of PNGs
    assert result.returncode == 0, result.stderr
    assert "prevalence calibration 'low'" in result.stdout and "EM," in result.stdout
    kept = json.loads((run / "calibrations" / "low.json").read_text())
    assert kept["kind"] == "prevalence" and kept["source"] == "em" and kept["images"] == 40 and kept["converged"]
    assert kept["training_prior"][1] == pytest.approx(0.74, abs=0.05) and sum(kept["estimate"]) == pytest.approx(1)
    assert 0 <= kept["guard_flagged"] <= 0.5  # PneumoniaMNIST's own kind of image: the run's guard passes most
    shifted = calibrate_shift(run, high, unlabelled=True, name="high", progress=False)  # a CSV; labels ignored
    assert kept["estimate"][1] < kept["prior"][1] < shifted.estimate[1]  # each moves toward its truth
    images = sorted(low.parent.glob("*.png"))
    after = medtune.predict(run, images, progress=False, workers=0, calibration="low")
    assert after.attrs["calibration"]["kind"] == "prevalence"
    # EM's fixed point: the adjusted probabilities of DATA average to the estimated prevalence
    assert after["prob_pneumonia"].mean() == pytest.approx(kept["estimate"][1], abs=1e-4)
    assert (after["label"] == np.where(after["prob_pneumonia"] > 0.5, "pneumonia", "normal")).all()
    answers = medtune_cli("predict", run, *images[:3], "--calibration", "low", "--out", tmp_path / "p.json")
    assert answers.returncode == 0 and "calibration 'low' (prevalence, em)" in answers.stdout
    shown = medtune_cli("evaluate", run, low, "--calibration", "low", "--out", tmp_path / "ev")
    assert shown.returncode == 0, shown.stderr
    assert "before -> after" in shown.stdout and "predicted positive rate" in shown.stdout
    found = json.loads((tmp_path / "ev" / "metrics.json").read_text())["calibrated"]
    assert found["kind"] == "prevalence" and found["images"] == 40 and found["before"]["prevalence"] == 0.1
    # evaluate decides as predict does (whether the tiny run's rate goes down depends on its scaling: not asserted)
    assert found["after"]["predicted_positive_rate"] == pytest.approx((after["label"] == "pneumonia").mean())
    assert set(found["after"]) >= {"accuracy", "balanced_accuracy", "sensitivity", "specificity", "log_loss"}


def test_labels_re_choose_a_binary_threshold(run, tmp_path):
    data = pneumonia_site(tmp_path / "site", pneumonia=10, normal=20)
    shift = calibrate_shift(run, data, labelled=20, progress=False)  # default name: threshold
    assert shift.kind == "threshold" and shift.images == 20 and len(shift.thresholds) == 1
    assert load_shift(run, "threshold") == shift
    again = calibrate_shift(run, data, labelled=20, name="again", progress=False)
    assert again.thresholds == shift.thresholds  # a seeded sample
    predicted = medtune.predict(run, [data], progress=False, workers=0, calibration="threshold")
    called = predicted["prob_pneumonia"].round(6) >= shift.thresholds[0]
    assert ((predicted["label"] == "pneumonia") == called).all()
    assert predicted.attrs["calibration"]["thresholds"] == {"pneumonia": shift.thresholds[0]}


def test_a_multilabel_run_is_calibrated_finding_by_finding(tiny_findings_run, tmp_path):
    run = Path(shutil.copytree(tiny_findings_run, tmp_path / "run"))
    labels = pd.read_csv(shared_path("cxr3", "labels.csv"))
    site = labels[labels["finding_labels"].notna()].sample(40, random_state=0)
    site = site.assign(path=[str(shared_path("cxr3", p)) for p in site["path"]])
    site.to_csv(tmp_path / "site.csv", index=False)
    em = calibrate_shift(run, tmp_path / "site.csv", unlabelled=True, progress=False)
    assert em.multilabel and len(em.estimate) == len(em.classes) == len(em.scaling)
    assert all(0 <= p <= 1 for p in em.estimate)
    chosen = calibrate_shift(run, tmp_path / "site.csv", keys={"labels": None, "label": "finding_labels",
                                                               "label_sep": "|"}, progress=False)  # fmt: skip
    assert chosen.kind == "threshold" and len(chosen.thresholds) == len(chosen.classes)
    predicted = medtune.predict(run, [tmp_path / "site.csv"], progress=False, workers=0, calibration="prevalence")
    assert "labels" in predicted.to_frame() and predicted.attrs["calibration"]["kind"] == "prevalence"


def test_what_shift_calibration_refuses(run, tmp_path):
    data = pneumonia_site(tmp_path / "site", pneumonia=3, normal=3)
    with pytest.raises(ConfigError, match="give one of the two"):
        calibrate_shift(run, data, unlabelled=True, labelled=4)
    with pytest.raises(DataError, match=r"--labelled 50: .* has 6 image"):
        calibrate_shift(run, data, labelled=50, progress=False)
    flat = tmp_path / "flat"
    flat.mkdir()
    for png in list(data.parent.glob("*.png"))[:3]:
        shutil.copy(png, flat)
    with pytest.raises(DataError, match=r"has no labels.*--unlabelled"):
        calibrate_shift(run, flat, labelled=2, progress=False)
    with pytest.raises(ConfigError, match="letters, digits"):
        calibrate_shift(run, data, unlabelled=True, name="../x")
    result = medtune_cli("calibrate", run, "--unlabelled")
    assert result.returncode != 0 and "give DATA after RUN" in result.stderr
    with pytest.raises(DataError, match=r"no calibration 'missing' \(it has none\)"):
        medtune.predict(run, [data], progress=False, workers=0, calibration="missing")
    with pytest.raises(DataError, match="no calibration 'missing'"):
        medtune.evaluate(run, data, calibration="missing", out=tmp_path / "ev", progress=False)


def test_a_calibration_on_images_the_guard_flags_says_not_to_trust_it(run, tmp_path):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    for tile in sorted(shared_path("lc25000-lung").glob("*/*.jpeg"))[:12]:
        shutil.copy(tile, tiles / tile.name)
    result = medtune_cli("calibrate", run, tiles, "--unlabelled", "--name", "tiles")
    assert result.returncode == 0, result.stderr
    kept = json.loads((run / "calibrations" / "tiles.json").read_text())
    assert kept["guard_flagged"] > 0.5 and "only the class mix changed" in result.stdout
