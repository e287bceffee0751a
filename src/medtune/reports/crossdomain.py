"""The cross-domain page: the matrix of AUCs (train domain x test domain) as a heat map with intervals, the gap
between in-domain and out-of-domain scores per training set, and per-class AUCs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medtune.reports.page import Section, create_plot, format_interval, format_value, html_table, write_page


def plot_matrix(matrix: pd.DataFrame, score: str = "auc") -> Figure:
    """A heat map of `score` (rows: trained on, columns: tested on), each cell with its value and interval."""
    names = list(dict.fromkeys(matrix["train"]))
    grid = np.full((len(names), len(names)), np.nan)
    labels = [["" for _ in names] for _ in names]
    for row in matrix.itertuples(index=False):
        i, j = names.index(row.train), names.index(row.test)
        value, low, high = getattr(row, score), getattr(row, f"{score}_low"), getattr(row, f"{score}_high")
        grid[i, j] = value
        labels[i][j] = f"{value:.3f}\n[{low:.3f}, {high:.3f}]" if pd.notna(low) else f"{value:.3f}"
    figure = Figure(figsize=(1.9 * len(names) + 2.2, 1.4 * len(names) + 1.4), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(grid, cmap="viridis", vmin=0.5, vmax=1.0)
    for i in range(len(names)):
        for j in range(len(names)):
            dark = np.isfinite(grid[i, j]) and grid[i, j] < 0.8
            axes.text(j, i, labels[i][j], ha="center", va="center", fontsize=9, color="white" if dark else "black")
    axes.set_xticks(range(len(names)), names, rotation=20, ha="right")
    axes.set_yticks(range(len(names)), names)
    axes.set(xlabel="tested on (its test split)", ylabel="trained on", title=f"{score.upper()} [95% CI]")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def write_crossdomain_page(
    matrix: pd.DataFrame,
    gap: pd.DataFrame,
    classes: Sequence[str],
    own: Mapping[str, Sequence[str]],
    out: Path,
    shortcuts: Any = None,
) -> Path:
    """Write the cross-domain page to `out` (its plots beside it), with the shortcut check of one table's domains
    (`medtune.features.shortcuts.ShortcutReport`) when given."""
    heat = Section("matrix", "Train on one, test on every other",
                   f"Macro AUC over the shared classes ({', '.join(classes)}) after label harmonisation. The "
                   "diagonal is each run on its own test split.")  # fmt: skip
    heat.plots.append(create_plot("matrix_auc", plot_matrix(matrix, "auc"), "AUC matrix, train x test"))
    table = matrix[["train", "test", "images"]].copy()
    for score in ("auc", "accuracy", "balanced_accuracy"):
        table[score.replace("_", " ")] = [
            format_interval(v, [lo, hi]) for v, lo, hi in zip(matrix[score], matrix[f"{score}_low"],
                                                              matrix[f"{score}_high"], strict=True)
        ]  # fmt: skip
    table["labels dropped"] = matrix["dropped"]
    heat.tables.append(html_table(table))
    gaps = Section("gap", "In-domain against out-of-domain",
                   "Per training set: AUC on its own test split, the mean AUC on the other domains' test splits, "
                   "and the gap between them.", half=True)  # fmt: skip
    gaps.tables.append(html_table(gap.assign(**{c: [format_value(v) for v in gap[c]] for c in gap if c != "train"})))
    sections = [heat, gaps]
    per_class = [c for c in matrix if c.startswith("auc_")]
    if len(per_class) > 2 or len(classes) > 2:
        frame = matrix[["train", "test", *per_class]].rename(columns=lambda c: c.removeprefix("auc_"))
        section = Section("per-class", "AUC per class", "One-vs-rest AUC of each shared class.")
        section.tables.append(html_table(frame.round(3)))
        sections.append(section)
    if shortcuts is not None:
        sections.append(shortcut_section(shortcuts))
    labels = Section("labels", "Classes", "The harmonised classes of each dataset; the runs train on those shared "
                     "by all.", half=True)  # fmt: skip
    labels.pairs = [(name, ", ".join(names)) for name, names in own.items()]
    sections.append(labels)
    return write_page(out, "report.html", sections, title="cross-domain matrix", results=None, cards=[])


def shortcut_section(report: Any) -> Section:
    """The domain probe's AUCs (whole images, borders only), the class x domain counts and the warnings."""
    section = Section("shortcuts", "Shortcut check", "A probe (frozen backbone features, logistic regression, out of "
                      "fold) tells the domains apart; a high AUC on the borders alone means text, markers or "
                      "collimation give the source away.", notes=list(report.warnings))  # fmt: skip
    rows = []
    for name, metrics in (("whole images", report.whole), ("borders only", report.border)):
        rows.append({"images seen": name, "domain AUC [95% CI]": format_interval(metrics["macro"]["auc"],
                     metrics["intervals"].get("auc")), "accuracy": format_value(metrics["accuracy"])})  # fmt: skip
    section.tables.append(html_table(pd.DataFrame(rows)))
    section.tables.append(html_table(report.counts.rename_axis(index="class", columns=None).reset_index()))
    return section
