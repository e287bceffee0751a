"""The page machinery of reports: plots and sections, value formatting, and writing a self-contained HTML page
with its plots beside it (atomically)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune._io import atomic_open, write_text
from medtune._version import __version__
from medtune.reports.plots import figure_png


@dataclass
class Plot:
    """One plot of a page: its file name (without ``.png``), PNG bytes and a text alternative."""

    name: str
    png: bytes
    alt: str

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    """One section of a page: a title, an optional introduction, plots, HTML tables and notes."""

    id: str
    title: str
    intro: str = ""
    plots: list[Plot] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    half: bool = False
    wide_plots: bool = False


def create_plot(name: str, figure: Any, alt: str) -> Plot:
    return Plot(name, figure_png(figure), alt)


def format_value(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def format_interval(value: Any, interval: Sequence[Any] | None) -> str:
    if interval and None not in interval and value is not None:
        return f"{format_value(value)} [{format_value(interval[0])}, {format_value(interval[1])}]"
    return format_value(value)


def html_table(frame: pd.DataFrame, index: bool = False) -> str:
    return frame.to_html(index=index, border=0, classes="data", na_rep="", escape=True)


def card_maker(metrics: dict[str, Any]) -> Callable[..., tuple[str, str, str]]:
    """A headline card builder for a run's `metrics`: ``card(name, value, interval=None)`` gives the name, the
    formatted value and its interval at the metrics' confidence level (empty when there is none)."""
    level = f"{round(100 * metrics.get('confidence', 0.95))}% CI"

    def card(name: str, value: Any, interval: Sequence[Any] | None = None) -> tuple[str, str, str]:
        shown = (
            f"{level} {format_value(interval[0])} to {format_value(interval[1])}"
            if interval and None not in interval
            else ""
        )
        return name, format_value(value), shown

    return card


def _template(name: str) -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("medtune.reports", "templates"), autoescape=select_autoescape())
    return environment.get_template(name)


def write_page(out: Path, template: str, sections: list[Section], **context: Any) -> Path:
    """Render the page into `out` and each plot into ``<out stem>/<plot>.png`` beside it (atomically)."""
    folder = out.with_suffix("")
    for section in sections:
        for plot in section.plots:
            with atomic_open(folder / f"{plot.name}.png", "wb") as f:
                f.write(plot.png)
    created = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    html = _template(template).render(sections=sections, version=__version__, created=created, **context)
    write_text(out, html)
    return out


def shorten(text: str, width: int = 28) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]
