"""The LightningModule of a segmentation run: receives a plain smp network and owns the loss, the per-epoch Dice
and IoU, the optimizer and the transfer strategy (the encoder frozen or not).

A batch is a store batch: ``(B, C + 1, H, W)`` uint8 whose last channel is the mask (0 or 255), moved with the
image by the augmentation's one draw of geometry (`medtune.training.augment.MaskedTransform`).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from medtune.config import Config
from medtune.fitting.module import TransferModule
from medtune.models import Preprocessing
from medtune.training.segment_losses import create_segment_loss


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


class SegmenterModule(TransferModule):
    """Training and validation steps of a binary segmenter; the encoder is the part the strategy may freeze.

    Args:
        model: the network (`medtune.models.segmenters.create_segmenter`), logits out.
        config: the resolved configuration (loss, optimizer, schedule and strategy keys).
        preprocessing: the encoder's normalisation.
        meta: what every checkpoint embeds besides the weights (task, config, preprocessing, version).
    """

    def __init__(self, model: nn.Module, config: Config, preprocessing: Preprocessing, meta: dict[str, Any]) -> None:
        super().__init__(model, config, preprocessing, meta)
        self.loss = create_segment_loss(config.loss)
        self.train_metrics = create_segment_metrics("train_")
        self.val_metrics = create_segment_metrics("val_")

    def pretrained_part(self) -> nn.Module:
        return self.model.encoder

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], metrics: Any, split: str) -> torch.Tensor:
        pixels, target = split_batch(batch[0])
        logits = self(pixels)
        loss = self.loss(logits, target)
        predicted = (logits.detach() >= 0).long().squeeze(1)  # logit 0: probability 0.5, the mask threshold
        metrics.update(predicted, target.long().squeeze(1))
        self.record(split, loss, len(pixels))
        return loss

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, self.train_metrics, "train")

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, self.val_metrics, "val")
