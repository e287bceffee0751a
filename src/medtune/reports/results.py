"""What a report is drawn from: the files of a run directory, read once into one object."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medtune.config import monitor_mode
from medtune.errors import DataError
from medtune.runs.run import Run, read_history
from medtune.tasks import Task, task_of_meta


@dataclass(frozen=True)
class RunResults:
    """The files of one run, read.

    Attributes:
        run: the run directory.
        config: ``config.yaml`` as a dict.
        history: ``history.csv`` (empty before the first epoch ends).
        metrics: ``metrics.json``, or None when the run has not been evaluated yet.
        predictions: ``predictions.csv`` (the evaluated split, a probability column per class), or None.
        split: ``split.csv`` (id, split, label, group), or None.
    """

    run: Run
    config: dict[str, Any]
    history: pd.DataFrame
    metrics: dict[str, Any] | None
    predictions: pd.DataFrame | None
    split: pd.DataFrame | None

    @property
    def name(self) -> str:
        return self.run.path.name

    @property
    def classes(self) -> list[str]:
        if not self.task.labelled:  # a segmenter's targets are masks
            return []
        if self.metrics:
            return list(self.metrics["classes"])
        if self.split is None:
            return []
        if self.multilabel:
            from medtune.data.table import split_labels

            return sorted({name for value in self.split["label"] for name in split_labels(value)})
        return sorted(self.split["label"].unique())

    @property
    def task(self) -> Task:
        """The run's task (`medtune.tasks`), from its configuration and, once evaluated, its metrics."""
        return task_of_meta({"task": self.config.get("task"), "multilabel": self.multilabel})

    @property
    def multilabel(self) -> bool:
        """True for a multi-label run (findings an image may have several of, a threshold per label)."""
        if self.metrics:
            return bool(self.metrics.get("multilabel", False))
        return bool(self.config.get("labels") or self.config.get("label_sep"))

    @property
    def best_epoch(self) -> int | None:
        """The epoch (from 1) whose weights the run kept (``kept.json``; older runs: the best validation score), or
        None without history."""
        if self.run.kept_epoch is not None:
            return self.run.kept_epoch
        monitor = self.config.get("monitor", "val_auc")
        values = self.history.get(monitor)
        if values is None or values.dropna().empty:
            return None
        best = values.idxmin() if monitor_mode(monitor) == "min" else values.idxmax()
        return int(self.history.loc[best, "epoch"])

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Targets (class indices; multi-label: multi-hot ``(N, C)``) and probabilities ``(N, K)`` of the evaluated
        images, from predictions.csv."""
        if self.predictions is None or not self.classes:
            raise DataError(f"{self.run.path} has no predictions.csv yet; run `medtune evaluate {self.run.path}`")
        if self.multilabel:
            from medtune.data.table import split_labels

            probs = self.predictions[[f"prob_{c}" for c in self.classes]].to_numpy(dtype=float)
            found = [set(split_labels(v)) for v in self.predictions["label"]]
            return np.array([[c in names for c in self.classes] for names in found], dtype=int), probs
        index = {name: i for i, name in enumerate(self.classes)}
        targets = self.predictions["label"].map(index).to_numpy()
        probs = self.predictions[[f"prob_{c}" for c in self.classes]].to_numpy(dtype=float)
        keep = ~pd.isna(targets)
        return targets[keep].astype(int), probs[keep]


def read_results(path: str | os.PathLike) -> RunResults:
    """Read a run directory's configuration, history, metrics, predictions and split.

    Raises:
        DataError: `path` is not a run directory, or one of its files is unreadable.
    """
    run = Run(Path(path))
    if not run.config_file.is_file():
        raise DataError(f"{run.path} is not a medtune run (no config.yaml); give a folder that `medtune train` wrote")
    try:
        config = yaml.safe_load(run.config_file.read_text(encoding="utf-8")) or {}
        metrics = json.loads(run.metrics_file.read_text(encoding="utf-8")) if run.metrics_file.is_file() else None
        predictions = _read_csv(run.predictions_file)
        split = _read_csv(run.split_file)
        history = read_history(run.history_file)
    except (OSError, ValueError, yaml.YAMLError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the files of run {run.path}: {exc}; the run may be damaged") from None
    return RunResults(run, config, history, metrics, predictions, split)


def _read_csv(path: Path) -> pd.DataFrame | None:
    return (
        pd.read_csv(path, dtype={"id": str, "label": str, "predicted": str, "group": str}) if path.is_file() else None
    )
