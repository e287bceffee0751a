"""medtune/_progress.py: one progress display for every loop, drawn where someone watches (rich in a terminal,
tqdm in a Jupyter notebook) and off where nobody does (logs, CI, pipes)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from nbformat.v4 import new_code_cell, new_notebook
from rich.progress import Progress

from medtune._progress import create_progress, in_notebook
from tests.notebooks import cell_text, run_notebook

LOOP = """import time
from medtune._progress import create_progress, in_notebook
with create_progress() as bar:
    task = bar.add_task("counting", total=5)
    for _ in range(5):
        time.sleep(0.12)  # slower than the bar's refresh, so every step is drawn
        bar.advance(task, 1)
print("notebook:", in_notebook(), type(bar).__name__)"""


def test_a_log_gets_no_bar():
    """pytest captures stderr: it is no terminal, and this is no notebook."""
    assert not in_notebook()
    progress = create_progress()
    assert isinstance(progress, Progress) and progress.disable


def test_a_terminal_gets_rich_and_a_pipe_nothing():
    code = "from medtune._progress import create_progress; print(create_progress().disable)"
    forced = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"})  # fmt: skip
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "TTY_COMPATIBLE": "0"})  # fmt: skip
    assert forced.stdout.strip() == "False" and piped.stdout.strip() == "True"


@pytest.mark.slow
def test_a_notebook_shows_the_bar_and_a_disabled_one_stays_off(tmp_path):
    quiet = LOOP.replace("create_progress()", "create_progress(False)")
    notebook = new_notebook(cells=[new_code_cell(LOOP), new_code_cell(quiet)])
    run_notebook(notebook, tmp_path, timeout=120)
    shown, off = (cell_text(cell) for cell in notebook.cells)
    assert "notebook: True NotebookProgress" in shown and "counting" in shown and "5/5" in shown
    assert "notebook: True Progress" in off and "counting" not in off
