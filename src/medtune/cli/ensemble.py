"""``medtune ensemble``: several trained classifiers as one run that averages their probabilities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import command_keys, console, split_arguments
from medtune.cli._render import render_metrics


def ensemble_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN... [KEY=VALUE]...",
            help="Two or more finished classifier runs (same classes and split); report=false skips report.html.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the ensemble run (new or empty).")],
) -> None:
    """Average the class probabilities of trained runs and score the average on their test split.

    The folder is a run: evaluate, predict, explain (the first member's maps), report, export and serve take it.
    Members must share classes, data, working size and split (train them with split_file=FIRST_RUN/split.csv
    unless the data gives its splits).
    """
    from medtune.experiments.ensemble import create_ensemble
    from medtune.reports import write_run_report

    _, runs, settings = split_arguments(arguments)
    report = command_keys(None, settings, ("report",), "medtune ensemble").get("report", True)
    result = create_ensemble([Path(r) for r in runs], out)
    console.print(f"[bold]ensemble of {len(result.members)} runs:[/] {result.run.path}", highlight=False)
    split = ", ".join(result.metrics.get("split", [])) or "test"
    render_metrics(result.metrics, f"Averaged probabilities on the {split} split")
    console.print(f"files: {result.run.metrics_file}, predictions.csv, ensemble.json, checkpoints/best.ckpt",
                  highlight=False)  # fmt: skip
    if report:
        page, error = write_run_report(result.run.path)
        console.print(f"report: {page}" if page else f"[yellow]warning:[/] {error}", highlight=False)
