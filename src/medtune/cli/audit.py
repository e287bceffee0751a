"""``medtune data audit``: duplicates (leakage across splits first), likely label errors and outliers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    comma_choices,
    command_keys,
    console,
    data_and_source,
    json_mode,
    print_config,
)
from medtune.cli.embed import FEATURE_KEYS


def audit_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="DATA [RUN] [KEY=VALUE]...",
            help="The data; the RUN whose network gives the features (else backbone=NAME); then reading keys "
            "(label=, group=, seed=, image_size=...).",
        ),
    ],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Audit folder (default runs/<data>-audit).")] = None,
    fix_split: Annotated[
        bool, typer.Option("--fix-split", help="Write split.csv with each duplicate group in one split.")
    ] = False,
    near: Annotated[
        float, typer.Option("--near", min=0.0, max=1.0, help="Near-duplicate threshold (x median neighbour distance).")
    ] = 0.13,
    checks: Annotated[
        str,
        typer.Option(
            "--checks",
            help="What to look for, comma-separated (label checks are slowest).",
            **comma_choices("duplicates", "labels", "outliers"),
        ),
    ] = "duplicates,labels,outliers",
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Audit data: duplicates and leakage across splits, likely label errors, outliers.

    Finds exact and near duplicates (across splits first: leakage), likely label errors (cleanlab on
    cross-validated probe probabilities) and outliers, from frozen features; writes CSV files and a page.
    """
    from medtune.features.audit import audit_with_page as audit

    data, source, settings = data_and_source(arguments, "medtune data audit")
    keys = command_keys(config_file, settings, (*FEATURE_KEYS, "seed"), "medtune data audit")
    wanted = checks.split(",")
    if show_config:
        print_config({"data": data, "source": source, "checks": wanted, "near": near, **keys})
    with json_mode(as_json) as emit:
        found = audit(data, source, keys, out, fix_split, near, wanted)
        _tell(found, source)
        emit({"folder": str(found.folder), "counts": found.counts, "facts": found.facts,
              "split_file": str(found.split_file) if found.split_file else None})  # fmt: skip


def _tell(found: Any, source: str) -> None:
    """Print the audit's counts, its worst likely label errors and the files written."""
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
