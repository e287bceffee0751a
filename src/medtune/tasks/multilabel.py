"""Multi-label findings: any number of findings per image (or none), a sigmoid per finding, a binary loss per
finding, and one decision threshold per finding chosen on the validation split (``RUN/thresholds.json``).

An image carries a finding when its probability (rounded to 6 decimals, as files hold it) reaches that finding's
threshold; the predicted findings of an image are joined by ``|`` (empty: no finding).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medtune.data.table import LABEL_SEP, split_labels
from medtune.errors import ConfigError, DataError
from medtune.tasks.base import TASKS
from medtune.tasks.classify import Classify, label_key

if TYPE_CHECKING:
    from medtune.config import Config
    from medtune.data.table import Table

#: Said when a run has no thresholds (training did not finish).
NO_THRESHOLDS = (
    "the run has no thresholds.json (training did not finish): every {what} used 0.5; run the same `medtune train` "
    "again to finish it"
)


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
    index = {label_key(name): i for i, name in enumerate(classes)}
    targets = np.zeros((len(table), len(classes)), dtype=np.float32)
    unmatched: dict[str, int] = {}
    for row, value in enumerate(table.frame["label"]):
        names = split_labels(value) if table.multilabel else [value] if isinstance(value, str) else []
        for name in names:
            if label_key(name) == label_key(no_finding):
                continue
            if label_key(name) in index:
                targets[row, index[label_key(name)]] = 1.0
            else:
                unmatched[name] = unmatched.get(name, 0) + 1
    return targets, unmatched


def join_labels(flags: np.ndarray, classes: tuple[str, ...] | list[str]) -> list[str]:
    """The ``|``-joined names of the labels flagged in each row (an empty string for none).

    >>> join_labels(np.array([[True, True], [False, False]]), ["Edema", "Mass"])
    ['Edema|Mass', '']
    """
    return [LABEL_SEP.join(name for name, flag in zip(classes, row, strict=True) if flag) for row in flags]


def findings_frame(
    table: Table, classes: tuple[str, ...], targets: np.ndarray, probs: np.ndarray, thresholds: Any
) -> pd.DataFrame:
    """``predictions.csv`` of a multi-label evaluation: ``id, path, split``, the true and the predicted findings
    (``label``, ``predicted``: ``|``-joined, empty for none), ``correct`` (all findings right) and ``prob_<label>``."""
    from medtune.metrics.per_label import DECIMALS, predict_labels

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


@TASKS.register("multilabel")
class Multilabel(Classify):
    """Any number of findings per image."""

    name = "multilabel"
    activation = "sigmoid"
    report = "findings"
    output = "sigmoid per label"
    ensembles = "their thresholds are chosen per run"
    single_label = False

    def for_multilabel_table(self, table: Table) -> Classify:
        return self

    def checkpoint_meta(self, table: Table) -> dict[str, Any]:
        return {"classes": list(table.classes), "multilabel": True}

    def check_trainable(self, table: Table) -> Table:
        if not table.multilabel:
            raise ConfigError(
                f"task=multilabel follows from the data, and {table.source} has one label per image: give "
                "labels=COL1,COL2 (0/1 columns) or label=COLUMN label_sep='|', and leave task= out"
            )
        if not table.labelled:
            raise DataError(f"{table.source}: training needs a label for every image; unlabelled rows were found")
        if not table.classes:
            raise DataError(f"{table.source}: no image carries a finding; multi-label training needs at least one")
        return table

    def strata(self, frame: pd.DataFrame) -> Any:
        from medtune.data.split import label_strata

        return label_strata(frame)

    def loss_targets(self, targets: Any) -> Any:
        return targets.float()

    def match_targets(self, table: Table, classes: tuple[str, ...], config: Config) -> tuple[np.ndarray, dict]:
        return match_findings(table, classes, config.no_finding)

    def fit_thresholds(
        self, table: Table, probabilities: Callable[[np.ndarray], np.ndarray], config: Config
    ) -> dict[str, Any] | None:
        """Each finding's threshold on the validation split (``config.threshold``: Youden's J or F1)."""
        from medtune.metrics.per_label import DECIMALS, DEFAULT_THRESHOLD, choose_thresholds

        rows = table.positions("val")
        if len(rows) == 0:
            thresholds, notes = [DEFAULT_THRESHOLD] * len(table.classes), ["no validation split: every label keeps 0.5"]
        else:
            thresholds, notes = choose_thresholds(table.targets()[rows], probabilities(rows), table.classes,
                                                  config.threshold)  # fmt: skip
        return {
            "method": config.threshold,
            "split": "val",
            "images": len(rows),
            "rule": f"a label is predicted when its probability, rounded to {DECIMALS} decimals, is >= its threshold",
            "thresholds": dict(zip(table.classes, thresholds, strict=True)),
            "notes": notes,
        }

    def score(
        self,
        table: Table,
        classes: tuple[str, ...],
        probabilities: Callable[[np.ndarray], np.ndarray],
        config: Config,
        thresholds: tuple[float, ...] | None = None,
        tta: bool = False,
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """Raises `DataError` when the data has findings but none of them is a label of the run; `thresholds`
        None uses 0.5 for every label, with a warning."""
        from medtune.metrics.per_label import compute_multilabel_metrics

        targets, unmatched = self.match_targets(table, classes, config)
        if unmatched and not targets.any():
            raise DataError(
                f"{table.source}: no finding of the data matches the run's labels {list(classes)} (found "
                f"{sorted(unmatched)}); rename them, or give label=COLUMN label_sep=SEP for a delimited column"
            )
        probs = probabilities(np.arange(len(table)))
        metrics = compute_multilabel_metrics(targets, probs, list(classes), thresholds, seed=config.seed)
        metrics["threshold_method"] = config.threshold if thresholds is not None else None
        metrics["split"] = sorted(set(table.frame["split"].dropna())) or ["all"]
        metrics["tta"] = tta
        if thresholds is None:
            metrics["warnings"].append(NO_THRESHOLDS.format(what="label"))
        if unmatched:
            metrics["unmatched_labels"] = unmatched
            metrics["warnings"].append(
                "findings that match no label of the run were ignored: "
                + ", ".join(f"{k} ({v})" for k, v in sorted(unmatched.items()))
            )
        return metrics, findings_frame(table, classes, targets, probs, metrics["thresholds"].values())

    def headline(self, targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
        """Macro AUC over the labels with both kinds, and the exact-match accuracy at 0.5."""
        from medtune.metrics import compute_multilabel_metrics

        metrics = compute_multilabel_metrics(targets, probs, list(classes), n_bootstrap=0)
        return {"auc": float(metrics["macro"]["auc"]), "accuracy": float(metrics["accuracy"])}

    def results(
        self,
        paths: list[str],
        classes: tuple[str, ...],
        probs: np.ndarray,
        errors: dict[int, str],
        thresholds: tuple[float, ...] | None = None,
    ) -> pd.DataFrame:
        from medtune.metrics.per_label import DECIMALS, DEFAULT_THRESHOLD, predict_labels

        read = ~np.isnan(probs).any(axis=1)
        flags = predict_labels(np.nan_to_num(probs), thresholds or [DEFAULT_THRESHOLD] * len(classes))
        frame = pd.DataFrame({"file": paths})
        frame["labels"] = [names if ok else None for names, ok in zip(join_labels(flags, classes), read, strict=True)]
        for i, name in enumerate(classes):
            frame[f"prob_{name}"] = probs[:, i].astype(np.float64).round(DECIMALS)
        frame["error"] = [errors.get(i) for i in range(len(paths))]
        frame.attrs["thresholds"] = dict(zip(classes, thresholds or [DEFAULT_THRESHOLD] * len(classes), strict=True))
        if thresholds is None:
            frame.attrs["warnings"] = [NO_THRESHOLDS.format(what="finding")]
        return frame
