"""The one progress bar style: rich on stderr, transient, off when stderr is not a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def create_progress(enabled: bool = True) -> Progress:
    """A rich `Progress` on stderr with description, bar, count and time left; disabled when not wanted or when
    stderr is not a terminal (logs and CI stay clean)."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )
