"""``medtune export``: a trained run as one ONNX file with its preprocessing inside, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from medtune.cli._common import console
from medtune.cli.queue import StorageOption, StudyOption, _storage
from medtune.errors import ConfigError


def export_command(
    run: Annotated[Path | None, typer.Argument(help="Run directory written by medtune train.")] = None,
    best: Annotated[bool, typer.Option("--best", help="Export the leaderboard's top finished run instead.")] = False,
    metric: Annotated[str, typer.Option("--metric", "-m", help="--best: rank by this (val_auc...).")] = "val_auc",
    study: StudyOption = None,
    storage: StorageOption = None,
    fmt: Annotated[Literal["onnx"], typer.Option("--format", "-f", help="onnx.")] = "onnx",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="The model file (default RUN/export/model.onnx).")
    ] = None,
    quantize: Annotated[
        Literal["int8"] | None,
        typer.Option("--quantize", help="int8: also write MODEL.int8.onnx (static, QDQ, per channel)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Keep an int8 model that loses more than 0.01 AUC.")] = False,
    exporter: Annotated[
        Literal["torchscript", "dynamo"],
        typer.Option("--exporter", help="torchscript (PyTorch's tracing exporter) or dynamo (torch.export)."),
    ] = "torchscript",
) -> None:
    """Export a run as one ONNX file with its preprocessing inside, checked against PyTorch.

    The run's best network: uint8 images (NHWC, at the working size) in, class probabilities out, with
    normalisation and softmax inside the graph and the classes, size and thresholds in its metadata. The export
    is checked against PyTorch on the run's test images and refused when they differ by more than 1e-4."""
    from medtune.deploy.export import export
    from medtune.runs.exported import parity_file

    if best == (run is not None):
        raise ConfigError("give a RUN to export, or --best for the leaderboard's top run (not both)")
    if best:
        from medtune.experiments.leaderboard import best_run

        run = best_run(_storage(storage), metric, study)
        console.print(f"the leaderboard's best run by {metric}: {run}", highlight=False, soft_wrap=True)
    result = export(run, out, fmt, quantize=quantize, force=force, exporter=exporter)
    parity = result.parity
    console.print(f"exported: {result.model} (ONNX opset {parity['opset']}, {parity['exporter']} exporter)",
                  highlight=False)  # fmt: skip
    console.print(
        f"parity with PyTorch on {parity['images']} {parity['split']} images: largest probability difference "
        f"{parity['max_abs_diff']:.2e}, {parity['agreement_of']} on {parity['agreement']:.1%} "
        f"(written to {parity_file(result.model)})",
        highlight=False,
    )
    if "guard" in parity:
        guard = parity["guard"]
        console.print(f"its guard beside it: {guard['model']}; same verdict as PyTorch on {guard['same_verdict']:.1%} "
                      f"of {guard['images']} images (largest score difference {guard['max_abs_diff']:.2e})",
                      highlight=False, soft_wrap=True)  # fmt: skip
    if "int8" in parity:
        int8 = parity["int8"]
        console.print(
            f"int8: {int8['file']}; test AUC {int8['fp32']['auc']:.4f} (fp32) vs {int8['int8']['auc']:.4f} (int8), "
            f"accuracy {int8['fp32']['accuracy']:.4f} vs {int8['int8']['accuracy']:.4f} on {int8['images']} images",
            highlight=False,
            soft_wrap=True,  # one line whatever the terminal's width (a long path once split "(fp32) vs")
        )
    console.print(f"predict with it: {parity['predict']}", highlight=False)
