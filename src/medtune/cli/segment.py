"""``medtune segment train|evaluate|predict``: segmentation runs (lung fields, tissue regions) on smp networks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import InputsArgument, build_config, console, data_and_settings, progress_bar
from medtune.cli._render import render_metrics
from medtune.cli.train import print_training_result

segment_app = typer.Typer(
    help="Train, evaluate and apply segmenters (smp architectures on timm encoders): a mask per image.",
    no_args_is_help=True,
)
SegmentRun = Annotated[Path, typer.Argument(help="Run directory written by medtune segment train.")]


@segment_app.command("train")
def segment_train_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="DATA (images) and key=value settings: masks=FOLDER (required), arch=, encoder=, loss=..."),
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file with the same keys.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<data>-<arch>-<encoder>).")
    ] = None,
) -> None:
    """Train a segmenter on images and their masks, keep its best and last checkpoints, and evaluate it on the
    test split (Dice, IoU, HD95 with intervals). The same command again resumes an interrupted run."""
    from medtune.fitting.train import train_and_report as train

    data, overrides = data_and_settings(arguments or [])
    config = build_config(config_file, overrides, data=data, task="segment")
    print_training_result(train(config, out))


@segment_app.command("evaluate")
def segment_evaluate_command(
    run: SegmentRun,
    data: Annotated[Path | None, typer.Argument(help="Other images to evaluate on (their masks: --masks).")] = None,
    masks: Annotated[Path | None, typer.Option("--masks", help="Masks of DATA, named like the images.")] = None,
    split: Annotated[str | None, typer.Option("--split", help="train, val, test or all (default: test).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for metrics.json, predictions.csv.")] = None,
) -> None:
    """Per-image Dice, IoU and 95% Hausdorff distance, with the means' 95% bootstrap intervals."""
    from medtune.apply.segment_eval import evaluate_segmenter

    result = evaluate_segmenter(run, data, split, masks, out)
    splits = ", ".join(result.metrics.get("split", [])) or split or "all"
    render_metrics(result.metrics, f"{run.name} on {Path(result.metrics['data']).name} ({splits})")
    console.print(f"written: {result.out}/metrics.json and predictions.csv (per image)", highlight=False)


@segment_app.command("predict")
def segment_predict_command(
    run: SegmentRun,
    inputs: InputsArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the masks (NAME.png, 0 and 255).")],
    postprocess: Annotated[
        str | None, typer.Option("--postprocess", help="none, or lungs: keep the two largest regions, fill holes.")
    ] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Average with the mirrored image.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 16,
) -> None:
    """A mask per input image at the input's own resolution; unreadable inputs are reported, the rest written."""
    from medtune.apply.predict import collect_inputs
    from medtune.apply.segment_predict import predict_masks

    total = len(collect_inputs(inputs))
    with progress_bar(f"segmenting {total} image(s)", total) as advance:
        results = predict_masks(run, inputs, out, postprocess, tta, batch_size, on_image=advance)
    failed = results[results["error"].notna()]
    console.print(f"{len(results) - len(failed)} mask(s) written to {out}", highlight=False)
    for row in failed.itertuples(index=False):
        console.print(f"[yellow]not segmented[/]: {row.file}: {row.error}", highlight=False)
    if len(failed) == len(results):
        raise typer.Exit(1)
