"""``medtune segment train|evaluate|predict``: segmentation runs (lung fields, tissue regions) on smp networks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    build_config,
    command_keys,
    console,
    data_and_settings,
    print_config,
    progress_bar,
    split_arguments,
)
from medtune.cli._render import render_metrics
from medtune.cli.evaluate import Split
from medtune.cli.train import run_training

segment_app = typer.Typer(
    help="Train, evaluate and apply segmenters (smp on timm encoders): a mask per image.",
    no_args_is_help=True,
)
SegmentRun = Annotated[Path, typer.Argument(help="Run directory written by medtune segment train.")]


@segment_app.command("train")
def segment_train_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DATA [KEY=VALUE]...",
            help="The images, then keys: masks=FOLDER (required), arch=, encoder=, loss=... (medtune keys --task "
            "segment).",
        ),
    ] = None,
    config_file: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<data>-<arch>-<encoder>).")
    ] = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a segmenter on images and their masks, and score it on the test split.

    Keeps its best and last checkpoints and evaluates it on the test split (Dice, IoU, HD95 with intervals). The
    same command again resumes an interrupted run.
    """
    data, overrides = data_and_settings(arguments or [])
    run_training(build_config(config_file, overrides, data=data, task="segment"), out, show_config, as_json)


@segment_app.command("evaluate")
def segment_evaluate_command(
    run: SegmentRun,
    arguments: Annotated[
        list[str] | None,
        typer.Argument(metavar="[DATA] [KEY=VALUE]...", help="Other images to evaluate on, and masks=DIR (theirs)."),
    ] = None,
    split: Annotated[Split | None, typer.Option("--split", help="Default: test.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for metrics.json, predictions.csv.")] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Score a segmenter: per-image Dice, IoU and HD95, the means with 95% bootstrap intervals."""
    from medtune.apply.segment_eval import evaluate_segmenter

    data, settings = data_and_settings(arguments or [])
    keys = command_keys(config_file, settings, ("masks",), "medtune segment evaluate")
    if show_config:
        print_config({"run": str(run), "data": data, **keys})
    result = evaluate_segmenter(run, Path(data) if data else None, split, keys.get("masks"), out)
    splits = ", ".join(result.metrics.get("split", [])) or split or "all"
    render_metrics(result.metrics, f"{run.name} on {Path(result.metrics['data']).name} ({splits})")
    console.print(f"written: {result.out}/metrics.json and predictions.csv (per image)", highlight=False)


#: The keys `medtune segment predict` reads.
SEGMENT_PREDICT_KEYS = ("postprocess", "tta", "batch_size")


@segment_app.command("predict")
def segment_predict_command(
    run: SegmentRun,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT... [KEY=VALUE]...",
            help="Image files, folders (recursive), glob patterns or CSV files; then keys: postprocess=none|lungs "
            "(keep the two largest regions, fill holes), tta=true, batch_size=16.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the masks (NAME.png, 0 and 255).")],
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Write a mask per input image at its own resolution (exit 3 when some could not be read)."""
    from medtune.apply.predict import collect_inputs
    from medtune.apply.segment_predict import predict_masks

    _, paths, settings = split_arguments(inputs)
    keys = command_keys(config_file, settings, SEGMENT_PREDICT_KEYS, "medtune segment predict")
    if show_config:
        print_config(keys)
    inputs = paths
    postprocess, tta, batch_size = keys.get("postprocess"), keys.get("tta"), keys.get("batch_size", 16)
    total = len(collect_inputs(inputs))
    with progress_bar(f"segmenting {total} image(s)", total) as advance:
        results = predict_masks(run, inputs, out, postprocess, tta, batch_size, on_image=advance)
    failed = results[results["error"].notna()]
    console.print(f"{len(results) - len(failed)} mask(s) written to {out}", highlight=False)
    for row in failed.itertuples(index=False):
        console.print(f"[yellow]not segmented[/]: {row.file}: {row.error}", highlight=False)
    if len(failed):
        raise typer.Exit(1 if len(failed) == len(results) else 3)
