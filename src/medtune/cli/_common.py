"""Pieces every command shares: splitting the arguments (the one place ``key=value`` text is told from paths),
reading ``--config`` plus ``key=value`` into a `Config`, and progress bars."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

import typer
from rich.console import Console

from medtune._progress import create_progress
from medtune.config import Config, check_keys, load_config, parse_overrides, read_yaml
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

#: The class activation maps `medtune explain` and `medtune report` draw (`medtune.cams.methods`).
CamMethod = Literal["gradcam", "gradcam++", "scorecam", "eigencam", "hirescam", "layercam"]


def comma_choices(*choices: str) -> dict[str, Any]:
    """``typer.Option`` arguments for a comma-separated list of `choices` (``--checks duplicates,labels``): each
    item is checked while the arguments are parsed (exit 2), and completion offers them."""

    def check(value: str | None) -> str | None:
        items = [v.strip() for v in (value or "").split(",") if v.strip()]
        bad = [v for v in items if v not in choices]
        if bad:
            raise typer.BadParameter(f"{', '.join(map(repr, bad))}: choose from {', '.join(choices)} (comma-separated)")
        return ",".join(items) if value is not None else None

    def complete(incomplete: str) -> list[str]:
        done, _, last = incomplete.rpartition(",")
        return [f"{done},{c}" if done else c for c in choices if c.startswith(last)]

    return {"callback": check, "autocompletion": complete, "metavar": "|".join(choices)}


#: ``--config FILE``: the same keys as ``key=value``, from a YAML file (every command that takes keys).
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML file of keys (key=value arguments win over it).")
]
#: ``--print-config``: the resolved configuration, then exit (every command that takes keys).
PrintConfigOption = Annotated[
    bool, typer.Option("--print-config", help="Print the resolved configuration (YAML) and exit.")
]
#: ``--json``: the result as JSON on standard output, everything else on standard error.
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on standard output.")]

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


def data_and_source(arguments: list[str], command: str, old_order: bool = False) -> tuple[str, str, list[str]]:
    """``DATA [RUN] key=value...`` of the commands on frozen features: the data, the feature source (the RUN, else
    ``backbone=``, else `DEFAULT_FEATURES`) and the settings. With `old_order` (``embed`` and ``index``, which
    took ``SOURCE DATA`` before 0.2), a source given first still works, with a line that names the new order.

    >>> data_and_source(["data.npz", "backbone=resnet18", "label=x"], "medtune probe")
    ('data.npz', 'resnet18', ['backbone=resnet18', 'label=x'])
    """
    _, paths, settings = split_arguments(arguments)
    if old_order and len(paths) == 2 and _is_source(paths[0]) and not _is_source(paths[1]):
        source, data = paths
        is_run = Path(source).exists()
        _deprecated(f"`{command} {source} {data}` is now written `{command} {data} "
                    f"{source if is_run else 'backbone=' + source}` (DATA first)")  # fmt: skip
        paths, settings = ([data, source], settings) if is_run else ([data], [*settings, f"backbone={source}"])
    if not 1 <= len(paths) <= 2:
        raise ConfigError(f"give DATA, and optionally a RUN whose backbone gives the features: {command} DATA [RUN]")
    backbone = [s.split("=", 1)[1] for s in settings if s.startswith("backbone=")]
    source = paths[1] if len(paths) == 2 else (backbone[0] if backbone else DEFAULT_FEATURES)
    return paths[0], source, settings


def _is_source(path: str) -> bool:
    """A run directory (it holds config.yaml), or a name that is no file or folder (a backbone's name)."""
    return (Path(path) / "config.yaml").is_file() or not Path(path).exists()


def _deprecated(line: str) -> None:
    from medtune.cli._spelling import REMOVED_IN

    Console(stderr=True).print(f"[yellow]deprecated:[/] {line}; the old spelling goes in medtune {REMOVED_IN}",
                               highlight=False, soft_wrap=True)  # fmt: skip


@contextmanager
def progress_bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar for one task; yields ``advance(n)``."""
    with create_progress() as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def command_keys(
    config_file: Path | None, settings: Iterable[str], allowed: Iterable[str], command: str
) -> dict[str, Any]:
    """The keys a command reads (`allowed`), from ``--config`` and ``key=value``, typed and checked by the schema.

    A YAML file may hold other keys (a training configuration reused): those are left alone. A ``key=value`` the
    command does not read is refused, naming the keys it does read.

    >>> command_keys(None, ["tta=true", "masks=lungs/"], ("tta", "masks", "path"), "medtune predict")
    {'tta': True, 'masks': 'lungs/'}
    """
    allowed = tuple(allowed)
    given = check_keys(parse_overrides(settings), allowed, command)  # a stray key=value is refused before the file
    from_file = {k: v for k, v in (read_yaml(config_file) if config_file else {}).items() if k in allowed}
    return check_keys({**from_file, **given}, allowed, command)


def print_config(values: Config | Mapping[str, Any]) -> None:
    """``--print-config``: the resolved configuration as YAML on standard output; the command then exits 0."""
    import yaml

    data = values.model_dump(mode="json") if isinstance(values, Config) else dict(values)
    sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    raise typer.Exit(0)


@contextmanager
def json_mode(enabled: bool) -> Iterator[Callable[[Any], None]]:
    """With ``--json``: what the command prints goes to standard error, and the yielded ``emit(payload)`` writes
    the JSON to standard output; without it, ``emit`` does nothing."""
    if not enabled:
        yield lambda payload: None
        return
    stdout = sys.stdout
    found: list[Any] = []
    with redirect_stdout(sys.stderr):
        yield found.append
    for payload in found:
        stdout.write(json.dumps(_finite(payload), indent=1, default=str, allow_nan=False) + "\n")
    stdout.flush()


def _finite(value: Any) -> Any:
    """NaN and infinities as null: standard JSON has no word for them (an AUC of a class without positives)."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
