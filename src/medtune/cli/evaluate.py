"""``medtune evaluate``: a trained run's metrics on its test split, or on other labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import RunArgument, console, data_and_settings
from medtune.cli._render import render_calibrated, render_guard, render_metrics
from medtune.config import parse_overrides


def evaluate_command(
    run: RunArgument,
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="Other labelled DATA to evaluate on, and key=value reading keys (label=, path=...)."),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="train, val, test or all (default: test, or all of other data).")
    ] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Horizontal-flip test-time augmentation.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for metrics.json and predictions.csv.")
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option("--calibration", help="A calibration kept in the run: show the decisions before and after it."),
    ] = None,
) -> None:
    """Metrics with 95% bootstrap intervals: accuracy, balanced accuracy, per-class precision / recall / F1 / AUC,
    confusion matrix, log loss and calibration error. Labels of other data are matched to the run's classes by
    name; images whose label matches none are left out and reported."""
    from medtune.apply.evaluate import evaluate

    data, overrides = data_and_settings(arguments or [])
    result = evaluate(run, data, split, parse_overrides(overrides or []), tta, out, calibration=calibration)
    splits = ", ".join(result.metrics.get("split", [])) or split or "all"
    render_metrics(result.metrics, f"{run.name} on {Path(result.metrics['data']).name} ({splits})")
    render_guard(result.metrics)
    if "calibrated" in result.metrics:
        render_calibrated(result.metrics["calibrated"])
    console.print(f"written: {result.out}/metrics.json and predictions.csv", highlight=False)
