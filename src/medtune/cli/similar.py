"""``medtune index`` and ``medtune similar``: nearest images by their features."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from medtune.cli._common import console
from medtune.config import parse_overrides


def index_command(
    source: Annotated[str, typer.Argument(help="A run directory, or a backbone name.")],
    data: Annotated[str, typer.Argument(help="The images to search: a folder, CSV/TSV manifest or .npz.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value reading keys (label=, image_size=...)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Index folder (default RUN/index).")] = None,
) -> None:
    """Embed every image of DATA and save a FAISS index of their features (exact up to a million images)."""
    from medtune.features.similar import build_index

    index = build_index(source, data, parse_overrides(overrides or []), out)
    console.print(f"indexed {index.meta['size']} image(s) x {index.meta['dims']} features ({index.meta['kind']}) "
                  f"in {index.path}", highlight=False)  # fmt: skip


def similar_command(
    index: Annotated[Path, typer.Argument(help="An index folder, or a run with an index (RUN/index).")],
    queries: Annotated[list[str], typer.Argument(help="Query image files.")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Neighbours per query.")] = 8,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the neighbours (.csv or .json).")] = None,
    page: Annotated[Path | None, typer.Option("--page", help="Also write a page of thumbnails (.html).")] = None,
) -> None:
    """The k most similar indexed images of each query (cosine similarity of features), with label and split."""
    from medtune._io import atomic_open
    from medtune.features.similar import load_index, similar

    found = similar(load_index(index), queries, k)
    table = RichTable(title=f"{k} nearest image(s) per query", title_justify="left")
    for column in ("query", "rank", "similarity", "image", "label", "split"):
        table.add_column(column, justify="right" if column in ("rank", "similarity") else "left")
    for row in found.itertuples(index=False):
        if isinstance(row.error, str):
            table.add_row(Path(row.query).name, "", "", f"unreadable: {row.error}", "", "")
        else:
            table.add_row(Path(row.query).name, str(int(row.rank)), f"{row.similarity:.4f}", Path(str(row.path)).name,
                          _text(row.label), _text(row.split))  # fmt: skip
    console.print(table)
    if out is not None:
        with atomic_open(out, "w", encoding="utf-8", newline="") as f:
            if out.suffix.lower() == ".json":
                found.to_json(f, orient="records", indent=1)
            else:
                found.to_csv(f, index=False)
        console.print(f"written: {out}", highlight=False)
    if page is not None:
        from medtune.reports.similar import write_similar_page

        console.print(f"written: {write_similar_page(found, page)}", highlight=False)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
