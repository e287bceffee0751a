"""``medtune explain``: Grad-CAM maps of a trained run for new images, as pictures and arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import InputsArgument, RunArgument, console


def explain_command(
    run: RunArgument,
    inputs: InputsArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the maps and explanations.csv.")],
    method: Annotated[
        str, typer.Option("--method", "-m", help="gradcam, gradcam++, scorecam, eigencam, hirescam or layercam.")
    ] = "gradcam",
    target: Annotated[
        str, typer.Option("--target", "-t", help="predicted (each image's top class) or a class name of the run.")
    ] = "predicted",
    layer: Annotated[
        str | None, typer.Option("--layer", help="Backbone module to explain (layer3, blocks.10.norm1); default: last.")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option("--masks", help="Masks named like the images, or a segmentation run: energy inside.")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size", min=1, help="Images per forward/backward pass (default: 4 on the CPU, 16 on a GPU)."
        ),
    ] = None,
) -> None:
    """Explain every input image with a class activation map; unreadable files are listed with their error."""
    from medtune.apply.explain import INDEX_FILE, explain

    results = explain(run, inputs, out, method, target, layer, masks, batch_size)
    failed = results[results["error"].notna()]
    explained = results[results["error"].isna()]
    layer_name = results["layer"].iloc[0]
    console.print(
        f"{len(explained)} image(s) explained with {method.lower()} at layer {layer_name}; "
        f"maps and {INDEX_FILE} written to {out}",
        highlight=False,
    )
    if masks is not None and len(explained):
        energy = explained["mask_energy"].dropna()
        mean = f"{energy.mean():.3f}" if len(energy) else "n/a"
        console.print(f"mean mask energy {mean} over {len(energy)} image(s) with a mask", highlight=False)
    for row in results[results["warning"].notna()].itertuples(index=False):
        console.print(f"[yellow]warning[/]: {row.file}: {row.warning}", highlight=False)
    for row in failed.itertuples(index=False):
        console.print(f"[yellow]unreadable[/]: {row.file}: {row.error}", highlight=False)
    if len(failed) == len(results):
        raise typer.Exit(1)
