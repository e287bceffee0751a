"""``medtune report``: a self-contained HTML page per run, and a comparison page for several runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import console


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="One or more run directories written by medtune train.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="The page: RUN/report.html for one run; comparison.html beside several."),
    ] = None,
    mistakes: Annotated[int, typer.Option("--mistakes", min=0, help="Most confident mistakes to show (0: none).")] = 12,
    method: Annotated[str, typer.Option("--method", help="Class activation map of the mistakes.")] = "gradcam",
    layer: Annotated[
        str | None, typer.Option("--layer", help="Backbone layer of the maps (default: chosen automatically).")
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(
            "--masks", help="Folder of masks named like the images, or a segmentation run: share of each map inside."
        ),
    ] = None,
) -> None:
    """Training curves, ROC and precision-recall curves, confusion matrices, calibration, per-class results, the
    most confident mistakes with Grad-CAM, the configuration and the data, as one HTML page that needs no network
    (and a PNG per plot beside it). Several runs also get a page with their curves overlaid and a comparison table."""
    from medtune.reports import create_comparison, create_report

    for run in runs:
        page = create_report(run, out if len(runs) == 1 else None, mistakes, method, masks, layer)
        console.print(f"report: {page} (plots in {page.with_suffix('')}/)", highlight=False)
    if len(runs) > 1:
        page = create_comparison(runs, out)
        console.print(f"comparison: {page}", highlight=False)
