"""``medtune crossdomain``: train on each dataset, test on every other, and print the matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from medtune.cli._common import ConfigOption, PrintConfigOption, console, print_config, split_arguments
from medtune.cli._render import interval
from medtune.config import load_config, parse_overrides, read_yaml
from medtune.errors import ConfigError


def crossdomain_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="DATA... [KEY=VALUE]...",
            help="Two or more datasets (or one table with domain=COLUMN), then keys for every run (label_map=FILE: "
            "YAML of `source label: target label`, null drops a label).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the runs, matrix.csv/json and the page.")] = Path(
        "runs/crossdomain"
    ),
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64, help="Worker processes.")] = 1,
    storage: Annotated[
        str | None, typer.Option("--storage", help="Queue database URL (default: sqlite in --out).")
    ] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Train on each dataset, test on every other: the cross-domain matrix.

    Trains one run per dataset with the same settings (each keeps its own split, by patient where it has
    groups), on the classes they share after label harmonisation, and score every run on every dataset's test
    split: AUC, accuracy and balanced accuracy with 95% bootstrap intervals. Running it again resumes."""
    from medtune.experiments.crossdomain import run_crossdomain

    _, datasets, settings = split_arguments(arguments)
    keys = {**(read_yaml(config_file) if config_file else {}), **parse_overrides(settings)}
    label_map = keys.pop("label_map", None)
    if show_config:
        print_config({"datasets": datasets, "label_map": label_map, **load_config(overrides=keys).model_dump(
            mode="json", exclude_defaults=True)})  # fmt: skip
    if not datasets:
        raise ConfigError("give the datasets to compare: medtune crossdomain DATA_A DATA_B [key=value ...]")
    result = run_crossdomain(datasets, keys, out, Path(label_map) if label_map else None, workers, storage)
    table = RichTable(title=f"trained on (rows) x tested on: macro AUC over {', '.join(result.classes)} [95% CI]",
                      title_justify="left")  # fmt: skip
    names = list(dict.fromkeys(result.matrix["train"]))
    table.add_column("trained on")
    for name in names:
        table.add_column(name, justify="right")
    for train in names:
        cells = []
        for test in names:
            row = result.matrix[(result.matrix["train"] == train) & (result.matrix["test"] == test)].iloc[0]
            cells.append(f"{interval(row['auc'], (row['auc_low'], row['auc_high']))} n={row['images']}")
        table.add_row(train, *cells)
    console.print(table)
    console.print(f"written: {result.out / 'matrix.csv'}, matrix.json; page: {result.page}", highlight=False)
