"""``medtune calibrate``: conformal prediction sets fitted on a run's validation split and kept in the run."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.cli._common import RunArgument, console


def calibrate_command(
    run: RunArgument,
    coverage: Annotated[
        float, typer.Option("--coverage", help="Share of images whose set should hold their true class.")
    ] = 0.9,
    name: Annotated[str, typer.Option("--name", help="Name of the calibration in the run.")] = "conformal",
) -> None:
    """Fit split conformal prediction (APS scores, crepes) on the run's validation split: `predict --sets` then
    gives each image the set of classes that holds its true class with at least the chosen coverage, and
    `evaluate` reports the coverage reached with its interval and the mean set size."""
    from medtune.apply.calibrate import calibrate, calibration_file

    found = calibrate(run, coverage, name)
    console.print(f"calibrated {name!r} on {len(found.scores)} validation images for {coverage:.0%} coverage; "
                  f"written to {calibration_file(run, name)}", highlight=False)  # fmt: skip
    console.print(
        f"use it: medtune predict {run} IMAGES... --sets --out sets.json; medtune evaluate {run}", highlight=False
    )
