"""The report's guard section: does the data a run is given look like its training images? The distribution of
guard scores on the run's test split and on every dataset it was evaluated on (``medtune evaluate RUN DATA``),
each dataset's share flagged, metrics on accepted and flagged images and AUROC against the test split, and the
risk-coverage curve of the test split (withholding the least confident answers, or the least familiar images)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medtune.metrics.selective import risk_coverage
from medtune.reports.page import Section, create_plot, format_interval, format_value, html_table
from medtune.reports.plots import PLOT_SIZE
from medtune.reports.results import RunResults

#: Guard scores above this are drawn at it (the threshold is 1).
SCORE_CAP = 4.0


def guard_section(results: RunResults) -> Section | None:
    """None when the run has no guard (``medtune guard RUN`` fits one)."""
    folder = results.run.path / "guard"
    try:
        meta = json.loads((folder / "guard.json").read_text(encoding="utf-8"))
        with np.load(folder / "scores.npz") as stored:
            kept = {name: stored[name] for name in stored.files}
    except (OSError, ValueError):
        return None
    groups = {"validation (calibration)": kept["val"]}
    if "test" in kept:
        groups["own test split"] = kept["test"]
    rows = []
    for path in sorted(results.run.evaluations.glob("*/metrics.json")):
        found = _evaluation(path)
        if found is not None:
            groups[path.parent.name], row = found
            rows.append(row)
    intro = (f"An image passes when its guard score is at most 1: its distance to the {meta['references']} training "
             f"images (k = {meta['k']}) in the run's features and in a frozen ImageNet encoder's, over thresholds that "
             f"{meta['share']:.0%} of the validation images stay under. medtune predict marks every image, "
             "--reject withholds the answers it flags.")  # fmt: skip
    section = Section("guard", "Guard: does an image belong here?", intro)
    section.plots.append(create_plot("guard_scores", plot_scores(groups), "Guard scores per dataset"))
    curve = _test_curve(results, kept)
    if curve is not None:
        section.plots.append(create_plot("risk_coverage", curve, "Risk against coverage on the test split"))
    if rows:
        section.tables.append(html_table(pd.DataFrame(rows)))
    return section


def _evaluation(path: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    """An evaluation's guard scores and its row of the table (None: evaluated before the run had a guard)."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        guard = metrics["guard"]
        scores = pd.read_csv(path.parent / "predictions.csv", usecols=["guard_score"])["guard_score"].dropna()
    except (OSError, ValueError, KeyError):
        return None
    separation = guard.get("auroc_vs_test") or {}
    row = {"evaluation": path.parent.name, "images": guard["images"],
           "flagged": f"{guard['share_flagged']:.1%}" if guard.get("share_flagged") is not None else "n/a",
           "AUROC vs own test split": format_interval(separation.get("auroc"), separation.get("interval")),
           "accuracy accepted": _accuracy(guard.get("accepted")),
           "accuracy flagged": _accuracy(guard.get("flagged_images"))}  # fmt: skip
    return scores.to_numpy(dtype=float), row


def _accuracy(part: dict[str, Any] | None) -> str:
    if not part or "accuracy" not in part:
        return "n/a"
    value = part["accuracy"]
    return f"{format_interval(value[0], value[1:])} ({part['images']})"


def plot_scores(groups: dict[str, np.ndarray]) -> Figure:
    """Step histograms of guard scores, one per dataset, with the threshold at 1."""
    figure = Figure(figsize=PLOT_SIZE, layout="constrained")
    axes = figure.add_subplot()
    bins = np.linspace(0, SCORE_CAP, 61)
    for name, scores in groups.items():
        shown = np.clip(scores, 0, SCORE_CAP)
        axes.hist(shown, bins=bins, histtype="step", density=True, linewidth=1.6,
                  label=f"{name} ({(scores > 1).mean():.0%} flagged)")  # fmt: skip
    axes.axvline(1.0, color="black", linestyle=":", label="threshold")
    axes.set(xlabel=f"guard score (above {SCORE_CAP:g} drawn at {SCORE_CAP:g})", ylabel="density",
             title="Guard scores: at most 1 looks like the training images")  # fmt: skip
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return figure


def _test_curve(results: RunResults, kept: dict[str, np.ndarray]) -> Figure | None:
    """The risk-coverage curve of the test split (single-label runs whose predictions say what was correct)."""
    frame = results.predictions
    if frame is None or "correct" not in frame or "test_ids" not in kept:
        return None
    scores = pd.Series(kept["test"], index=kept["test_ids"].astype(str))
    frame = frame[frame["id"].astype(str).isin(scores.index)]
    if len(frame) < 10:
        return None
    probs = frame[[f"prob_{c}" for c in results.classes]].to_numpy(dtype=float)
    correct = frame["correct"].astype(bool).to_numpy()
    familiar = scores[frame["id"].astype(str)].to_numpy()
    curves = {"least confident withheld first": risk_coverage(correct, -probs.max(axis=1)),
              "least familiar (guard) withheld first": risk_coverage(correct, familiar)}  # fmt: skip
    return plot_risk_coverage(curves, float((~correct).mean()))


def plot_risk_coverage(curves: dict[str, dict[str, list[float]]], overall: float) -> Figure:
    """Error rate among the answers given against the share of images answered."""
    figure = Figure(figsize=PLOT_SIZE, layout="constrained")
    axes = figure.add_subplot()
    for name, curve in curves.items():
        axes.plot(curve["coverage"], curve["risk"], marker=".", label=name)
    axes.axhline(overall, color="grey", linestyle=":", label=f"answering all ({format_value(overall)})")
    axes.set(xlabel="coverage (share of test images answered)", ylabel="risk (error rate of the answers)",
             title="Risk-coverage on the test split", xlim=(0, 1.02))  # fmt: skip
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return figure
