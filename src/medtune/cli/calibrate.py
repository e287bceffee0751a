"""``medtune calibrate``: conformal prediction sets fitted on a run's validation split, or (with DATA) the run's
prevalence or thresholds re-fitted to other data; each kept in the run by name."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.cli._common import (
    ConfigOption,
    PrintConfigOption,
    RunArgument,
    command_keys,
    console,
    data_and_settings,
    print_config,
)
from medtune.cli.evaluate import Split
from medtune.config import READING_KEYS
from medtune.errors import ConfigError


def calibrate_command(
    run: RunArgument,
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[DATA] [KEY=VALUE]...",
            help="Other DATA to fit prevalence or thresholds on, and its reading keys (label=, path=...).",
        ),
    ] = None,
    coverage: Annotated[
        float, typer.Option("--coverage", help="Share of images whose set should hold their true class.")
    ] = 0.9,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Name of the calibration in the run (conformal, prevalence or threshold)."),
    ] = None,
    unlabelled: Annotated[
        bool, typer.Option("--unlabelled", help="Estimate DATA's class prevalence without labels (EM).")
    ] = False,
    labelled: Annotated[
        int | None, typer.Option("--labelled", help="Use a seeded sample of N labelled images of DATA.")
    ] = None,
    split: Annotated[Split | None, typer.Option("--split", help="Of DATA (default: test, else all).")] = None,
    per_class: Annotated[
        bool, typer.Option("--per-class", help="Class-conditional (Mondrian) sets: every class covered, not the mean.")
    ] = False,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Calibrate a run: conformal prediction sets, or prevalence / thresholds for other data.

    Without DATA: fit split conformal prediction (APS scores, crepes) on the run's validation split; `predict
    --sets` then gives each image the set of classes that holds its true class with at least the chosen coverage.
    With DATA --unlabelled: estimate its class prevalence by EM on the run's probabilities (re-calibrated on
    validation first); with labelled DATA (or --labelled N of its images): re-choose the threshold (binary,
    per finding) or take the labels' prevalence (three or more classes). Use one with `predict --calibration NAME`;
    `evaluate --calibration NAME` shows the decisions before and after."""
    data, overrides = data_and_settings(arguments or [])
    keys = command_keys(config_file, overrides, READING_KEYS, "medtune calibrate")
    if show_config:
        print_config({"run": str(run), "data": data, **keys})
    if data is None:
        if unlabelled or labelled is not None:
            raise ConfigError("--unlabelled and --labelled re-fit the run to other data: give DATA after RUN")
        _conformal(run, coverage, name or "conformal", per_class)
        return
    if per_class:
        raise ConfigError("--per-class is for conformal sets, fitted without DATA: medtune calibrate RUN --per-class")
    from medtune.apply.calibrate import calibration_file
    from medtune.apply.recalibrate import calibrate_shift, summary_line

    shift = calibrate_shift(run, data, unlabelled=unlabelled, labelled=labelled, name=name,
                            keys=keys, split=split)  # fmt: skip
    console.print(f"{shift.kind} calibration {shift.name!r}: {summary_line(shift)}", highlight=False)
    for note in shift.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"written to {calibration_file(run, shift.name)}", highlight=False)
    console.print(f"use it: medtune predict {run} IMAGES... --calibration {shift.name} --out results.json; "
                  f"medtune evaluate {run} DATA --calibration {shift.name}", highlight=False)  # fmt: skip


def _conformal(run: object, coverage: float, name: str, per_class: bool) -> None:
    from medtune.apply.calibrate import calibrate, calibration_file

    found = calibrate(run, coverage, name, per_class=per_class)
    each = " for every class" if per_class else ""
    console.print(f"calibrated {name!r} on {len(found.scores)} validation images for {coverage:.0%} coverage{each}; "
                  f"written to {calibration_file(run, name)}", highlight=False)  # fmt: skip
    console.print(
        f"use it: medtune predict {run} IMAGES... --sets --out sets.json; medtune evaluate {run}", highlight=False
    )
