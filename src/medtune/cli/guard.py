"""``medtune guard``: fit a run's guard (does an image belong here?) on its training and validation images."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.cli._common import RunArgument, console


def guard_command(
    run: RunArgument,
    share: Annotated[
        float, typer.Option("--share", help="Share of the validation images that should pass (the calibration).")
    ] = 0.95,
    neighbours: Annotated[
        int, typer.Option("--k", min=1, help="The score is the distance to the k-th neighbour.")
    ] = 10,
) -> None:
    """Fit the guard that flags images unlike the run's training images.

    The guard: the distance of an image to the run's training images, in the run's own features and in a
    frozen ImageNet encoder's, calibrated so that --share of the validation images pass. `predict` then marks
    each image in_distribution (or not) with its guard_score, and `--reject` withholds the flagged answers."""
    from medtune.apply.guard import fit_guard, guard_folder

    guard = fit_guard(run, share, neighbours)
    meta = guard.meta
    console.print(f"guard fitted on {meta['references']} training images; {meta['accepted_validation']:.1%} of "
                  f"{meta['validation_images']} validation images pass; {1000 * meta['seconds_per_image']:.1f} ms "
                  f"per image; written to {guard_folder(run)}", highlight=False)  # fmt: skip
