"""``task=ordinal`` (medtune.tasks.ordinal): CORN's grade probabilities and their inverse, kappa and grade error
checked against scikit-learn, the refusals, and a real RetinaMNIST run through train, evaluate, predict, explain,
report, export (ONNX parity), serve, an interrupted run resumed, sweep with leaderboard, and ensemble."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import cohen_kappa_score, mean_absolute_error

import medtune as medtune_api
from medtune.config import load_config
from medtune.data.table import create_table
from medtune.errors import ConfigError, DataError
from medtune.models import create_classifier
from medtune.models.averaged import EnsembleClassifier
from medtune.tasks import get_task, task_for
from medtune.tasks.ordinal import corn_logits, corn_probabilities, grade_metrics, median_grades
from tests.conftest import medtune, medtune_subprocess, shared_path
from tests.deploy.test_server import _start
from tests.interrupt import Killed, StopAtSecondEpoch

#: A RetinaMNIST run that takes seconds: 48 images per split at 32 px, one epoch.
TINY_ORDINAL = ("task=ordinal", "limit=48", "image_size=32", "epochs=1", "batch_size=16", "workers=0")


def test_grade_probabilities_are_rank_consistent_and_invertible():
    logits = torch.randn(64, 4) * 3
    probs = corn_probabilities(logits)
    assert probs.shape == (64, 5) and bool((probs >= 0).all())
    torch.testing.assert_close(probs.sum(1), torch.ones(64))
    above = 1 - probs.cumsum(1)[:, :-1]  # P(grade > k) never rises with k
    assert bool((above[:, 1:] <= above[:, :-1] + 1e-6).all())
    torch.testing.assert_close(corn_logits(probs.log()), logits, atol=2e-3, rtol=1e-3)


def test_the_median_grade_is_corn_s_own_rule():
    logits = torch.randn(200, 4) * 2
    corn_rule = (torch.cumprod(torch.sigmoid(logits), 1) > 0.5).sum(1).numpy()  # coral-pytorch's label rule
    assert (median_grades(corn_probabilities(logits).numpy()) == corn_rule).all()


def test_kappa_and_grade_error_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 400)
    probs = np.eye(5)[np.clip(truth + rng.integers(-2, 3, 400), 0, 4)]
    found = grade_metrics(truth, probs, n_bootstrap=300, seed=1)
    guess = median_grades(probs)
    assert found["quadratic_kappa"] == pytest.approx(cohen_kappa_score(truth, guess, weights="quadratic"))
    assert found["mean_absolute_error"] == pytest.approx(mean_absolute_error(truth, guess))
    low, high = found["intervals"]["quadratic_kappa"]
    assert low < found["quadratic_kappa"] < high and high - low < 0.2
    assert grade_metrics(truth, probs, n_bootstrap=300, seed=1) == found  # seeded: the same intervals


def test_an_ensemble_of_graders_averages_grade_probabilities_in_their_own_outputs():
    nets = [create_classifier("resnet18", 4, in_chans=3, pretrained=False).eval() for _ in range(2)]
    ensemble = EnsembleClassifier(nets, channels=3, activation="corn").eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        mean = torch.stack([corn_probabilities(n(x)) for n in nets]).mean(0)
        torch.testing.assert_close(corn_probabilities(ensemble(x)), mean, atol=1e-4, rtol=1e-3)


def test_what_ordinal_grading_refuses():
    task = get_task("ordinal")
    multi = create_table(pd.DataFrame({"path": ["a", "b"], "label": ["1|2", "0"]}), multilabel=True)
    with pytest.raises(ConfigError, match="one grade per image"):
        task_for(load_config(task="ordinal"), multi)
    with pytest.raises(DataError, match="at least three"):
        task.check_trainable(create_table(pd.DataFrame({"path": ["a", "b"], "label": ["0", "1"]})))
    with pytest.raises(ConfigError, match="use sampler=weighted"):
        task.loss_weights(load_config(task="ordinal", class_weights="auto"), None, np.arange(2))
    with pytest.raises(ConfigError, match="CORN loss"):
        task.loss(load_config(task="ordinal", loss="focal"), None, 5)


@pytest.fixture(scope="module")
def grader(tmp_path_factory):
    out = tmp_path_factory.mktemp("ordinal") / "grades"
    result = medtune("train", shared_path("retinamnist", "retinamnist.npz"), *TINY_ORDINAL, "--out", out)
    assert result.returncode == 0, result.stderr
    (out.parent / "train-stdout.txt").write_text(result.stdout)
    return out


def test_a_grader_trains_evaluates_and_reports_kappa(grader):
    metrics = json.loads((grader / "metrics.json").read_text())
    assert metrics["task"] == "ordinal" and metrics["classes"] == ["0", "1", "2", "3", "4"]
    kappa = metrics["ordinal"]["quadratic_kappa"]
    low, high = metrics["ordinal"]["intervals"]["quadratic_kappa"]
    assert -1 <= low <= kappa <= high <= 1 and metrics["ordinal"]["mean_absolute_error"] >= 0
    predictions = pd.read_csv(grader / "predictions.csv", dtype={"label": str, "predicted": str})
    probs = predictions[[f"prob_{c}" for c in metrics["classes"]]].to_numpy()
    assert (predictions["predicted"].astype(int) == median_grades(probs)).all()  # the median, not the argmax
    assert "quadratic weighted kappa" in (grader.parent / "train-stdout.txt").read_text()  # the command's table
    assert "quadratic weighted kappa" in (grader / "report.html").read_text()  # and the report's cards
    again = medtune("evaluate", grader)
    evaluated = json.loads((grader / "metrics.json").read_text())
    assert again.returncode == 0 and evaluated["ordinal"] == metrics["ordinal"]  # the same grades, scored again


def test_an_interrupted_grader_resumes_from_its_last_checkpoint(tmp_path):
    config = load_config(data=str(shared_path("retinamnist", "retinamnist.npz")), task="ordinal", limit=32,
                         image_size=32, epochs=2, batch_size=16, workers=0, report=False, threads=1)  # fmt: skip
    with pytest.raises(Killed):
        medtune_api.train(config, tmp_path / "run", progress=False, callbacks=[StopAtSecondEpoch()])
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    result = medtune_api.train(config, tmp_path / "run", progress=False)
    assert result.resumed and pd.read_csv(tmp_path / "run" / "history.csv")["epoch"].tolist() == [1, 2]
    assert "quadratic_kappa" in result.metrics["ordinal"]


def test_a_grader_predicts_explains_and_exports_the_same_grades(grader, tmp_path):
    images = shared_path("cxr-fullres")
    torch_csv, onnx_csv = tmp_path / "torch.csv", tmp_path / "onnx.csv"
    assert medtune("predict", grader, images, "--out", torch_csv, "--engine", "torch").returncode == 0
    exported = medtune_subprocess("export", grader, "--out", tmp_path / "grader.onnx")
    assert exported.returncode == 0, exported.stderr
    assert medtune("predict", tmp_path / "grader.onnx", images, "--out", onnx_csv).returncode == 0
    by_torch, by_onnx = pd.read_csv(torch_csv), pd.read_csv(onnx_csv)
    assert (by_torch["label"] == by_onnx["label"]).all()
    np.testing.assert_allclose(by_torch.filter(like="prob_"), by_onnx.filter(like="prob_"), atol=1e-4)
    explained = medtune("explain", grader, images, "--out", tmp_path / "cams", "--target", "4")
    assert explained.returncode == 0, explained.stderr  # grade 4 has no output of its own: CORN has K-1
    assert len(list((tmp_path / "cams").glob("*.png"))) >= 8


def test_a_served_grader_answers_with_grades(grader, tmp_path):
    url, process = _start(grader)
    try:
        model = httpx.get(f"{url}/model", timeout=10).json()
        assert model["task"] == "ordinal" and model["classes"] == ["0", "1", "2", "3", "4"]
        image = next(shared_path("cxr-fullres").glob("*.png"))
        answer = httpx.post(f"{url}/predict", files={"files": (image.name, image.read_bytes())}, timeout=60).json()
        assert answer[0]["label"] in model["classes"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_graders_sweep_rank_and_ensemble(grader, tmp_path):
    data, db = shared_path("retinamnist", "retinamnist.npz"), f"sqlite:///{tmp_path / 'q.db'}"
    queued = medtune("sweep", data, *TINY_ORDINAL, "report=false", "lr=1e-3,2e-3", "--storage", db, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    ran = medtune_subprocess("queue", "run", "--storage", db, cwd=tmp_path)
    assert ran.returncode == 0 and "2 finished" in ran.stdout, ran.stdout + ran.stderr
    board = medtune("leaderboard", "--storage", db, "--format", "csv", cwd=tmp_path)
    assert board.returncode == 0 and board.stdout.count("finished") == 2
    runs = sorted((tmp_path / "runs").glob("*/*"))
    made = medtune("ensemble", *runs, "--out", tmp_path / "ensemble")
    assert made.returncode == 0, made.stderr
    metrics = json.loads((tmp_path / "ensemble" / "metrics.json").read_text())
    assert metrics["task"] == "ordinal" and "quadratic_kappa" in metrics["ordinal"]
