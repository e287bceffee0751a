"""``medtune data ...``: look at data before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table as RichTable

from medtune._io import write_json
from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    build_config,
    console,
    json_mode,
    print_config,
    progress_bar,
)
from medtune.cli._render import interval

if TYPE_CHECKING:
    from medtune.data.summary import Summary

data_app = typer.Typer(help="Inspect data: counts, sizes, problems, one sample walked through.", no_args_is_help=True)


@data_app.command("summary")
def summary_command(
    data: Annotated[
        str, typer.Argument(help="A folder of class folders (or of unlabelled images), a CSV/TSV manifest or an .npz.")
    ],
    overrides: Annotated[
        list[str] | None, typer.Argument(metavar="[KEY=VALUE]...", help="Reading keys, e.g. label=diagnosis group=id")
    ] = None,
    config_file: ConfigOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the summary as JSON here.")] = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Summarise data: counts per class and split, sizes, problems, one sample walked through.

    Counts per class and split, image sizes, DICOM headers, problems, and one sample walked through preprocessing.
    A folder of images without class folders is summarised as unlabelled images.

    Exits 1 when the data cannot be used as it is (each problem is named with its fix).
    """
    config = build_config(config_file, overrides, data=data)
    if show_config:
        print_config(config)
    from medtune.data.summary import summarize
    from medtune.runs import prepare_dataset

    with json_mode(as_json) as emit:
        dataset = prepare_dataset(config, labelled=None, store=False)
        with progress_bar("scanning images", total=len(dataset.table)) as advance:
            summary = summarize(
                dataset.table, dataset.config.sections.data, dataset.resolved.preprocessing, on_progress=advance
            )
        render_summary(summary)
        if out:
            write_json(out, summary.to_dict())
        emit(summary.to_dict())
    if not summary.ok:
        raise typer.Exit(1)


def render_summary(summary: Summary) -> None:
    """Print a summary as rich tables."""
    table = summary.table
    kind = "multi-label" if table.multilabel else "single-label"
    labels = f"{len(table.classes)} classes ({kind})" if table.classes else "unlabelled"
    console.print(f"[bold]{table.source}[/]  reader: {table.reader}, {len(table)} images, {labels}", highlight=False)
    for note in table.notes:
        console.print(f"  note: {note}", highlight=False)
    if table.classes:
        _render_counts(summary)
    _render_images(summary)
    if summary.steps:
        walk = RichTable(title=f"One sample through preprocessing: {summary.sample_id}", title_justify="left")
        for column in ("step", "shape", "dtype", "min", "max"):
            walk.add_column(column, justify="left" if column == "step" else "right")
        for step in summary.steps:
            walk.add_row(step.name, str(step.shape), step.dtype, f"{step.low:.3g}", f"{step.high:.3g}")
        console.print(walk)
    if not summary.problems:
        console.print("[green]no problems found[/]")
    for problem in summary.problems:
        colour = "red" if problem.level == "error" else "yellow"
        console.print(f"[{colour}]{problem.level}[/]: [bold]{problem.title}[/]: {problem.message}", highlight=False)


def _render_counts(summary: Summary) -> None:
    table = summary.table
    counts = table.class_counts()
    grid = RichTable(title="Images per class and split", title_justify="left")
    grid.add_column("class")
    for split in counts.columns:
        grid.add_column(split, justify="right")
    grid.add_column("total", justify="right")
    grid.add_column("share", justify="right")
    totals = counts.sum(axis=1)
    all_labels = max(1, int(totals.sum()))
    for name, row in counts.iterrows():
        grid.add_row(str(name), *(str(int(v)) for v in row), str(int(totals[name])), f"{totals[name] / all_labels:.1%}")
    per_split = table.frame["split"].fillna("(none)").value_counts()
    grid.add_row("[bold]all images[/]", *(str(int(per_split.get(s, 0))) for s in counts.columns), str(len(table)), "")
    console.print(grid)


def _render_images(summary: Summary) -> None:
    sizes = summary.size_table()
    size_grid = RichTable(title="Image sizes (most common first)", title_justify="left")
    for column in ("height", "width", "channels", "dtype", "images"):
        size_grid.add_column(column, justify="right")
    for row in sizes.head(5).itertuples(index=False):
        size_grid.add_row(*(str(v) for v in row))
    if len(sizes) > 5:
        size_grid.add_row("...", "", "", "", f"{int(sizes['images'].iloc[5:].sum())} in {len(sizes) - 5} other sizes")
    console.print(size_grid)
    modes = ", ".join(f"{mode}: {n}" for mode, n in summary.mode_counts().items())
    console.print(f"pixel modes: {modes or 'none readable'}; stored as {summary.channels} channel(s) at "
                  f"{summary.image_size} px", highlight=False)  # fmt: skip
    dicom = summary.dicom_counts()
    if not dicom.empty:
        grid = RichTable(title="DICOM headers", title_justify="left")
        for column in ("modality", "photometric", "bits stored", "bits allocated", "transfer syntax", "images"):
            grid.add_column(column, justify="right" if column.startswith(("bits", "images")) else "left")
        for row in dicom.itertuples(index=False):
            grid.add_row(*("-" if v is None else str(v) for v in row))
        console.print(grid)


@data_app.command("shortcuts")
def shortcuts_command(
    data: Annotated[str, typer.Argument(help="A CSV/TSV manifest (or folder) with a domain column.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY=VALUE]...", help="domain=COLUMN (required), then label=, group=..."),
    ] = None,
    config_file: ConfigOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the findings as JSON here.")] = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Check for shortcuts: whether a classifier could score by recognising the source.

    A probe (frozen backbone features, logistic regression, out of fold) tells the domains apart on whole images
    and on their borders alone, with its AUC and interval, and every class that one domain holds almost alone is
    flagged.
    """
    from medtune.features.shortcuts import probe_shortcuts

    config = build_config(config_file, overrides, data=data)
    if show_config:
        print_config(config)
    with json_mode(as_json) as emit:
        report = probe_shortcuts(config)
        _render_shortcuts(report)
        findings = {
            "domains": report.domains, "whole": report.whole, "border": report.border, "warnings": report.warnings,
            "counts": {str(k): {str(d): int(v) for d, v in row.items()} for k, row in report.counts.iterrows()},
        }  # fmt: skip
        if out:
            write_json(out, findings)
        emit(findings)


def _render_shortcuts(report: Any) -> None:
    table = RichTable(title=f"telling {len(report.domains)} domains apart ({', '.join(report.domains)}): out-of-fold "
                      "probe, 95% bootstrap intervals", title_justify="left")  # fmt: skip
    for column in ("images seen", "domain AUC", "accuracy"):
        table.add_column(column, justify="left" if column == "images seen" else "right")
    for name, metrics in (("whole images", report.whole), ("borders only", report.border)):
        auc, bounds = metrics["macro"]["auc"], metrics["intervals"].get("auc") or [None, None]
        table.add_row(name, interval(auc, bounds), f"{metrics['accuracy']:.3f}")
    console.print(table)
    counts = RichTable(title="images per class and domain", title_justify="left")
    counts.add_column("class")
    for domain in report.counts.columns:
        counts.add_column(str(domain), justify="right")
    for name, row in report.counts.iterrows():
        counts.add_row(str(name), *(str(int(v)) for v in row))
    console.print(counts)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
