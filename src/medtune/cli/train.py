"""``medtune train``: data (or a YAML file naming it) to a trained and evaluated run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from medtune.cli._common import (
    ConfigOption,
    JsonOption,
    PrintConfigOption,
    build_config,
    console,
    data_and_settings,
    json_mode,
    print_config,
)
from medtune.cli._render import render_metrics
from medtune.errors import ConfigError


def train_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DATA [KEY=VALUE]...",
            help="A folder, CSV/TSV manifest or .npz, then keys, e.g. epochs=10 lr=1e-3 (every key: medtune keys).",
        ),
    ] = None,
    config_file: ConfigOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (default runs/<data>-<backbone>).")
    ] = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train a classifier and score it on the test split.

    Keeps its checkpoints (the last epoch, or the best one when validation clearly says so), evaluates it on the
    test split and writes its report page. Running the same command again resumes an interrupted run; a finished
    run is never overwritten.
    """
    data, overrides = data_and_settings(arguments or [])
    run_training(build_config(config_file, overrides, data=data), out, show_config, as_json)


def run_training(config: Any, out: Path | None, show_config: bool, as_json: bool) -> None:
    """What `medtune train` and `medtune segment train` do with their configuration: print it (``--print-config``),
    or train, print the result and, with ``--json``, the result as JSON."""
    from medtune.fitting.train import train_and_report as train

    if show_config:
        print_config(config)
    with json_mode(as_json) as emit:
        result = train(config, out)
        print_training_result(result)
        emit(training_payload(result))


def demo_command(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="Keys, e.g. epochs=3 image_size=64 (every key: medtune keys).", metavar="[KEY=VALUE]..."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default runs/demo).")] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train, evaluate and report on the data that ships with medtune (PneumoniaMNIST, 28 px).

    The same as `medtune train` on that file: no download, no network.
    """
    from medtune.data import demo_data

    data, overrides = data_and_settings(arguments or [])
    if data is not None:
        raise ConfigError(f"medtune demo trains on its own data; got {data!r}: run `medtune train {data}` instead")
    arguments = [str(demo_data()), *overrides]
    if not show_config:  # with --json, standard output holds the JSON alone
        (Console(stderr=True) if as_json else console).print(f"demo: medtune train {' '.join(arguments)}",
                                                              highlight=False, soft_wrap=True)  # fmt: skip
    train_command(arguments, config_file, out or Path("runs") / "demo", show_config, as_json)


def training_payload(result: Any) -> dict[str, Any]:
    """What ``train --json`` prints: the run, whether it resumed, the kept epoch, the metrics and the report."""
    return {
        "run": str(result.run.path),
        "resumed": result.resumed,
        "kept": result.run.read_kept(),
        "metrics": result.metrics,
        "report": str(result.report) if result.report else None,
        "report_error": result.report_error,
    }


def print_training_result(result: Any) -> None:
    """What `medtune train` and `medtune segment train` print at the end: the run, its metrics on the evaluated
    split, its files, and its report (or why there is none)."""
    verb = "resumed and finished" if result.resumed else "finished"
    split = ", ".join(result.metrics.get("split", [])) or "test"
    console.print(f"[bold]run {verb}:[/] {result.run.path}", highlight=False)
    run = result.run
    kept = run.read_kept()
    if kept:
        console.print(f"kept the weights of epoch {kept['epoch']}: {kept['reason']}", highlight=False)
    render_metrics(result.metrics, f"{'Kept' if kept else 'Best'} checkpoint on the {split} split")
    files = (run.predictions_file.name, run.history_file.name, run.best_checkpoint.relative_to(run.path).as_posix())
    console.print(f"files: {run.metrics_file}, {', '.join(files)}", highlight=False)
    if result.report:
        console.print(f"report: {result.report}", highlight=False)
    if result.report_error:
        console.print(f"[yellow]warning:[/] {result.report_error}", highlight=False)
