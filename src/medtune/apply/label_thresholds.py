"""Multi-label evaluation: findings matched to the run's labels by name, one threshold per label chosen on the
validation split (``RUN/thresholds.json``), then the metrics and the per-image predictions.

An image carries a finding when its probability (rounded to 6 decimals, as files hold it) reaches that finding's
threshold; the predicted labels of an image are those findings joined by ``|`` (empty: no finding).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from medtune._io import write_json
from medtune.apply.scoring import store_probabilities
from medtune.config import Config
from medtune.data.store import ImageStore
from medtune.data.table import LABEL_SEP, Table, split_labels
from medtune.errors import DataError
from medtune.metrics.multilabel import (
    DECIMALS,
    DEFAULT_THRESHOLD,
    choose_thresholds,
    compute_multilabel_metrics,
    predict_labels,
)
from medtune.models import Preprocessing
from medtune.runs import Run

#: The file of a run that holds its label thresholds.


def _key(name: str) -> str:
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def match_findings(table: Table, classes: tuple[str, ...], no_finding: str = "No Finding") -> tuple[np.ndarray, dict]:
    """Multi-hot targets ``(N, C)`` of `table` over the run's `classes`, findings matched by name (case, ``_`` and
    ``-`` ignored). A single-label table's label is one finding; `no_finding` (or an empty cell) is none.

    Returns:
        The targets and ``{finding: images}`` for the findings of the data that match no label of the run (those
        findings are ignored; the images stay).

    >>> from medtune.data.table import create_table
    >>> table = create_table(pd.DataFrame({"path": ["a", "b"], "label": ["Edema|Mass", ""]}), multilabel=True)
    >>> targets, unmatched = match_findings(table, ("edema", "effusion"))
    >>> targets.tolist(), unmatched
    ([[1.0, 0.0], [0.0, 0.0]], {'Mass': 1})
    """
    index = {_key(name): i for i, name in enumerate(classes)}
    targets = np.zeros((len(table), len(classes)), dtype=np.float32)
    unmatched: dict[str, int] = {}
    for row, value in enumerate(table.frame["label"]):
        names = split_labels(value) if table.multilabel else [value] if isinstance(value, str) else []
        for name in names:
            if _key(name) == _key(no_finding):
                continue
            if _key(name) in index:
                targets[row, index[_key(name)]] = 1.0
            else:
                unmatched[name] = unmatched.get(name, 0) + 1
    return targets, unmatched


def predict_probabilities(
    network: nn.Module,
    preprocessing: Preprocessing,
    store: ImageStore,
    rows: np.ndarray,
    config: Config,
    tta: bool = False,
) -> np.ndarray:
    """Sigmoid probabilities ``(len(rows), C)`` for image-store rows."""
    return store_probabilities(network, preprocessing, store, rows, config, tta, multilabel=True)


def choose_run_thresholds(
    network: nn.Module,
    preprocessing: Preprocessing,
    table: Table,
    store: ImageStore,
    config: Config,
    out: Path,
) -> tuple[float, ...]:
    """Choose each label's threshold on the validation split (``config.threshold``: Youden's J or F1) and write
    them to the run folder `out`'s ``thresholds.json`` (atomically).

    Returns:
        The thresholds in class order.
    """
    rows = table.positions("val")
    if len(rows) == 0:
        thresholds, notes = [DEFAULT_THRESHOLD] * len(table.classes), ["no validation split: every label keeps 0.5"]
    else:
        targets = table.targets()[rows]
        probs = predict_probabilities(network, preprocessing, store, rows, config, config.tta)
        thresholds, notes = choose_thresholds(targets, probs, table.classes, config.threshold)
    write_json(
        Run(out).thresholds_file,
        {
            "method": config.threshold,
            "split": "val",
            "images": len(rows),
            "rule": f"a label is predicted when its probability, rounded to {DECIMALS} decimals, is >= its threshold",
            "thresholds": dict(zip(table.classes, thresholds, strict=True)),
            "notes": notes,
        },
    )
    return tuple(thresholds)


def evaluate_findings(
    network: nn.Module,
    preprocessing: Preprocessing,
    classes: tuple[str, ...],
    table: Table,
    store: ImageStore,
    config: Config,
    tta: bool = False,
    store_rows: np.ndarray | None = None,
    thresholds: tuple[float, ...] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Predict every row of `table` and compute the multi-label metrics against its findings.

    Args:
        store_rows: the store row of each table row (default: the store was built from `table`, row for row).
        thresholds: one per label; None uses 0.5 for every label, with a warning.

    Raises:
        DataError: the data has findings, but none of them is a label of the run.
    """
    targets, unmatched = match_findings(table, classes, config.no_finding)
    if unmatched and not targets.any():
        raise DataError(
            f"{table.source}: no finding of the data matches the run's labels {list(classes)} (found "
            f"{sorted(unmatched)}); rename them, or give label=COLUMN label_sep=SEP for a delimited column"
        )
    rows = np.arange(len(table)) if store_rows is None else np.asarray(store_rows)
    probs = predict_probabilities(network, preprocessing, store, rows, config, tta)
    metrics = compute_multilabel_metrics(targets, probs, list(classes), thresholds, seed=config.seed)
    metrics["threshold_method"] = config.threshold if thresholds is not None else None
    metrics["split"] = sorted(set(table.frame["split"].dropna())) or ["all"]
    metrics["tta"] = tta
    if thresholds is None:
        metrics["warnings"].append(
            "the run has no thresholds.json (training did not finish): every label used 0.5; run the same "
            "`medtune train` again to finish it"
        )
    if unmatched:
        metrics["unmatched_labels"] = unmatched
        metrics["warnings"].append(
            "findings that match no label of the run were ignored: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(unmatched.items()))
        )
    return metrics, findings_frame(table, classes, targets, probs, metrics["thresholds"].values())


def findings_frame(
    table: Table, classes: tuple[str, ...], targets: np.ndarray, probs: np.ndarray, thresholds: Any
) -> pd.DataFrame:
    """``predictions.csv`` of a multi-label evaluation: ``id, path, split``, the true and the predicted findings
    (``label``, ``predicted``: ``|``-joined, empty for none), ``correct`` (all findings right) and ``prob_<label>``."""
    frame = table.frame
    predicted = predict_labels(probs, list(thresholds))
    where = frame["path"].where(frame["path"].notna(), frame["id"])
    out = pd.DataFrame({"id": frame["id"].to_numpy(), "path": where.to_numpy(), "split": frame["split"].to_numpy()})
    out["label"] = join_labels(targets > 0.5, classes)
    out["predicted"] = join_labels(predicted, classes)
    out["correct"] = ((targets > 0.5) == predicted).all(axis=1)
    for i, name in enumerate(classes):
        out[f"prob_{name}"] = probs[:, i].astype(np.float64).round(DECIMALS)
    return out


def join_labels(flags: np.ndarray, classes: tuple[str, ...] | list[str]) -> list[str]:
    """The ``|``-joined names of the labels flagged in each row (an empty string for none).

    >>> join_labels(np.array([[True, True], [False, False]]), ["Edema", "Mass"])
    ['Edema|Mass', '']
    """
    return [LABEL_SEP.join(name for name, flag in zip(classes, row, strict=True) if flag) for row in flags]
