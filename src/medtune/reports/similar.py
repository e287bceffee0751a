"""The page of ``medtune similar --page``: each query beside its nearest indexed images, as thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medtune.data.images import file_thumbnail
from medtune.reports.page import Section, create_plot, html_table, write_page
from medtune.reports.plots import Tile, plot_tiles

#: Thumbnail side in pixels.
THUMB = 96


def _thumbnail(path: str) -> np.ndarray:
    """A small copy of an image file; a grey square for an archive row or a file that cannot be read."""
    small = file_thumbnail(path, THUMB)
    return np.full((THUMB, THUMB), 128, np.uint8) if small is None else small


def write_similar_page(found: pd.DataFrame, out: Path) -> Path:
    """Write a page with one section per query: the query first, then its neighbours with rank, similarity,
    label and split."""
    sections = []
    for n, (query, rows) in enumerate(found.groupby("query", sort=False), start=1):
        section = Section(f"query-{n}", Path(str(query)).name)
        hits = rows[rows["rank"].notna()]
        if hits.empty:
            section.notes.append(f"unreadable: {rows['error'].iloc[0]}")
        else:
            tiles = [Tile(_thumbnail(str(query)), "query")]
            tiles += [Tile(_thumbnail(str(r.path)), f"#{int(r.rank)} {r.similarity:.3f}\n{r.label} | {r.split}")
                      for r in hits.itertuples(index=False)]  # fmt: skip
            section.plots.append(create_plot(f"query_{n}", plot_tiles(tiles, "query, then nearest first", 5),
                                             f"nearest images of {Path(str(query)).name}"))  # fmt: skip
            section.tables.append(html_table(hits[["rank", "similarity", "id", "label", "split"]]))
        sections.append(section)
    return write_page(out, "report.html", sections, title="similar images", results=None, cards=[])
