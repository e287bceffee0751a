"""``medtune data audit``: duplicates (leakage across splits first), likely label errors and outliers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from medtune.cli._common import console, data_and_source
from medtune.config import parse_overrides


def audit_command(
    arguments: Annotated[
        list[str], typer.Argument(help="DATA [RUN], then key=value: backbone=, label=, group=, seed=, image_size=...")
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Audit folder (default runs/<data>-audit).")] = None,
    fix_split: Annotated[
        bool, typer.Option("--fix-split", help="Write split.csv with each duplicate group in one split.")
    ] = False,
    near: Annotated[
        float, typer.Option("--near", min=0.0, max=1.0, help="Near-duplicate threshold (x median neighbour distance).")
    ] = 0.13,
    checks: Annotated[
        str, typer.Option("--checks", help="What to look for: duplicates,labels,outliers (label checks are slowest).")
    ] = "duplicates,labels,outliers",
) -> None:
    """Find exact and near duplicates (across splits first: leakage), likely label errors (cleanlab on
    cross-validated probe probabilities) and outliers, from frozen features; write CSV files and a page."""
    from medtune.features.audit import audit_with_page as audit

    data, source, settings = data_and_source(arguments, "medtune data audit")
    wanted = [c.strip() for c in checks.split(",") if c.strip()]
    found = audit(data, source, parse_overrides(settings), out, fix_split, near, wanted)
    counts = found.counts
    table = RichTable(title=f"audit of {found.facts['images']} images ({source} features)", title_justify="left")
    table.add_column("finding")
    table.add_column("count", justify="right")
    rows = [("exact duplicate groups across splits (leakage)", counts["exact_across"]),
            ("near-duplicate groups across splits (leakage)", counts["near_across"]),
            ("exact duplicate groups within a split", counts["exact_within"]),
            ("near-duplicate groups within a split", counts["near_within"]),
            ("images in duplicate groups", counts["images_in_groups"]),
            ("likely label errors", counts["label_issues"]),
            ("outliers of the whole set", counts["outliers_set"]),
            ("outliers of their class", counts["outliers_class"])]  # fmt: skip
    for name, value in rows:
        table.add_row(name, str(value), style="bold red" if "leakage" in name and value else None)
    console.print(table)
    if len(found.label_issues):
        worst = RichTable(title="likely label errors, worst first", title_justify="left")
        for column in ("image", "split", "given", "suggested", "quality"):
            worst.add_column(column, justify="right" if column == "quality" else "left")
        for row in found.label_issues.head(10).itertuples(index=False):
            name = str(row.id) if str(row.path).endswith(".npz") else Path(str(row.path)).name
            worst.add_row(name, row.split, row.given, row.suggested, f"{row.quality:.4f}")
        console.print(worst)
    console.print(f"written: {found.folder}/ duplicates.csv, label_issues.csv, outliers.csv, audit.json, audit.html",
                  highlight=False)  # fmt: skip
    if found.split_file:
        console.print(f"fixed split: {found.split_file} (medtune train DATA split_file={found.split_file})",
                      highlight=False)  # fmt: skip
