"""The one progress bar style: rich on stderr in a terminal, tqdm in a Jupyter notebook, off elsewhere (logs, CI,
pipes), so a log gets no bar and a notebook cell shows one.

In a notebook, rich's live display needs ipywidgets (it warns and draws nothing without it); tqdm draws a widget
bar when ipywidgets is installed and otherwise a text bar the notebook redraws in place.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, JupyterLab, VS Code's notebooks, Colab); False in a terminal, in
    IPython in a terminal and in a script (rich's own test, `rich.console.Console.is_jupyter`)."""
    return Console().is_jupyter


def _tqdm_class() -> Any:
    """tqdm's notebook widget when ipywidgets is installed, else its text bar (tqdm.auto's choice, without the
    warning it prints when ipywidgets is missing)."""
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm

        return tqdm
    from tqdm.std import tqdm

    return tqdm


class NotebookProgress:
    """The part of rich's `Progress` medtune uses (a context, `add_task`, `advance`), drawn by tqdm in a notebook;
    the bars go away when the context ends, as rich's transient bars do."""

    def __init__(self) -> None:
        self.bars: list[Any] = []

    def __enter__(self) -> NotebookProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        for bar in self.bars:
            bar.close()

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        """Start a bar; returns its id for `advance`."""
        self.bars.append(_tqdm_class()(total=total, desc=description, leave=False, file=sys.stderr))
        return len(self.bars) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        """Move bar `task` on by `advance` steps."""
        self.bars[task].update(advance)


def create_progress(enabled: bool = True) -> Progress | NotebookProgress:
    """A progress display with `add_task` and `advance`: a rich `Progress` on stderr with description, bar, count
    and time left in a terminal; tqdm bars in a Jupyter notebook; disabled when not wanted or when stderr is
    neither (logs and CI stay clean)."""
    console = Console(stderr=True)
    if enabled and not console.is_terminal and in_notebook():
        return NotebookProgress()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )
