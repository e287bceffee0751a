"""The `Task` protocol and its registry: one object per kind of target that owns everything that differs between
tasks, so that training, evaluation, prediction, reports and export ask the run's task instead of branching.

A run's task follows from its configuration and data (`task_for`): ``task=segment`` is a segmentation run; a
classifier is ``multilabel`` when its table has several labels per image, else ``classify``. A trained run's task
is in its checkpoint (`task_of_meta`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from medtune._registry import Registry

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from medtune.config import Config
    from medtune.data.table import Table

#: The registered tasks by name (`get_task`).
TASKS: Registry = Registry("task")

#: Columns every history.csv has besides the per-split metrics, in order.
HISTORY_TAIL = ("lr", "backbone_frozen", "trainable", "seconds")


class Task:
    """What one kind of target needs from every command. Subclasses set the class attributes and override the
    methods; `Task` itself is never registered.

    Attributes:
        name: the task's name (``classify``, ``multilabel``, ``segment``).
        activation: how the network's outputs become probabilities (`medtune.models.inference.ACTIVATIONS`).
        epoch_metrics: the metrics of each epoch, in history.csv's order (``train_`` and ``val_`` prefixed).
        report: which sections a run's report page shows (`medtune.reports.report`).
        output: what an exported model outputs, in words (its metadata).
        labelled: training needs a label for every image.
        ensembles: why runs of this task cannot be averaged into an ensemble yet (None: they can).
        mask_is_target: ``mask=channel`` stores the mask as the target, not as one more network input.
        agreement_of: what `agreement` counts, in words.
        predict_hint: the command that predicts with an exported `{model}`.
        single_label: one class index per image (a softmax-like distribution over the classes): the best epoch
            is kept only when it beats the last on paired resamples (`medtune.fitting.keep`), and conformal sets
            (`medtune.apply.calibrate`) apply; otherwise the best epoch is kept as it is.
        monitor: the validation metric a study of this task ranks by when none is named.
    """

    name: ClassVar[str] = ""
    activation: ClassVar[str] = "softmax"
    epoch_metrics: ClassVar[tuple[str, ...]] = ()
    report: ClassVar[str] = ""
    output: ClassVar[str] = ""
    labelled: ClassVar[bool] = True
    ensembles: ClassVar[str | None] = None
    mask_is_target: ClassVar[bool] = False
    agreement_of: ClassVar[str] = "same top class"
    predict_hint: ClassVar[str] = "medtune predict {model} IMAGES... --out results.json"
    single_label: ClassVar[bool] = False
    monitor: ClassVar[str] = "val_auc"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # --- the run directory -------------------------------------------------------------------------------------

    def history_columns(self) -> tuple[str, ...]:
        """The columns of the run's history.csv, in order."""
        return ("epoch", *(f"{s}_{m}" for s in ("train", "val") for m in self.epoch_metrics), *HISTORY_TAIL)

    def num_outputs(self, num_classes: int) -> int:
        """How many outputs the network has for `num_classes` classes."""
        return num_classes

    def for_multilabel_table(self, table: Table) -> Task:
        """This task on a table with several labels per image: a classifier becomes multi-label; a task that
        needs one label per image refuses, naming the fix."""
        return self

    def network_name(self, config: Config) -> str:
        """The network part of the default run name."""
        return config.backbone

    def checkpoint_meta(self, table: Table) -> dict[str, Any]:
        """What a checkpoint records of the task besides the configuration."""
        return {"classes": list(table.classes), "multilabel": False}

    # --- configuration ---------------------------------------------------------------------------------------------

    def registries(self) -> dict[str, Registry]:
        """The configuration keys that name a registered component of this task (besides the shared reader,
        optimizer, scheduler and augmentation), each with its registry."""
        from medtune.models.heads import HEADS
        from medtune.training.losses import LOSSES

        return {"head": HEADS, "loss": LOSSES}

    def check_name(self, key: str, value: object) -> bool:
        """Check a value a registry cannot (a sum of losses); True when it was checked here."""
        return False

    def working_size(self, size: int, given: bool) -> int:
        """The working size the network takes, from the automatic (`given` False) or given size."""
        return size

    # --- training ----------------------------------------------------------------------------------------------

    def create_network(self, config: Config, table: Table, in_chans: int, network: Any = None) -> nn.Module:
        """A new network for `table`'s targets (`network`: your own network's recorded source, when given)."""
        raise NotImplementedError

    def check_trainable(self, table: Table) -> Table:
        """`table` when a network can learn from it; a `DataError` naming what is missing otherwise."""
        return table

    def training_targets(self, table: Table) -> np.ndarray | None:
        """The targets a training batch carries with its images (None: they are inside the stored image)."""
        return table.targets()

    def strata(self, frame: pd.DataFrame) -> Any:
        """What a random split stratifies by."""
        return frame["label"].fillna("")

    def loss_weights(self, config: Config, table: Table, rows: np.ndarray) -> torch.Tensor | None:
        """The loss weights ``class_weights=`` asks for, from the training rows."""
        return None

    def sample_weights(self, table: Table, rows: np.ndarray) -> np.ndarray:
        """Per-image sampling weights for ``sampler=weighted``."""
        raise NotImplementedError

    def loss(self, config: Config, weights: torch.Tensor | None, num_classes: int) -> nn.Module:
        """The training loss (`weights`: `loss_weights`; `num_classes`: the classes, or labels, of the data)."""
        raise NotImplementedError

    def create_epoch_metrics(self, num_outputs: int, prefix: str) -> Any:
        """The torchmetrics collection of one split's epoch metrics (named as `epoch_metrics`)."""
        raise NotImplementedError

    def pretrained_part(self, model: nn.Module) -> nn.Module:
        """The part of the network that starts from pretrained weights and ``strategy=`` may freeze."""
        return model.backbone

    def split_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A loader's batch as ``(images, targets)``."""
        images, targets = batch
        return images, targets

    def loss_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """The targets as the loss takes them."""
        return targets.long()

    def metric_inputs(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(predictions, targets)`` as the epoch metrics take them."""
        from medtune.models.inference import to_probabilities

        return to_probabilities(logits, self.activation), targets.long()

    # --- using a trained network -------------------------------------------------------------------------------

    def match_targets(self, table: Table, classes: tuple[str, ...], config: Config) -> tuple[np.ndarray, dict]:
        """Targets of `table` over the run's `classes`, labels matched by name, and the unmatched labels."""
        raise NotImplementedError

    def fit_thresholds(
        self, table: Table, probabilities: Callable[[np.ndarray], np.ndarray], config: Config
    ) -> dict[str, Any] | None:
        """Decision thresholds chosen on the validation split (``thresholds.json``'s content), or None."""
        return None

    def score(
        self,
        table: Table,
        classes: tuple[str, ...],
        probabilities: Callable[[np.ndarray], np.ndarray],
        config: Config,
        thresholds: tuple[float, ...] | None = None,
        tta: bool = False,
    ) -> tuple[dict[str, Any], pd.DataFrame]:
        """The metrics (with intervals) and ``predictions.csv`` of `table`'s images; `probabilities` maps table row
        positions to the network's probabilities."""
        raise NotImplementedError

    def headline(self, targets: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
        """Macro ROC AUC and accuracy without intervals (a quick comparison of two versions of one network)."""
        raise NotImplementedError

    def more_headline(self, metrics: dict[str, Any]) -> list[tuple[str, Any, Any]]:
        """Headline numbers this task adds to the command line's table and the report's cards:
        ``(name, value, [low, high] or None)``."""
        return []

    def test_summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """What the leaderboard keeps of ``metrics.json``: each headline metric as ``[value, low, high]``."""
        intervals = metrics.get("intervals", {})
        return {
            "auc": [metrics["macro"]["auc"], *(intervals.get("auc") or [None, None])],
            "accuracy": [metrics["accuracy"], *(intervals.get("accuracy") or [None, None])],
            "balanced_accuracy": [metrics["balanced_accuracy"], *(intervals.get("balanced_accuracy") or [None, None])],
            "f1": [metrics["macro"]["f1"], *(intervals.get("f1") or [None, None])],
            "ece": metrics.get("ece"),
        }

    def agreement(self, probs: np.ndarray, other: np.ndarray) -> float:
        """The share of answers two versions of one network give alike (the export's parity check)."""
        return float((probs.argmax(axis=1) == other.argmax(axis=1)).mean())

    def results(
        self,
        paths: list[str],
        classes: tuple[str, ...],
        probs: np.ndarray,
        errors: dict[int, str],
        thresholds: tuple[float, ...] | None = None,
    ) -> pd.DataFrame:
        """The rows ``medtune predict`` returns, from probabilities ``(N, K)`` (NaN rows for the inputs in
        `errors`): ``file``, what is predicted, ``prob_<class>`` and ``error``."""
        raise NotImplementedError


def get_task(name: str) -> Task:
    """The registered task `name` (an instance)."""
    return TASKS.get(name)()


def task_for(config: Config, table: Table | None = None) -> Task:
    """The task of a run of `config` on `table`: the configured ``task=``, multi-label when the table is."""
    task = get_task(config.task)
    return task.for_multilabel_table(table) if table is not None and table.multilabel else task


def task_of_meta(meta: dict[str, Any]) -> Task:
    """The task a checkpoint's (or an exported model's, or a run's) facts record: ``task``, with the ``multilabel``
    flag of a classifier."""
    name = meta.get("task") or "classify"
    return get_task("multilabel" if name == "classify" and meta.get("multilabel") else name)
