"""``medtune evaluate``: metrics of a trained run on its test split or on other labelled data.

Writes ``metrics.json`` (accuracy, balanced accuracy, per-class and macro precision / recall / F1 / AUC, confusion
matrix, log loss, calibration error and bootstrap intervals) and ``predictions.csv`` (one row per image with every
class probability). On other data, labels are matched to the run's classes by name (case and spacing ignored);
images whose label matches no class are left out and reported. What differs between tasks (matching labels,
the metrics, ``predictions.csv``'s columns, a multi-label run's thresholds chosen on the validation split) is the
run's task's (`medtune.tasks`); segmenters are scored by `medtune.apply.segment_eval`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medtune._io import atomic_open, write_json
from medtune.apply.calibrate import load_calibration
from medtune.apply.guard import guard_of, kept_scores, score_store
from medtune.apply.scoring import data_keys, load_model, store_probabilities
from medtune.apply.shift import guard_metrics, score_column
from medtune.config import Config, load_config
from medtune.data.split import VAL_AS_TEST
from medtune.data.store import ImageStore
from medtune.data.table import Table
from medtune.errors import DataError
from medtune.models import Preprocessing
from medtune.runs import PreparedDataset, Run, prepare_dataset, read_dataset_table
from medtune.runs.exported import ExportedModel
from medtune.tasks import Task, get_task, task_for


@dataclass(frozen=True)
class Evaluation:
    """Result of `evaluate`.

    Attributes:
        metrics: the content of ``metrics.json``.
        out: the folder holding ``metrics.json`` and ``predictions.csv``.
    """

    metrics: dict[str, Any]
    out: Path


def evaluate_rows(
    network: nn.Module,
    preprocessing: Preprocessing,
    classes: tuple[str, ...],
    table: Table,
    store: ImageStore,
    config: Config,
    tta: bool = False,
    store_rows: np.ndarray | None = None,
    task: Task | None = None,
    thresholds: tuple[float, ...] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Predict every row of `table` and score it against its labels as the run's `task` does (default
    single-label).

    Args:
        store_rows: the store row of each table row (default: the store was built from `table`, row for row).
        task: the run's task (`medtune.tasks.Task.score`).
        thresholds: multi-label: the threshold of each label.
    """
    task = task or get_task("classify")
    rows = np.arange(len(table)) if store_rows is None else np.asarray(store_rows)

    def probabilities(positions: np.ndarray) -> np.ndarray:
        return store_probabilities(network, preprocessing, store, rows[positions], config, tta, task.activation)

    return task.score(table, classes, probabilities, config, thresholds, tta)


def write_evaluation(out: Path, metrics: dict[str, Any], predictions: pd.DataFrame) -> None:
    """Write ``metrics.json`` and ``predictions.csv`` into `out` (atomically)."""
    folder = Run(out)
    with atomic_open(folder.predictions_file, "w", encoding="utf-8", newline="") as f:
        predictions.to_csv(f, index=False)
    write_json(folder.metrics_file, metrics)


def evaluate_split(network: nn.Module, dataset: PreparedDataset, out: Path) -> dict[str, Any]:
    """Evaluate a freshly trained network on the test split (validation when there is no test split); a task with
    thresholds (multi-label) first chooses them on the validation split (``out/thresholds.json``)."""
    table, store, config = dataset.table, dataset.store, dataset.config
    preprocessing = dataset.resolved.preprocessing
    task = task_for(config, table)
    split = "test" if config.read_test and (table.frame["split"] == "test").any() else "val"
    rows = table.positions(split)
    part = table.with_frame(table.frame.iloc[rows])

    def probabilities(positions: np.ndarray) -> np.ndarray:
        return store_probabilities(network, preprocessing, store, positions, config, config.tta, task.activation)

    chosen = task.fit_thresholds(table, probabilities, config)
    thresholds = None
    if chosen is not None:
        write_json(Run(out).thresholds_file, chosen)
        thresholds = tuple(chosen["thresholds"].values())
    metrics, predictions = evaluate_rows(
        network, preprocessing, table.classes, part, store, config, config.tta, rows, task, thresholds
    )
    if thresholds is not None and split == "val":
        metrics["warnings"].append("no test split: the thresholds were chosen on the same images they are scored on")
    elif split == "val" and not config.read_test:
        metrics["warnings"].append("read_test=false: these scores are on the validation split; the test split is "
                                   f"left unread (medtune evaluate {out} reads it)")  # fmt: skip
    elif split == "val":
        metrics["warnings"].append("no test split: these scores are on the validation images that chose the best "
                                   "epoch, so they are optimistic; keep a test split (test_fraction > 0)")  # fmt: skip
    metrics["warnings"].extend(note for note in table.notes if note.startswith(VAL_AS_TEST))
    write_evaluation(out, metrics, predictions)
    return metrics


def evaluate(
    run: str | os.PathLike,
    data: str | os.PathLike | None = None,
    split: str | None = None,
    keys: Mapping[str, Any] | None = None,
    tta: bool | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    calibration: str | None = None,
) -> Evaluation:
    """Evaluate a run's best checkpoint.

    Args:
        run: the run directory.
        data: other labelled data; None evaluates the run's own split (``split.csv``).
        split: ``train``, ``val``, ``test`` or ``all``. Default: ``test`` for the run's data; for other data its
            test split when it has one, else every image.
        keys: data keys for reading other data, typed (``{"label": "finding", "path": "file"}``).
        tta: horizontal-flip test-time augmentation (default: the run's ``tta``).
        out: where to write; default the run directory for its own data, else ``RUN/evaluations/<data>-<split>``.
        progress: progress bars on a terminal.
        calibration: a calibration kept in the run (``medtune calibrate``): ``metrics["calibrated"]`` compares the
            decisions before and after it (a conformal one: its coverage here).

    >>> evaluation = evaluate("runs/pneumoniamnist-tf_efficientnet_lite0")  # doctest: +SKIP
    >>> evaluation.metrics["accuracy"]  # doctest: +SKIP
    """
    trained = load_model(run)
    config = trained.config
    exported = Path(run).suffix.lower() == ".onnx"
    if data is None and exported:
        raise DataError(f"{run} is an exported model without its run's split: give DATA to evaluate it on")
    if data is None:
        dataset = prepare_dataset(config, Run(Path(run)), split=split or "test", progress=progress)
        default_out = Path(run)
    else:
        reading = load_config(overrides={**data_keys(config), **(keys or {})}, data=str(data))  # the user's keys win
        table = read_dataset_table(reading)
        if split is None:
            split = "test" if (table.frame["split"] == "test").any() else "all"
        dataset = prepare_dataset(config, table=table, split=split, assign_missing=False, progress=progress)
        name = f"{Path(data).stem or Path(data).name}-{split}"
        default_out = (Path(run).with_suffix("") / name) if exported else Run(Path(run)).evaluations / name
    network = trained if exported else trained.model
    metrics, predictions = evaluate_rows(
        network, trained.resolved.preprocessing, trained.classes, dataset.table, dataset.store, config,
        config.tta if tta is None else tta, task=trained.task, thresholds=trained.thresholds,
    )  # fmt: skip
    guard = guard_of(run, trained)
    if guard is not None:  # does the evaluated data look like the training images (``medtune guard``)?
        metrics["guard"] = _guard_section(guard, trained, dataset, predictions, run, own=data is None)
    conformal = None if exported else load_calibration(run)
    if conformal is not None:  # conformal sets kept in the run (``medtune calibrate``): how they cover here
        metrics["conformal"] = _set_coverage(conformal, predictions, config.seed)
    if calibration is not None:  # a named calibration (prevalence, thresholds): the decisions before and after
        from medtune.apply.recalibrate import compare_calibration

        metrics["calibrated"] = compare_calibration(run, calibration, trained, predictions)
    metrics["data"] = str(Path(data or config.data).resolve())
    metrics["checkpoint"] = str(trained.path if exported else trained.checkpoint)
    target = Path(out) if out else default_out
    write_evaluation(target, metrics, predictions)
    return Evaluation(metrics, target)


def _guard_section(
    guard: Any, trained: Any, dataset: PreparedDataset, predictions: pd.DataFrame, run: Any, own: bool
) -> dict[str, Any]:
    """The guard's verdict on the evaluated images (`medtune.apply.shift`): ``guard_score`` and
    ``in_distribution`` in `predictions`, and the share flagged, the metrics on accepted and flagged images, and
    (other data) the AUROC of telling them from the run's own test images."""
    table, store, config, task = dataset.table, dataset.store, trained.config, trained.task
    scores = score_store(guard, store, np.arange(len(table)))
    predictions["guard_score"] = score_column(predictions, table.frame["path"], scores)
    predictions["in_distribution"] = predictions["guard_score"] <= 1.0
    probs = store_probabilities(trained if isinstance(trained, ExportedModel) else trained.model,
                                trained.resolved.preprocessing, store, np.arange(len(table)), config, config.tta,
                                task.activation)  # fmt: skip

    def rescore(rows: np.ndarray) -> dict[str, Any]:
        part = table.with_frame(table.frame.iloc[rows])
        return task.score(part, trained.classes, lambda at: probs[rows[at]], config, trained.thresholds)[0]

    folder = trained.path.parent.parent if isinstance(trained, ExportedModel) else run  # RUN/export/model.onnx
    test = None if own else kept_scores(folder).get("test")
    return guard_metrics(scores, rescore, task.test_summary, test, config.seed)


def _set_coverage(calibration: Any, predictions: pd.DataFrame, seed: int) -> dict[str, Any]:
    """The coverage of the run's conformal sets on the evaluated images (their labels and probabilities)."""
    from medtune.apply.calibrate import coverage_metrics, evaluated_targets

    targets, probs = evaluated_targets(predictions, calibration.classes, calibration.multilabel)
    return coverage_metrics(calibration, targets, probs, seed)
