"""The run directory: where a training run keeps everything needed to reproduce, resume and use it.

    runs/<name>/config.yaml        resolved configuration
    runs/<name>/split.csv          which image went to which split
    runs/<name>/history.csv        one row per epoch, epochs counted from 1 (as the training log says them)
    runs/<name>/checkpoints/       best.ckpt (the kept epoch) and last.ckpt, each embedding config, classes,
                                   preprocessing, version
    runs/<name>/kept.json          which epoch best.ckpt holds and why (best validation score, or the last epoch)
    runs/<name>/metrics.json       final evaluation with confidence intervals (present once the run finished)
    runs/<name>/predictions.csv    test-split predictions with probabilities
    runs/<name>/thresholds.json    multi-label: the threshold of each label, chosen on the validation split
    runs/<name>/report.html        the report page, its plots in report/
    runs/<name>/evaluations/       evaluations on other data, one folder each
    runs/<name>/network/           your own network's code (backbone=file.py:NAME): a copy and network.json
    runs/<name>/tracking.json      logger=mlflow: the MLflow store and run this run logs to (a resumed run goes on)
    runs/<name>/tensorboard/       logger=tensorboard: the event files

A run is never overwritten: the same configuration in an unfinished run resumes it, anything else gets a new
directory (default names) or an error (a named ``--out``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from medtune._io import write_text
from medtune._version import __version__
from medtune.config import Config
from medtune.errors import ConfigError, DataError
from medtune.models.custom import NetworkSource, is_custom
from medtune.runs.network import current_network, network_difference, write_network
from medtune.tasks import get_task, task_for

#: Folder that holds runs when no ``--out`` is given.
RUNS_DIR = "runs"
#: Keys that do not change what a run computes; a resumed run may differ in them.
RUNTIME_KEYS = frozenset(
    {"workers", "cache_dir", "devices", "accelerator", "report", "read_test", "guard", "shortcut_check", "logger",
     "tracking_uri", "tracking_experiment"}
)  # fmt: skip
#: Epochs are counted from this in history.csv, kept.json and every log line. Runs written before held 0-based
#: epochs: `read_history` reads such a file (its first epoch is 0) from 1, `Run.read_kept` reads a kept.json without
#: ``epoch_base`` from 1.
EPOCH_BASE = 1
#: Columns of history.csv, in order.
HISTORY_COLUMNS: tuple[str, ...] = get_task("classify").history_columns()
_GENERIC_STEMS = frozenset({"labels", "label", "train", "data", "dataset", "metadata", "manifest", "index", "images"})


@dataclass(frozen=True)
class Run:
    """Paths of one run directory: every file a run holds is named here and nowhere else.

    Args:
        path: the run directory (text or a path).
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))  # Run("runs/x") works as Run(Path("runs/x")) does

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def split_file(self) -> Path:
        return self.path / "split.csv"

    @property
    def history_file(self) -> Path:
        return self.path / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.ckpt"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    @property
    def kept_file(self) -> Path:
        """Which epoch's weights ``best.ckpt`` holds and why (`medtune.fitting.keep`)."""
        return self.path / "kept.json"

    def read_kept(self) -> dict[str, Any] | None:
        """``kept.json`` (which epoch's weights the run kept, by which rule and why; epochs from 1, also in a file
        written when they were counted from 0), or None when it is absent (older runs, and segmenters and
        multi-label runs, which keep the best validation epoch)."""
        if not self.kept_file.is_file():
            return None
        kept = json.loads(self.kept_file.read_text(encoding="utf-8"))
        if kept.get("epoch_base") != EPOCH_BASE:
            moved = {k: int(kept[k]) + 1 for k in ("epoch", "best_epoch", "last_epoch") if kept.get(k) is not None}
            kept = {**kept, **moved, "epoch_base": EPOCH_BASE}
        return kept

    @property
    def kept_epoch(self) -> int | None:
        """The epoch (from 1) whose weights the run kept, or None without ``kept.json`` (`read_kept`)."""
        kept = self.read_kept()
        return None if kept is None else int(kept["epoch"])

    @property
    def tracking_file(self) -> Path:
        """Where ``logger=mlflow`` logs this run: the store and the MLflow run's id (`medtune.fitting.tracking`)."""
        return self.path / "tracking.json"

    @property
    def tensorboard_dir(self) -> Path:
        """``logger=tensorboard``'s event files."""
        return self.path / "tensorboard"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions_file(self) -> Path:
        return self.path / "predictions.csv"

    @property
    def thresholds_file(self) -> Path:
        return self.path / "thresholds.json"

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def export_file(self) -> Path:
        """The ONNX model ``medtune export`` writes by default (its parity check beside it)."""
        return self.path / "export" / "model.onnx"

    @property
    def shortcuts_file(self) -> Path:
        """The class-by-source check of the training data (`medtune.features.shortcuts.table_shortcuts`)."""
        return self.path / "shortcuts.json"

    def read_shortcut_warnings(self) -> list[str]:
        """The warnings of ``shortcuts.json`` (none when the file is absent or unreadable)."""
        try:
            return list(json.loads(self.shortcuts_file.read_text(encoding="utf-8")).get("warnings", []))
        except (OSError, ValueError, AttributeError):
            return []

    @property
    def speed_file(self) -> Path:
        """The leaderboard's measured speed of the network, per machine."""
        return self.path / "speed.json"

    @property
    def evaluations(self) -> Path:
        """Folder of the evaluations on other data (``evaluations/<data>-<split>/``)."""
        return self.path / "evaluations"

    @property
    def network_dir(self) -> Path:
        """Your own network's code, copied (``backbone=path/to/file.py:NAME``; absent for timm backbones)."""
        return self.path / "network"

    @property
    def finished(self) -> bool:
        """True once training ended and the final evaluation was written."""
        return self.metrics_file.is_file() and self.best_checkpoint.is_file()

    def read_config(self) -> dict[str, Any]:
        """The saved configuration as a dict."""
        try:
            data = yaml.safe_load(self.config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"cannot read {self.config_file}: {exc}") from None
        if not isinstance(data, dict):
            raise DataError(f"{self.config_file} does not hold a configuration; delete the run directory")
        return data

    def read_history(self) -> pd.DataFrame:
        """``history.csv`` (an empty frame with its columns before the first epoch ends)."""
        return read_history(self.history_file)

    def read_metrics(self) -> dict[str, Any] | None:
        """``metrics.json``, or None before the run was evaluated."""
        if not self.metrics_file.is_file():
            return None
        try:
            return json.loads(self.metrics_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read {self.metrics_file}: {exc}; run `medtune evaluate {self.path}` again"
            ) from None

    def read_thresholds(self, classes: tuple[str, ...]) -> tuple[float, ...] | None:
        """The label thresholds of a multi-label run in class order, or None when ``thresholds.json`` is absent.

        Raises:
            DataError: the file is unreadable or lacks a label of the run.
        """
        if not self.thresholds_file.is_file():
            return None
        try:
            values = json.loads(self.thresholds_file.read_text(encoding="utf-8"))["thresholds"]
            return tuple(float(values[name]) for name in classes)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"cannot read the thresholds in {self.thresholds_file} ({exc!r}); delete it and run `medtune "
                f"evaluate {self.path}` to choose them again on the validation split"
            ) from None

    def write_config(self, config: Config) -> None:
        """Save the resolved configuration (atomically)."""
        text = yaml.safe_dump(config_values(config), sort_keys=False, allow_unicode=True)
        write_text(self.config_file, f"# medtune {__version__}: resolved configuration of this run\n{text}")


def config_values(config: Config) -> dict[str, Any]:
    """The configuration as plain YAML-ready values."""
    return config.model_dump(mode="json")


def history_columns(config: Config) -> tuple[str, ...]:
    """The columns of the history.csv of a run of `config`: its task's epoch metrics."""
    return task_for(config).history_columns()


def default_run_name(config: Config) -> str:
    """``<data>-<backbone>`` (segmentation: ``<data>-<arch>-<encoder>``): the data's file or folder name (its
    folder for generic names such as labels.csv).

    >>> from medtune.config import load_config
    >>> default_run_name(load_config(data="cxr3/labels.csv", backbone="resnet18"))
    'cxr3-resnet18'
    """
    if config.name:
        return config.name
    data = Path(config.data or "data")
    stem = data.stem if data.suffix else data.name
    if stem.lower() in _GENERIC_STEMS and data.parent.name:
        stem = data.parent.name
    network = task_for(config).network_name(config)
    if is_custom(network):  # nets/small.py:SmallNet -> SmallNet
        network = network.rpartition(":")[2]
    return f"{stem}-{network}".replace(os.sep, "-")


def _differences(saved: dict[str, Any], config: Config) -> list[str]:
    current = config_values(config)
    keys = sorted((set(saved) | set(current)) - RUNTIME_KEYS)
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]


def prepare_run(config: Config, out: str | os.PathLike | None = None) -> tuple[Run, bool]:
    """Choose the run directory for a resolved `config` and say whether training resumes there.

    With `out`: a new directory is created; an unfinished run of the same configuration resumes; a finished run,
    or one with another configuration, is an error (nothing is overwritten). Without `out`: ``runs/<name>``,
    then ``runs/<name>-2``, ``-3``...: the first unfinished run of the same configuration resumes, else the first
    free name is used.

    Returns:
        The run and True when it resumes from ``checkpoints/last.ckpt``.

    Raises:
        ConfigError: `out` holds a finished run or a run of another configuration, or a folder that is not a run.
    """
    network = current_network(config)
    if out is not None:
        run = Run(Path(out))
        state = _state(run, config, network)
        if state in ("new", "restart"):
            return _create(run, config, network), False
        if state == "resume":
            return run, True
        raise ConfigError(_refusal(run, state, config, network))
    base = Path(RUNS_DIR) / default_run_name(config)
    for n in range(1, 10_000):
        run = Run(base if n == 1 else base.with_name(f"{base.name}-{n}"))
        state = _state(run, config, network)
        if state in ("new", "restart"):
            return _create(run, config, network), False
        if state == "resume":
            return run, True
    raise ConfigError(f"{base} and 9999 numbered variants exist; pass --out to name the run")


def _state(run: Run, config: Config, network: NetworkSource | None) -> str:
    if not run.path.exists() or (run.path.is_dir() and not any(run.path.iterdir())):
        return "new"
    if not run.config_file.is_file():
        return "foreign"
    if _differences(run.read_config(), config) or network_difference(run.network_dir, network):
        return "different"
    if run.finished:
        return "finished"
    # killed before its first checkpoint: nothing to lose, so it starts again in place
    return "resume" if run.last_checkpoint.is_file() else "restart"


def _refusal(run: Run, state: str, config: Config, network: NetworkSource | None) -> str:
    if state == "foreign":
        return f"{run.path} exists and is not a medtune run (no config.yaml); choose another --out"
    if state == "finished":
        return (
            f"{run.path} already holds a finished run of this configuration; choose another --out, or delete the "
            "folder to train it again"
        )
    changed = network_difference(run.network_dir, network)
    diffs = "; ".join([*_differences(run.read_config(), config)[:8], *([changed] if changed else [])])
    return (
        f"{run.path} holds a run of another configuration ({diffs}); choose another --out, or run the same "
        "configuration to resume it"
    )


def _create(run: Run, config: Config, network: NetworkSource | None) -> Run:
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    write_network(run.network_dir, network)
    run.write_config(config)
    return run


def open_run(path: str | os.PathLike) -> Run:
    """Open an existing run directory for evaluation or prediction.

    Raises:
        DataError: `path` is not a run directory or holds no checkpoint yet.
    """
    run = Run(Path(path))
    if not run.config_file.is_file():
        raise DataError(f"{run.path} is not a medtune run (no config.yaml); give a folder that `medtune train` wrote")
    if not run.best_checkpoint.is_file() and not run.last_checkpoint.is_file():
        raise DataError(f"{run.path} has no checkpoint yet; train it first (run the same `medtune train` again)")
    return run


def read_history(path: str | os.PathLike) -> pd.DataFrame:
    """Read a ``history.csv`` (an empty frame with the columns when it does not exist yet), its epochs counted from
    1: a file written when they were counted from 0 (its first epoch is 0) is read with each moved up by one."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=list(HISTORY_COLUMNS))
    history = pd.read_csv(path)
    if "epoch" in history and len(history) and history["epoch"].min() == 0:
        history["epoch"] = history["epoch"] + 1
    return history
