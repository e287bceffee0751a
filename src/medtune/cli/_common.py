"""Pieces every command shares: splitting the arguments (the one place ``key=value`` text is told from paths),
reading ``--config`` plus ``key=value`` into a `Config`, and progress bars."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer
from rich.console import Console

from medtune._progress import create_progress
from medtune.config import Config, load_config
from medtune.errors import ConfigError

#: The feature network of the commands on frozen features when neither a RUN nor ``backbone=`` is given.
DEFAULT_FEATURES = "tf_efficientnet_lite0"

#: The RUN argument of the commands that use a trained run.
RunArgument = Annotated[Path, typer.Argument(help="Run directory written by medtune train.")]
#: The model of predict: a run or an exported model.
ModelArgument = Annotated[
    Path, typer.Argument(help="Run directory written by medtune train, or a model.onnx written by medtune export.")
]
#: The images of predict and explain.
InputsArgument = Annotated[
    list[str], typer.Argument(help="Image files, folders (recursive), glob patterns or CSV files.")
]

# Logs and pipes get 120 columns instead of rich's 80, so metric tables with intervals keep one line per row.
console = Console(width=None if sys.stdout.isatty() else 120)


#: A ``key=value`` setting (a path that exists is a path even when it holds ``=``).
SETTING = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*=")


class Arguments(NamedTuple):
    """A command's free arguments, split (`split_arguments`)."""

    files: list[str]
    paths: list[str]
    settings: list[str]


def split_arguments(arguments: list[str], yaml_files: bool = False) -> Arguments:
    """Tell a command's free arguments apart: ``key=value`` settings, paths (data, runs) and, with `yaml_files`,
    YAML configuration files. The text stays text here; `medtune.config.parse_overrides` types the settings.

    >>> split_arguments(["data/x.npz", "epochs=3", "sweep.yaml"], yaml_files=True)
    Arguments(files=['sweep.yaml'], paths=['data/x.npz'], settings=['epochs=3'])
    """
    settings = [a for a in arguments if SETTING.match(a) and not Path(a).exists()]
    files = [a for a in arguments if yaml_files and a not in settings and a.lower().endswith((".yaml", ".yml"))]
    paths = [a for a in arguments if a not in settings and a not in files]
    return Arguments(files, paths, settings)


def data_and_settings(arguments: list[str]) -> tuple[str | None, list[str]]:
    """The one DATA argument (or None) and the ``key=value`` settings.

    >>> data_and_settings(["epochs=3", "data/x.npz"])
    ('data/x.npz', ['epochs=3'])
    """
    _, paths, settings = split_arguments(arguments)
    if len(paths) > 1:
        raise ConfigError(f"give one DATA argument, got {paths}; settings are written key=value")
    return (paths[0] if paths else None), settings


def build_config(config_file: Path | None, overrides: list[str] | None, **values: Any) -> Config:
    """defaults < ``--config`` YAML < ``key=value`` arguments < values the command fixes (such as ``data``)."""
    return load_config(config_file, overrides or [], **{k: v for k, v in values.items() if v is not None})


def data_and_source(arguments: list[str], command: str) -> tuple[str, str, list[str]]:
    """``DATA [RUN] key=value...`` of the commands on frozen features: the data, the feature source (the RUN, else
    ``backbone=``, else `DEFAULT_FEATURES`) and the settings.

    >>> data_and_source(["data.npz", "backbone=resnet18", "label=x"], "medtune probe")
    ('data.npz', 'resnet18', ['backbone=resnet18', 'label=x'])
    """
    _, paths, settings = split_arguments(arguments)
    if not 1 <= len(paths) <= 2:
        raise ConfigError(f"give DATA, and optionally a RUN whose backbone gives the features: {command} DATA [RUN]")
    backbone = [s.split("=", 1)[1] for s in settings if s.startswith("backbone=")]
    source = paths[1] if len(paths) == 2 else (backbone[0] if backbone else DEFAULT_FEATURES)
    return paths[0], source, settings


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar for one task; yields ``advance(n)``."""
    with create_progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
