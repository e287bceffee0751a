"""``medtune tune DATA --budget 30m``: a search that spends a time budget and returns one run."""

from __future__ import annotations

from typing import Annotated

import typer

from medtune.cli._common import ConfigOption, PrintConfigOption, console, data_and_settings, print_config
from medtune.cli.queue import StorageOption
from medtune.config import parse_overrides, read_yaml
from medtune.errors import ConfigError


def tune_command(
    arguments: Annotated[
        list[str], typer.Argument(metavar="DATA [KEY=VALUE]...", help="The data, then keys to fix (not searched).")
    ],
    budget: Annotated[str, typer.Option("--budget", "-b", help="Wall-clock time for all of it: 30m, 2h, 1h30m.")] = (
        "30m"
    ),
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, max=64, help="Worker processes here.")] = 1,
    study: Annotated[
        str | None, typer.Option("--study", "-s", help="Study name (default tune-DATA); an existing one continues.")
    ] = None,
    max_epochs: Annotated[
        int, typer.Option("--max-epochs", min=1, help="Epochs of a trial that is never stopped (Hyperband's top).")
    ] = 8,
    storage: StorageOption = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Search the settings for a time budget and keep the best as one run.

    Searches backbone, size, learning rate, weight decay, smoothing, augmentation and freezing (TPE with Hyperband
    pruning over epochs) for --budget, rank trials by validation log loss, and make the best (or the mean of the
    best, where that is better on validation) one run, evaluated once on the test split. Run it again after an
    interruption: it continues the study with the budget left. More machines: medtune queue run --study NAME."""
    from medtune.experiments.tune import tune

    data, overrides = data_and_settings(arguments)
    fixed = {**(read_yaml(config_file) if config_file else {}), **parse_overrides(overrides or [])}
    if show_config:
        print_config({"data": data, "budget": budget, "max_epochs": max_epochs, **fixed})
    if data is None:
        raise ConfigError("give DATA to tune on: a folder, a CSV/TSV manifest or an .npz file")
    result = tune(data, fixed, budget, workers, storage, study, max_epochs,
                  log=lambda line: console.print(line, highlight=False, soft_wrap=True))  # fmt: skip
    chosen = result.summary["chosen"]
    console.print(f"chosen: {chosen['why']}; settings {chosen['params']}", highlight=False, soft_wrap=True)
    console.print(f"the result is a run: medtune report {result.run}; medtune export {result.run}", highlight=False)
