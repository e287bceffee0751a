"""``medtune evaluate``: a trained run's metrics on its test split, or on other labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    RunArgument,
    command_keys,
    console,
    data_and_settings,
    json_mode,
    print_config,
)
from medtune.cli._render import render_calibrated, render_guard, render_metrics
from medtune.config import READING_KEYS

#: A split of the data, or all of it.
Split = Literal["train", "val", "test", "all"]
#: The keys `medtune evaluate` reads: how other data is read, and test-time augmentation.
EVALUATE_KEYS = (*READING_KEYS, "tta")


def evaluate_command(
    run: RunArgument,
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[DATA] [KEY=VALUE]...",
            help="Other labelled DATA to evaluate on, and keys: how to read it (label=, path=, masks=...) and tta=.",
        ),
    ] = None,
    split: Annotated[Split | None, typer.Option("--split", help="Default: test, or all of other data.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder for metrics.json and predictions.csv.")
    ] = None,
    calibration: Annotated[
        str | None,
        typer.Option("--calibration", help="A calibration kept in the run: show the decisions before and after it."),
    ] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Score a run with 95% bootstrap intervals, on its test split or on other labelled data.

    Accuracy, balanced accuracy, per-class precision / recall / F1 / AUC, confusion matrix, log loss and
    calibration error. Labels of other data are matched to the run's classes by name; images whose label matches
    none are left out and reported.
    """
    from medtune.apply.evaluate import evaluate

    data, settings = data_and_settings(arguments or [])
    keys = command_keys(config_file, settings, EVALUATE_KEYS, "medtune evaluate")
    if show_config:
        print_config({"run": str(run), "data": data, **keys})
    tta = keys.pop("tta", None)
    with json_mode(as_json) as emit:
        result = evaluate(run, data, split, keys, tta, out, calibration=calibration)
        splits = ", ".join(result.metrics.get("split", [])) or split or "all"
        render_metrics(result.metrics, f"{run.name} on {Path(result.metrics['data']).name} ({splits})")
        render_guard(result.metrics)
        if "calibrated" in result.metrics:
            render_calibrated(result.metrics["calibrated"])
        console.print(f"written: {result.out}/metrics.json and predictions.csv", highlight=False)
        emit({"run": str(run), "out": str(result.out), "metrics": result.metrics})
