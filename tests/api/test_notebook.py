"""examples/quickstart.ipynb, run in a real Jupyter kernel as a reader would run it: it trains a tiny run on the
shipped demo data, evaluates it and shows ``medtune.load(run)`` predicting a numpy array, a PIL image and the same
pixels from PNG files, each result displayed as a table."""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from tests.notebooks import cell_text, run_notebook

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def _cell(notebook, code: str):
    """The code cell whose source starts with `code`."""
    return next(c for c in notebook.cells if c.cell_type == "code" and c.source.startswith(code))


@pytest.mark.slow
def test_the_quickstart_notebook_trains_evaluates_and_predicts_arrays(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    run_notebook(notebook, tmp_path)
    took = time.perf_counter() - started
    trained = cell_text(_cell(notebook, "out = "))
    assert "TrainingResult" in trained and "run finished" in trained and "accuracy" in trained
    assert len(list((tmp_path / "runs").glob("quickstart-*/checkpoints/best.ckpt"))) == 1  # a real run, written
    assert "Evaluation on 96 images (test)" in cell_text(_cell(notebook, "evaluation = "))
    predicted = cell_text(_cell(notebook, "with np.load"))
    assert "Predictions" in predicted and "array[5]" in predicted and "6 image(s) predicted" in predicted
    assert "<table" in predicted  # the rich display in Jupyter
    assert cell_text(_cell(notebook, "picture = ")).strip().strip("'") in ("normal", "pneumonia")
    compared = cell_text(_cell(notebook, "folder = "))
    assert "predicting:" in compared and "/6 [" in compared  # the progress bar shows in the notebook
    difference = float(compared.split("largest difference: ")[1].split()[0])
    assert difference <= 1e-5  # PNG files and the arrays they hold: the same probabilities
    print(f"quickstart notebook: {took:.1f} s")
