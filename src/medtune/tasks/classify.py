"""Single-label classification: one class per image, a softmax over the classes, cross-entropy (or focal) loss.

Scoring on other data matches its labels to the run's classes by name (case and separators ignored), else through
the chest X-ray synonym table (`medtune.data.harmonise`: ``No Finding`` is ``normal``); images whose label matches
no class are left out and reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medtune.errors import DataError
from medtune.tasks.base import TASKS, Task

if TYPE_CHECKING:
    import torch
    from torch import nn

    from medtune.config import Config
    from medtune.data.table import Table

#: The epoch metrics of classifiers, in history.csv's order.
CLASSIFIER_EPOCH_METRICS = ("loss", "acc", "balanced_acc", "f1", "auc", "nll")


def label_key(name: str) -> str:
    """A label as names are compared: lower case, ``_`` and ``-`` as spaces, spacing collapsed."""
    return " ".join(str(name).lower().replace("_", " ").replace("-", " ").split())


def match_labels(table: Table, classes: tuple[str, ...]) -> tuple[np.ndarray, dict[str, int]]:
    """Targets of `table` as indices into the run's `classes`, matched by name (case and separators ignored), else
    through the chest X-ray synonym table; -1 where nothing matches.

    Returns:
        The targets and ``{label: images}`` for the labels of the data that match no class.
    """
    from medtune.data.harmonise import canonical_label

    index = {label_key(name): i for i, name in enumerate(classes)}
    synonyms = {canonical_label(name): i for i, name in enumerate(classes) if canonical_label(name) is not None}
    labels = table.frame["label"].astype(str)
    targets = np.array([index.get(label_key(v), synonyms.get(canonical_label(v), -1)) for v in labels], dtype=np.int64)
    unmatched = labels[targets < 0].value_counts()
    return targets, {str(k): int(v) for k, v in unmatched.items()}


def predictions_frame(
    table: Table, classes: tuple[str, ...], targets: np.ndarray, probs: np.ndarray, predicted: np.ndarray | None = None
) -> pd.DataFrame:
    """``predictions.csv``: ``id, path, split, label, predicted, correct`` and ``prob_<class>`` per image
    (`predicted`: class indices, default the most probable class)."""
    frame = table.frame
    where = frame["path"].where(frame["path"].notna(), frame["id"])
    out = pd.DataFrame({"id": frame["id"].to_numpy(), "path": where.to_numpy(), "split": frame["split"].to_numpy()})
    out["label"] = [classes[t] if t >= 0 else None for t in targets]
    out["predicted"] = [classes[i] for i in (probs.argmax(axis=1) if predicted is None else predicted)]
    out["correct"] = out["label"] == out["predicted"]
    for i, name in enumerate(classes):
        out[f"prob_{name}"] = probs[:, i].round(6)
    return out


@TASKS.register("classify")
class Classify(Task):
    """One class per image."""

    name = "classify"
    activation = "softmax"
    epoch_metrics = CLASSIFIER_EPOCH_METRICS
    report = "classes"
    output = "softmax over classes"
    single_label = True

    def for_multilabel_table(self, table: Table) -> Task:
        from medtune.tasks.base import get_task

        return get_task("multilabel")

    def create_network(self, config: Config, table: Table, in_chans: int, network: Any = None) -> nn.Module:
        """A backbone with a head of one output per class; refused when the strategy trains a head the network
        does not have."""
        from medtune.errors import ConfigError
        from medtune.models import create_classifier

        model = create_classifier(
            config.backbone, self.num_outputs(len(table.classes)), in_chans, config.head, config.dropout,
            config.pretrained, config.weights, config.image_size, network,
        )  # fmt: skip
        if config.strategy != "finetune" and not any(True for _ in model.head.parameters()):
            raise ConfigError(
                f"strategy={config.strategy} trains a head apart from the backbone, but the output of "
                f"{config.backbone} does not come from a final nn.Linear layer, so it has none; use "
                "strategy=finetune, or end the network with nn.Linear(features, num_classes)"
            )
        return model

    def check_trainable(self, table: Table) -> Table:
        if not table.labelled:
            raise DataError(f"{table.source}: training needs a label for every image; unlabelled rows were found")
        if len(table.classes) < 2:
            raise DataError(f"{table.source} has one class ({table.classes[0]!r}); a classifier needs at least two")
        return table

    def loss_weights(self, config: Config, table: Table, rows: np.ndarray) -> torch.Tensor | None:
        from medtune.training.sampling import loss_weights

        multilabel = not self.single_label
        return loss_weights(config.sections.optimisation, table.targets()[rows], len(table.classes), multilabel)

    def sample_weights(self, table: Table, rows: np.ndarray) -> np.ndarray:
        from medtune.training.sampling import sample_weights

        return sample_weights(table.targets()[rows], len(table.classes), not self.single_label)

    def loss(self, config: Config, weights: torch.Tensor | None, num_classes: int) -> nn.Module:
        from medtune.training.losses import create_loss

        return create_loss(config.sections.optimisation, not self.single_label, weights)

    def create_epoch_metrics(self, num_outputs: int, prefix: str) -> Any:
        from medtune.training.epoch_metrics import create_epoch_metrics

        return create_epoch_metrics(num_outputs, prefix, not self.single_label)

    def match_targets(self, table: Table, classes: tuple[str, ...], config: Config) -> tuple[np.ndarray, dict]:
        return match_labels(table, classes)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """The predicted class index of each image: the most probable class."""
        return probs.argmax(axis=1)

    def more_metrics(
        self, targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...], config: Config
    ) -> dict[str, Any]:
        """Metrics this task adds to ``metrics.json`` beside the classification metrics (none here)."""
        return {}

    def score(
        self,
        table: Table,
        classes: tuple[str, ...],
        probabilities: Callable[[np.ndarray], np.ndarray],
        config: Config,
        thresholds: tuple[float, ...] | None = None,
        tta: bool = False,
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        from medtune.metrics import compute_metrics

        targets, unmatched = self.match_targets(table, classes, config)
        keep = np.flatnonzero(targets >= 0)
        if len(keep) == 0:
            raise DataError(
                f"{table.source}: no label of the data matches the run's classes {list(classes)} "
                f"(found {sorted(unmatched)}); rename the labels or give label=COLUMN"
            )
        probs = probabilities(keep)
        metrics = compute_metrics(targets[keep], probs, list(classes), seed=config.seed, predictions=self.decode(probs))
        metrics |= self.more_metrics(targets[keep], probs, classes, config)
        metrics["split"] = sorted(set(table.frame["split"].iloc[keep].dropna())) or ["all"]
        metrics["tta"] = tta
        if unmatched:
            metrics["unmatched_labels"] = unmatched
            metrics.setdefault("warnings", []).append(
                f"{sum(unmatched.values())} image(s) have labels that match no class of the run and were left out: "
                + ", ".join(f"{k} ({v})" for k, v in unmatched.items())
            )
        part = table.with_frame(table.frame.iloc[keep])
        return metrics, predictions_frame(part, classes, targets[keep], probs, self.decode(probs))

    def headline(self, targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
        from medtune.metrics import compute_auc

        _, auc = compute_auc(targets, probs)
        return {"auc": float(auc), "accuracy": float((probs.argmax(axis=1) == targets).mean())}

    def results(
        self,
        paths: list[str],
        classes: tuple[str, ...],
        probs: np.ndarray,
        errors: dict[int, str],
        thresholds: tuple[float, ...] | None = None,
    ) -> pd.DataFrame:
        read = ~np.isnan(probs).any(axis=1)
        decoded = self.decode(np.nan_to_num(probs))
        best = np.where(read, decoded, -1)
        frame = pd.DataFrame({"file": paths})
        frame["label"] = [classes[b] if b >= 0 else None for b in best]
        chosen = np.take_along_axis(np.nan_to_num(probs), decoded[:, None], axis=1)[:, 0]
        frame["confidence"] = np.where(read, chosen, np.nan).round(6)
        for i, name in enumerate(classes):
            frame[f"prob_{name}"] = probs[:, i].round(6)
        frame["error"] = [errors.get(i) for i in range(len(paths))]
        return frame
