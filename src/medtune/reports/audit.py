"""The audit page: the counts, then duplicate groups side by side (leakage across splits first), likely label errors
with their given and suggested labels, and outliers, each as thumbnails with the table of every finding below."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medtune.data.decode import decode_entries, table_entries
from medtune.data.images import thumbnail
from medtune.data.table import Table
from medtune.errors import ImageReadError
from medtune.reports.page import Section, create_plot, format_value, html_table, write_page
from medtune.reports.plots import Tile, plot_tiles

#: Findings drawn as thumbnails per section (the CSV files list them all).
SHOWN = 16
#: Thumbnail side in pixels.
THUMB = 96
#: Rows of each table on the page.
TABLE_ROWS = 200


def thumbnails(table: Table, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Small uint8 copies of the images `ids` (unreadable ones left out), for a page."""
    part = table.with_frame(table.frame[table.frame["id"].isin(list(ids))].reset_index(drop=True))
    decoded = decode_entries(table_entries(part))
    return {str(part.frame["id"].iloc[entry.position]): thumbnail(image, THUMB)
            for entry, image in decoded if not isinstance(image, ImageReadError)}  # fmt: skip


def plot_groups(groups: pd.DataFrame, images: Mapping[str, np.ndarray], count: int = SHOWN) -> Figure:
    """Each duplicate group as one row of thumbnails (up to four members), captioned with split and label."""
    shown = [g for _, g in groups.groupby("group", sort=False)][:count]
    figure = Figure(figsize=(4 * 1.7, len(shown) * 1.9 + 0.4), layout="constrained")
    grid = figure.subplots(max(1, len(shown)), 4, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for row, group in enumerate(shown):
        for column, item in enumerate(group.head(4).itertuples(index=False)):
            image = images.get(str(item.id))
            if image is not None:
                grid[row, column].imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            caption = f"#{item.group} {item.kind}{' LEAK' if item.across else ''}\n{item.split} | {item.label}"
            grid[row, column].set_title(caption, fontsize=7, loc="left", color="darkred" if item.across else "black")
    figure.suptitle("duplicate groups, one per row (leakage across splits first)", fontsize=10)
    return figure


def _tiles(frame: pd.DataFrame, images: Mapping[str, np.ndarray], caption: Any) -> list[Tile]:
    return [Tile(images[str(row.id)], caption(row)) for row in frame.head(SHOWN).itertuples(index=False)
            if str(row.id) in images]  # fmt: skip


def _section_table(frame: pd.DataFrame) -> str:
    shown = frame.head(TABLE_ROWS).copy()
    shown["path"] = [Path(str(p)).name for p in shown["path"]]
    for column in ("distance", "quality", "score"):
        if column in shown:
            shown[column] = [format_value(float(v), 4) for v in shown[column]]
    return html_table(shown)


def write_audit_page(found: Any, out: Path | None = None) -> Path:
    """Write the page of an audit (`medtune.features.audit.Audit`) to `out` (default ``audit.html`` in its folder),
    its plots beside it."""
    duplicates, label_issues, outliers = found.duplicates, found.label_issues, found.outliers
    counts, facts, table = found.counts, found.facts, found.table
    out = out or found.folder / "audit.html"
    wanted = [*duplicates.groupby("group", sort=False).head(4)["id"].head(4 * SHOWN), *label_issues["id"].head(SHOWN),
              *outliers["id"].head(SHOWN)]  # fmt: skip
    images = thumbnails(table, wanted) if wanted else {}
    summary = Section("summary", "What the audit found",
                      f"{facts['images']} images, features from {facts['source']}. Duplicates by pixel hash and by "
                      f"features (closer than {facts['near_threshold']} x the median nearest-neighbour distance); "
                      "label errors and outliers by cleanlab.", half=True)  # fmt: skip
    summary.pairs = [(key.replace("_", " "), str(value)) for key, value in counts.items()]
    sections = [summary, _duplicate_section(duplicates, images, facts)]
    labels = _finding_section(
        Section("labels", "Likely label errors",
                f"cleanlab on out-of-sample probabilities of a logistic-regression probe ({facts['folds']} folds); "
                "lowest label quality first. Look before relabelling: the probe can be wrong."),
        label_issues, images, lambda r: f"given {r.given}\nsuggested {r.suggested}", "given and suggested label",
        _nothing(facts, "labels") if facts.get("labelled") else "the data has no single labels to check",
    )  # fmt: skip
    odd = _finding_section(
        Section("outliers", "Outliers",
                "Images unlike the whole set (scope set) or unlike their own class (scope class), by cleanlab's kNN "
                "outlier score; lowest first."),
        outliers, images, lambda r: f"{r.scope} | {r.label}\nscore {r.score:.3f}", "outliers",
        _nothing(facts, "outliers"),
    )  # fmt: skip
    sections += [labels, odd]
    return write_page(out, "report.html", sections, title=f"data audit: {Path(str(facts['data'])).name}",
                      results=None, cards=[])  # fmt: skip


def _finding_section(
    section: Section, found: pd.DataFrame, images: Mapping[str, np.ndarray], caption: Any, title: str, empty: str
) -> Section:
    """`section` with the findings' thumbnails (captioned by `caption(row)`) and table, or the note `empty`."""
    if len(found):
        plot = plot_tiles(_tiles(found, images, caption), title)
        section.plots.append(create_plot(section.id.replace("labels", "label_issues"), plot, section.title))
        section.tables.append(_section_table(found))
    else:
        section.notes.append(empty)
    return section


def _nothing(facts: Mapping[str, Any], check: str) -> str:
    return "none found" if check in facts.get("checks", [check]) else "not checked (--checks left it out)"


def _duplicate_section(duplicates: pd.DataFrame, images: Mapping[str, np.ndarray], facts: Mapping[str, Any]) -> Section:
    section = Section("duplicates", "Duplicates",
                      "Groups of identical (exact) or nearly identical (near) images. A group across splits is "
                      "leakage: a test image the model also trained on. --fix-split writes a split.csv that keeps "
                      "each group in one split.")  # fmt: skip
    if len(duplicates):
        section.plots.append(create_plot("duplicates", plot_groups(duplicates, images), "duplicate groups"))
        section.tables.append(_section_table(duplicates))
    else:
        section.notes.append(_nothing(facts, "duplicates"))
    return section
