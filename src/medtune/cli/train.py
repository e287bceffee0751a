"""``medtune train``: data (or a YAML file naming it) to a trained and evaluated run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medtune.cli._common import build_config, console, data_and_settings
from medtune.cli._render import render_metrics
from medtune.errors import ConfigError


def train_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="DATA (folder, CSV/TSV or .npz) and key=value settings, e.g. epochs=10 lr=1e-3"),
    ] = None,
    config_file: Annotated[Path | None, typer.Option("--config", "-c", help="YAML file with the same keys.")] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<data>-<backbone>).")
    ] = None,
) -> None:
    """Train a classifier, keep its checkpoints (the last epoch, or the best one when validation clearly says
    so), and evaluate it on the test split.

    Running the same command again resumes an interrupted run; a finished run is never overwritten.
    """
    from medtune.fitting.train import train_and_report as train

    data, overrides = data_and_settings(arguments or [])
    config = build_config(config_file, overrides, data=data)
    print_training_result(train(config, out))


def demo_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="key=value settings, e.g. epochs=3 image_size=64", metavar="KEY=VALUE"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/demo).")] = None,
) -> None:
    """Train, evaluate and report on the data that ships with medtune (PneumoniaMNIST, 28 px chest X-rays).

    The same as `medtune train` on that file: no download, no network.
    """
    from medtune.data import demo_data

    data, overrides = data_and_settings(arguments or [])
    if data is not None:
        raise ConfigError(f"medtune demo trains on its own data; got {data!r}: run `medtune train {data}` instead")
    arguments = [str(demo_data()), *overrides]
    console.print(f"demo: medtune train {' '.join(arguments)}", highlight=False, soft_wrap=True)
    train_command(arguments, None, out or Path("runs") / "demo")


def print_training_result(result: Any) -> None:
    """What `medtune train` and `medtune segment train` print at the end: the run, its metrics on the evaluated
    split, its files, and its report (or why there is none)."""
    verb = "resumed and finished" if result.resumed else "finished"
    split = ", ".join(result.metrics.get("split", [])) or "test"
    console.print(f"[bold]run {verb}:[/] {result.run.path}", highlight=False)
    run = result.run
    kept = run.read_kept()
    if kept:
        console.print(f"kept the weights of epoch {kept['epoch'] + 1}: {kept['reason']}", highlight=False)
    render_metrics(result.metrics, f"{'Kept' if kept else 'Best'} checkpoint on the {split} split")
    files = (run.predictions_file.name, run.history_file.name, run.best_checkpoint.relative_to(run.path).as_posix())
    console.print(f"files: {run.metrics_file}, {', '.join(files)}", highlight=False)
    if result.report:
        console.print(f"report: {result.report}", highlight=False)
    if result.report_error:
        console.print(f"[yellow]warning:[/] {result.report_error}", highlight=False)
