"""``medtune report``: a self-contained HTML page per run, and a comparison page for several runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import CamMethod, command_keys, console, split_arguments
from medtune.errors import ConfigError


def report_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN... [KEY=VALUE]...",
            help="One or more run directories written by medtune train; then masks=DIR|SEG_RUN (share of each "
            "mistake's map inside its mask).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The page: RUN/report.html for one run; comparison.html beside several."),
    ] = None,
    mistakes: Annotated[int, typer.Option("--mistakes", min=0, help="Most confident mistakes to show (0: none).")] = 12,
    method: Annotated[CamMethod, typer.Option("--method", help="Class activation map of the mistakes.")] = "gradcam",
    layer: Annotated[
        str | None, typer.Option("--layer", help="Backbone layer of the maps (default: chosen automatically).")
    ] = None,
) -> None:
    """Write a run's report page (or a comparison of several): one HTML file, no network.

    Training curves, ROC and precision-recall curves, confusion matrices, calibration, per-class results, the most
    confident mistakes with Grad-CAM, the configuration and the data (and a PNG per plot beside it). Several runs
    also get a page with their curves overlaid and a comparison table.
    """
    _, paths, settings = split_arguments(arguments)
    keys = command_keys(None, settings, ("masks",), "medtune report")
    masks = keys.get("masks")
    runs = [Path(p) for p in paths]
    if not runs:
        raise ConfigError("give one or more run directories: medtune report RUN [RUN...]")
    from medtune.reports import create_comparison, create_report

    for run in runs:
        page = create_report(run, out if len(runs) == 1 else None, mistakes, method, masks, layer)
        console.print(f"report: {page} (plots in {page.with_suffix('')}/)", highlight=False)
    if len(runs) > 1:
        page = create_comparison(runs, out)
        console.print(f"comparison: {page}", highlight=False)
