"""``medtune index`` and ``medtune similar``: nearest images by their features."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table as RichTable

from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    command_keys,
    console,
    data_and_source,
    json_mode,
    print_config,
)
from medtune.cli.embed import FEATURE_KEYS

if TYPE_CHECKING:
    import pandas as pd


def index_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="DATA [RUN] [KEY=VALUE]...",
            help="The images to search (folder, CSV/TSV manifest or .npz); the RUN whose network gives the features "
            "(else backbone=NAME); then reading keys (label=, image_size=...).",
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Index folder (default RUN/index).")] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Index the images of DATA for similar-image search (FAISS).

    Embeds every image of DATA and saves a FAISS index of their features (exact up to a million images).
    """
    from medtune.features.similar import build_index

    data, source, settings = data_and_source(arguments, "medtune index", old_order=True)
    keys = command_keys(config_file, settings, FEATURE_KEYS, "medtune index")
    if show_config:
        print_config({"data": data, "source": source, **keys})
    index = build_index(source, data, keys, out)
    console.print(f"indexed {index.meta['size']} image(s) x {index.meta['dims']} features ({index.meta['kind']}) "
                  f"in {index.path}", highlight=False)  # fmt: skip


def similar_command(
    index: Annotated[Path, typer.Argument(help="An index folder, or a run with an index (RUN/index).")],
    queries: Annotated[list[str], typer.Argument(metavar="QUERY...", help="Query image files.")],
    k: Annotated[int, typer.Option("-k", min=1, max=1000, help="Neighbours per query.")] = 8,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the neighbours (.csv or .json; - for JSON here).")
    ] = None,
    page: Annotated[Path | None, typer.Option("--page", help="Also write a page of thumbnails (.html).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Find the k most similar indexed images of each query, with their label and split.

    Similarity is the cosine similarity of the images' features.
    """
    from medtune.features.similar import load_index, similar

    with json_mode(as_json or str(out) == "-") as emit:
        found = similar(load_index(index), queries, k)
        _print_neighbours(found, k)
        if out is not None and str(out) != "-":
            _write_neighbours(found, out)
        if page is not None:
            from medtune.reports.similar import write_similar_page

            console.print(f"written: {write_similar_page(found, page)}", highlight=False)
        emit(found.to_dict(orient="records"))


def _print_neighbours(found: pd.DataFrame, k: int) -> None:
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


def _write_neighbours(found: pd.DataFrame, out: Path) -> None:
    from medtune._io import atomic_open

    with atomic_open(out, "w", encoding="utf-8", newline="") as f:
        if out.suffix.lower() == ".json":
            found.to_json(f, orient="records", indent=1)
        else:
            found.to_csv(f, index=False)
    console.print(f"written: {out}", highlight=False)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
