"""``medtune explain``: Grad-CAM maps of a trained run for new images, as pictures and arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import (
    CamMethod,
    ConfigOption,
    PrintConfigOption,
    RunArgument,
    command_keys,
    console,
    print_config,
    split_arguments,
)

#: The keys `medtune explain` reads.
EXPLAIN_KEYS = ("masks", "batch_size")


def explain_command(
    run: RunArgument,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT... [KEY=VALUE]...",
            help="Image files, folders (recursive), glob patterns or CSV files; then keys: masks=DIR|SEG_RUN (share "
            "of each map inside the mask), batch_size=N (default: 4 on the CPU, 16 on a GPU).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the maps and explanations.csv.")],
    method: Annotated[CamMethod, typer.Option("--method", help="The class activation map.")] = "gradcam",
    target: Annotated[
        str, typer.Option("--target", "-t", help="predicted (each image's top class) or a class name of the run.")
    ] = "predicted",
    layer: Annotated[
        str | None, typer.Option("--layer", help="Backbone module to explain (layer3, blocks.10.norm1); default: last.")
    ] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Explain every input image with a class activation map (exit 3: some unreadable).

    Unreadable files are listed with their error; the others get a map (PNG and .npy) and a row in
    explanations.csv.
    """
    from medtune.apply.explain import INDEX_FILE, explain

    _, paths, settings = split_arguments(inputs)
    keys = command_keys(config_file, settings, EXPLAIN_KEYS, "medtune explain")
    if show_config:
        print_config(keys)
    masks = keys.get("masks")
    results = explain(run, paths, out, method, target, layer, masks, keys.get("batch_size"))
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
    if len(failed):
        raise typer.Exit(1 if len(failed) == len(results) else 3)
