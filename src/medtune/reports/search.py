"""The report's search section for a run made by ``medtune tune`` (its ``tune.json``): every trial's validation
log loss over time, finished and pruned, the chosen settings and why."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from medtune.reports.page import Section, create_plot, format_value, html_table
from medtune.reports.plots import PLOT_SIZE

#: Colour and marker per trial state.
STYLES = {"complete": ("C0", "o"), "pruned": ("C1", "x"), "fail": ("C3", "s")}


def search_section(run: Path) -> Section | None:
    """None unless `run` was made by ``medtune tune``."""
    try:
        summary = json.loads((run / "tune.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    trials = summary.get("trials", [])
    counts = pd.Series([t["state"] for t in trials]).value_counts().to_dict()
    intro = (f"medtune tune ran {len(trials)} trials in study {summary['study']} "
             f"({', '.join(f'{n} {s}' for s, n in counts.items())}), ranked by {summary['criterion']}. "
             f"Chosen: {summary['chosen']['why']}.")  # fmt: skip
    section = Section("search", "Search", intro)
    if any(t.get("finished") for t in trials):
        section.plots.append(create_plot("search", plot_trials(trials), "Validation log loss of every trial over time"))
    section.tables.append(html_table(_chosen(summary)))
    section.tables.append(html_table(_table(trials)))
    return section


def _chosen(summary: dict[str, Any]) -> pd.DataFrame:
    params = summary["chosen"]["params"]
    return pd.DataFrame({"setting": list(params), "chosen": [_setting(v) for v in params.values()]})


def _table(trials: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"trial": t["number"], "state": t["state"], "validation log loss": format_value(t["value"], 4),
             "epochs": t["epochs"], **{k: _setting(v) for k, v in (t.get("params") or {}).items()}}
            for t in sorted(trials, key=lambda t: (t["value"] is None, t["value"] or 0.0))]  # fmt: skip
    return pd.DataFrame(rows)


def _setting(value: Any) -> Any:
    """A searched value to 4 significant digits (a learning rate of 0.0001234 is not 0.0001)."""
    return f"{value:.4g}" if isinstance(value, float) else value


def plot_trials(trials: list[dict[str, Any]]) -> Figure:
    """Each trial's validation log loss at the minute it ended, by state, and the best so far."""
    figure = Figure(figsize=PLOT_SIZE, layout="constrained")
    axes = figure.add_subplot()
    ended = [t for t in trials if t.get("finished") and t.get("value") is not None]
    start = min(dt.datetime.fromisoformat(t["started"]) for t in ended)
    minutes = {t["number"]: (dt.datetime.fromisoformat(t["finished"]) - start).total_seconds() / 60 for t in ended}
    for state, (colour, marker) in STYLES.items():
        shown = [t for t in ended if t["state"] == state]
        if shown:
            axes.scatter([minutes[t["number"]] for t in shown], [t["value"] for t in shown], c=colour, marker=marker,
                         label=f"{state} ({len(shown)})")  # fmt: skip
    done = sorted((minutes[t["number"]], t["value"]) for t in ended if t["state"] == "complete")
    if done:
        best = pd.Series([v for _, v in done]).cummin()
        axes.step([m for m, _ in done], best, where="post", color="black", label="best finished so far")
    axes.set(xlabel="minutes since the first trial started", ylabel="validation log loss (lower is better)",
             title="Trials of the search")  # fmt: skip
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return figure
