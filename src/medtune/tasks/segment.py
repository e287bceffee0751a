"""Segmentation: a mask per image (lung fields, tissue regions), a sigmoid per pixel, smp's losses, and per-image
Dice and IoU every epoch. The mask is stored as the last channel of each image (`medtune.data.masks`), so a
training batch carries its targets inside the images.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from medtune.errors import DataError
from medtune.tasks.base import TASKS, Task

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

    from medtune.config import Config
    from medtune.data.table import Table


def split_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A store batch as ``(image channels, target)``: uint8 pixels and a float 0/1 ``(B, 1, H, W)`` mask."""
    return images[:, :-1], (images[:, -1:] > 127).float()


def create_segment_metrics(prefix: str) -> Any:
    """Per-image Dice and IoU of the foreground, averaged over the images of an epoch (torchmetrics)."""
    from torchmetrics import MetricCollection
    from torchmetrics.segmentation import DiceScore, MeanIoU

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*DiceScore metric currently defaults.*")
        dice = DiceScore(
            num_classes=2, include_background=False, average="micro", input_format="index",
            aggregation_level="samplewise",
        )  # fmt: skip
    iou = MeanIoU(num_classes=2, include_background=False, input_format="index")
    return MetricCollection({"dice": dice, "iou": iou}, prefix=prefix)


@TASKS.register("segment")
class Segment(Task):
    """A binary mask per image."""

    name = "segment"
    activation = "sigmoid"
    epoch_metrics = ("loss", "dice", "iou")
    report = "segment"
    output = "mask probabilities"
    labelled = False
    mask_is_target = True
    agreement_of = "same mask pixels"
    predict_hint = "medtune segment predict {model} IMAGES... --out masks/"
    monitor = "val_dice"
    ensembles = "an ensemble averages class probabilities"

    def registries(self) -> dict[str, Any]:
        from medtune.models.segmenters import SEGMENTATION_ARCHS
        from medtune.training.segment_losses import SEGMENT_LOSSES

        return {"loss": SEGMENT_LOSSES, "arch": SEGMENTATION_ARCHS}

    def check_name(self, key: str, value: object) -> bool:
        """A segmentation loss may be a sum such as ``dice+bce``."""
        if key != "loss":
            return False
        from medtune.training.segment_losses import loss_terms

        loss_terms(str(value))
        return True

    def working_size(self, size: int, given: bool) -> int:
        """A multiple of 32 (the encoder halves the image five times): the automatic size rounded down."""
        from medtune.models.segmenters import SIZE_MULTIPLE, check_segment_size

        if not given:
            size = max(SIZE_MULTIPLE, size // SIZE_MULTIPLE * SIZE_MULTIPLE)
        check_segment_size(size)
        return size

    def network_name(self, config: Config) -> str:
        return f"{config.arch}-{config.backbone}"

    def checkpoint_meta(self, table: Table) -> dict[str, Any]:
        return {"task": "segment"}

    def create_network(self, config: Config, table: Table, in_chans: int, network: Any = None) -> nn.Module:
        """An smp architecture (``arch=``) on a timm encoder (``backbone=``), one mask logit per pixel."""
        from medtune.models.segmenters import create_segmenter

        return create_segmenter(config.arch, config.backbone, in_chans, config.pretrained, config.weights)

    def check_trainable(self, table: Table) -> Table:
        """A segmenter learns from masks: every image needs one (`attach_masks` has refused images without)."""
        if len(table) < 3:
            raise DataError(
                f"{table.source} has {len(table)} image(s) with masks; a train, val and test split need more"
            )
        return table

    def training_targets(self, table: Table) -> np.ndarray | None:
        return None  # a segmenter's target is the mask, stored as the image's last channel

    def loss(self, config: Config, weights: torch.Tensor | None, num_classes: int) -> nn.Module:
        from medtune.training.segment_losses import create_segment_loss

        return create_segment_loss(config.loss)

    def create_epoch_metrics(self, num_outputs: int, prefix: str) -> Any:
        return create_segment_metrics(prefix)

    def pretrained_part(self, model: nn.Module) -> nn.Module:
        return model.encoder

    def split_batch(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return split_batch(batch[0])

    def loss_targets(self, targets: torch.Tensor) -> torch.Tensor:
        return targets

    def metric_inputs(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # logit 0 is probability 0.5, the mask threshold
        return (logits >= 0).long().squeeze(1), targets.long().squeeze(1)

    def test_summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        intervals = metrics.get("intervals", {})
        return {name: [metrics.get(name), *(intervals.get(name) or [None, None])] for name in ("dice", "iou", "hd95")}

    def agreement(self, probs: np.ndarray, other: np.ndarray) -> float:
        """The share of pixels on the same side of the mask threshold."""
        from medtune.models.segmenters import MASK_THRESHOLD

        return float(((probs >= MASK_THRESHOLD) == (other >= MASK_THRESHOLD)).mean())

    def strata(self, frame: pd.DataFrame) -> Any:
        return frame["label"].fillna("")
