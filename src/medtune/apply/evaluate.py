"""``medtune evaluate``: metrics of a trained run on its test split or on other labelled data.

Writes ``metrics.json`` (accuracy, balanced accuracy, per-class and macro precision / recall / F1 / AUC, confusion
matrix, log loss, calibration error and bootstrap intervals) and ``predictions.csv`` (one row per image with every
class probability). On other data, labels are matched to the run's classes by name (case and spacing ignored);
images whose label matches no class are left out and reported. Multi-label runs are evaluated by
`medtune.apply.label_thresholds` with the label thresholds chosen on the validation split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medtune._io import atomic_open, write_json
from medtune.apply.scoring import load_model, store_probabilities
from medtune.config import Config, load_config, parse_overrides
from medtune.data.split import VAL_AS_TEST
from medtune.data.store import ImageStore
from medtune.data.table import Table
from medtune.errors import DataError
from medtune.metrics import compute_metrics
from medtune.models import Preprocessing
from medtune.runs import PreparedDataset, Run, prepare_dataset, read_dataset_table
from medtune.runs.segmasks import is_segmentation_run


@dataclass(frozen=True)
class Evaluation:
    """Result of `evaluate`.

    Attributes:
        metrics: the content of ``metrics.json``.
        out: the folder holding ``metrics.json`` and ``predictions.csv``.
    """

    metrics: dict[str, Any]
    out: Path


def _key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def match_labels(table: Table, classes: tuple[str, ...]) -> tuple[np.ndarray, dict[str, int]]:
    """Targets of `table` as indices into the run's `classes`, matched by name (case and separators ignored), else
    through the chest X-ray synonym table (`medtune.data.harmonise`: ``No Finding`` is ``normal``); -1 where
    nothing matches.

    Returns:
        The targets and ``{label: images}`` for the labels of the data that match no class.

    >>> from medtune.data import create_table  # doctest: +SKIP
    """
    from medtune.data.harmonise import canonical_label

    index = {_key(name): i for i, name in enumerate(classes)}
    synonyms = {canonical_label(name): i for i, name in enumerate(classes) if canonical_label(name) is not None}
    labels = table.frame["label"].astype(str)
    targets = np.array([index.get(_key(v), synonyms.get(canonical_label(v), -1)) for v in labels], dtype=np.int64)
    unmatched = labels[targets < 0].value_counts()
    return targets, {str(k): int(v) for k, v in unmatched.items()}


def predictions_frame(table: Table, classes: tuple[str, ...], targets: np.ndarray, probs: np.ndarray) -> pd.DataFrame:
    frame = table.frame
    where = frame["path"].where(frame["path"].notna(), frame["id"])
    out = pd.DataFrame({"id": frame["id"].to_numpy(), "path": where.to_numpy(), "split": frame["split"].to_numpy()})
    out["label"] = [classes[t] if t >= 0 else None for t in targets]
    out["predicted"] = [classes[i] for i in probs.argmax(axis=1)]
    out["correct"] = out["label"] == out["predicted"]
    for i, name in enumerate(classes):
        out[f"prob_{name}"] = probs[:, i].round(6)
    return out


def evaluate_rows(
    network: nn.Module,
    preprocessing: Preprocessing,
    classes: tuple[str, ...],
    table: Table,
    store: ImageStore,
    config: Config,
    tta: bool = False,
    store_rows: np.ndarray | None = None,
    multilabel: bool = False,
    thresholds: tuple[float, ...] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Predict every row of `table` and compute the metrics against its labels.

    Args:
        store_rows: the store row of each table row (default: the store was built from `table`, row for row).
        multilabel: the run is multi-label (`medtune.apply.label_thresholds.evaluate_findings`).
        thresholds: multi-label: the threshold of each label.
    """
    if multilabel:
        from medtune.apply.label_thresholds import evaluate_findings

        return evaluate_findings(network, preprocessing, classes, table, store, config, tta, store_rows, thresholds)
    targets, unmatched = match_labels(table, classes)
    keep = np.flatnonzero(targets >= 0)
    if len(keep) == 0:
        raise DataError(
            f"{table.source}: no label of the data matches the run's classes {list(classes)} "
            f"(found {sorted(unmatched)}); rename the labels or give label=COLUMN"
        )
    rows = keep if store_rows is None else np.asarray(store_rows)[keep]
    probs = store_probabilities(network, preprocessing, store, rows, config, tta)
    metrics = compute_metrics(targets[keep], probs, list(classes), seed=config.seed)
    metrics["split"] = sorted(set(table.frame["split"].iloc[keep].dropna())) or ["all"]
    metrics["tta"] = tta
    if unmatched:
        metrics["unmatched_labels"] = unmatched
        metrics.setdefault("warnings", []).append(
            f"{sum(unmatched.values())} image(s) have labels that match no class of the run and were left out: "
            + ", ".join(f"{k} ({v})" for k, v in unmatched.items())
        )
    predictions = predictions_frame(table.with_frame(table.frame.iloc[keep]), classes, targets[keep], probs)
    return metrics, predictions


def write_evaluation(out: Path, metrics: dict[str, Any], predictions: pd.DataFrame) -> None:
    """Write ``metrics.json`` and ``predictions.csv`` into `out` (atomically)."""
    folder = Run(out)
    with atomic_open(folder.predictions_file, "w", encoding="utf-8", newline="") as f:
        predictions.to_csv(f, index=False)
    write_json(folder.metrics_file, metrics)


def evaluate_split(network: nn.Module, dataset: PreparedDataset, out: Path) -> dict[str, Any]:
    """Evaluate a freshly trained network on the test split (validation when there is no test split); a
    multi-label run first chooses its label thresholds on the validation split (``out/thresholds.json``)."""
    table, store, config = dataset.table, dataset.store, dataset.config
    preprocessing = dataset.resolved.preprocessing
    split = "test" if (table.frame["split"] == "test").any() else "val"
    rows = table.positions(split)
    part = table.with_frame(table.frame.iloc[rows])
    thresholds = None
    if table.multilabel:
        from medtune.apply.label_thresholds import choose_run_thresholds

        thresholds = choose_run_thresholds(network, preprocessing, table, store, config, out)
    metrics, predictions = evaluate_rows(
        network, preprocessing, table.classes, part, store, config, config.tta, rows, table.multilabel, thresholds
    )
    if table.multilabel and split == "val":
        metrics["warnings"].append("no test split: the thresholds were chosen on the same images they are scored on")
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
    overrides: list[str] | dict[str, Any] | None = None,
    tta: bool | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> Evaluation:
    """Evaluate a run's best checkpoint.

    Args:
        run: the run directory.
        data: other labelled data; None evaluates the run's own split (``split.csv``).
        split: ``train``, ``val``, ``test`` or ``all``. Default: ``test`` for the run's data; for other data its
            test split when it has one, else every image.
        overrides: ``key=value`` data keys for reading other data (``label=``, ``path=``...).
        tta: horizontal-flip test-time augmentation (default: the run's ``tta``).
        out: where to write; default the run directory for its own data, else ``RUN/evaluations/<data>-<split>``.
        progress: progress bars on a terminal.

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
        given = overrides if isinstance(overrides, dict) else parse_overrides(overrides or [])
        reading = load_config(overrides={**_data_keys(config), **given}, data=str(data))  # the user's keys win
        table = read_dataset_table(reading)
        if split is None:
            split = "test" if (table.frame["split"] == "test").any() else "all"
        dataset = prepare_dataset(config, table=table, split=split, assign_missing=False, progress=progress)
        name = f"{Path(data).stem or Path(data).name}-{split}"
        default_out = (Path(run).with_suffix("") / name) if exported else Run(Path(run)).evaluations / name
    network = trained if exported else trained.model
    metrics, predictions = evaluate_rows(
        network, trained.resolved.preprocessing, trained.classes, dataset.table, dataset.store, config,
        config.tta if tta is None else tta, multilabel=trained.multilabel, thresholds=trained.thresholds,
    )  # fmt: skip
    metrics["data"] = str(Path(data or config.data).resolve())
    metrics["checkpoint"] = str(trained.path if exported else trained.checkpoint)
    target = Path(out) if out else default_out
    write_evaluation(target, metrics, predictions)
    return Evaluation(metrics, target)


def _data_keys(config: Config) -> dict[str, Any]:
    """Reading keys that carry over from the run to other data (none of the column names do, nor a masks folder:
    other data gives its own with ``masks=FOLDER``; a segmentation run ``masks=SEG_RUN`` does carry over)."""
    keys = ("no_finding", "window", "frame", "mask", "mask_margin", "mask_missing", "mask_source", "postprocess",
            "harmonise")  # fmt: skip
    carried = {key: getattr(config, key) for key in keys}
    if is_segmentation_run(config.masks):  # trained with masks=SEG_RUN: the same segmenter masks the other data
        carried["masks"] = config.masks
    return carried
