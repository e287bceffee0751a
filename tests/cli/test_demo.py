"""``medtune demo`` (what ``make demo`` runs): the PneumoniaMNIST file that ships inside the package, trained,
evaluated and reported with no ``shared/`` data beside the clone and no network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from medtune.data import demo_data
from tests.conftest import medtune


def test_the_embedded_file_is_the_official_pneumoniamnist_split():
    with np.load(demo_data()) as data:
        sizes = {key: data[key].shape for key in data.files}
    assert sizes["train_images"] == (4708, 28, 28) and sizes["val_images"] == (524, 28, 28)
    assert sizes["test_labels"] == (624, 1)
    assert "CC BY 4.0" in (demo_data().parent / "README.md").read_text()  # the licence's credit ships beside it


def test_demo_trains_evaluates_and_reports_on_the_embedded_file(tmp_path):
    run = tmp_path / "demo"
    result = medtune("demo", "limit=64", "image_size=32", "epochs=1", "batch_size=16", "workers=0", "--out", run,
                     "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"medtune train {demo_data()}" in result.stderr  # says what it runs, to be repeated on one's own data
    printed = json.loads(result.stdout)  # --json: the result alone on standard output, the talk on standard error
    assert printed["run"] == str(run) and printed["resumed"] is False and printed["report"] == str(run / "report.html")
    metrics = json.loads((run / "metrics.json").read_text())
    assert printed["metrics"]["macro"]["auc"] == metrics["macro"]["auc"] and printed["kept"]["reason"]
    # one epoch, numbered 1 in the console, kept.json and history.csv alike
    assert printed["kept"]["epoch"] == 1 and "kept the weights of epoch 1:" in result.stderr
    assert pd.read_csv(run / "history.csv")["epoch"].tolist() == [1]
    assert metrics["split"] == ["test"] and 0 <= metrics["macro"]["auc"] <= 1
    assert (run / "report.html").is_file() and "report: " in result.stderr


def test_demo_takes_settings_not_data(tmp_path):
    result = medtune("demo", str(tmp_path / "mine.npz"), cwd=tmp_path)
    assert result.returncode == 2 and "medtune train" in result.stderr and "mine.npz" in result.stderr


def test_error_messages_keep_their_brackets(tmp_path):
    """An error is printed as its text, not as console markup: `pip install 'medtune[serve]'` keeps its
    ``[serve]`` (rich would read it as a style tag and drop it)."""
    result = medtune("demo", "medtune[serve]", cwd=tmp_path)
    assert result.returncode == 2 and "got 'medtune[serve]'" in result.stderr
