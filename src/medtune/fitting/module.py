"""The LightningModule of every run: `TransferModule` holds what every task shares (normalisation, the transfer
strategy, the optimizer, the checkpoint's facts); `TaskModule` receives a plain network and asks the run's task
(`medtune.tasks.Task`) for its loss, its per-epoch metrics and what a batch holds."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torchmetrics import MeanMetric, MetricCollection

from medtune.config import Config
from medtune.models import Preprocessing
from medtune.models.inference import Normalize, to_probabilities, to_unit
from medtune.models.stages import frozen_norm_layers, frozen_parameters, still_frozen
from medtune.tasks import Task
from medtune.training.augment import create_mixup
from medtune.training.optim import create_optimizer, create_scheduler


class TransferModule(L.LightningModule):
    """What every medtune LightningModule shares: the network behind its normalisation, the transfer strategy
    (which parts learn in which epoch), the optimizer and schedule, and the facts each checkpoint embeds.

    Args:
        model: the network; its pretrained part is the task's (a classifier's backbone, a segmenter's encoder).
        config: the resolved configuration (optimizer, schedule and strategy keys).
        preprocessing: the pretrained network's normalisation.
        meta: what every checkpoint embeds besides the weights (config, preprocessing, version...).
        task: the run's task.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: Config,
        preprocessing: Preprocessing,
        meta: dict[str, Any] | None,
        task: Task,
    ) -> None:
        super().__init__()
        self.task = task
        self.model = model
        self.config = config
        self.normalize = Normalize(preprocessing, config.channels_last)
        self.meta = meta or {}
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_loss_mean, self.val_loss_mean = MeanMetric(), MeanMetric()
        self.train_metrics: MetricCollection | None = None
        self._frozen: set[str] | None = None
        self._frozen_norms: list[torch.nn.Module] | None = None
        if config.freeze:
            self.frozen_stages()  # a backbone without stages is refused before training starts
        self.val_metrics: MetricCollection | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(images))

    # --- transfer strategy -------------------------------------------------------------------------------------

    def pretrained_part(self) -> torch.nn.Module:
        """The part that starts from pretrained weights and the strategy may freeze (the task says which)."""
        return self.task.pretrained_part(self.model)

    def backbone_frozen(self, epoch: int) -> bool:
        """Whether the pretrained part (weights and batch-norm statistics) stays fixed in `epoch`."""
        strategy = self.config.strategy
        return strategy == "freeze" or (strategy == "gradual" and epoch < self.config.freeze_epochs)

    def frozen_stages(self, epoch: int | None = None) -> set[str]:
        """Names (in the pretrained part) of the parameters ``freeze=N`` holds fixed in every epoch, and with
        `epoch` and ``unfreeze=stages``, those of the stages gradual unfreezing has not reached yet."""
        if self._frozen is None:
            self._frozen = frozen_parameters(self.pretrained_part(), self.config.freeze, self.config.backbone)
        if epoch is None or self.config.unfreeze != "stages" or self.backbone_frozen(epoch):
            return self._frozen
        unfrozen = epoch - self.config.freeze_epochs + 1  # the head's epochs, then one more stage per epoch
        return self._frozen | still_frozen(self.pretrained_part(), unfrozen, self.config.backbone)

    def trainable_share(self) -> float:
        """The share of the network's parameters that learn in the current epoch."""
        counts = [(p.numel(), p.requires_grad) for p in self.model.parameters()]
        return sum(n for n, learns in counts if learns) / max(1, sum(n for n, _ in counts))

    def on_train_epoch_start(self) -> None:
        frozen = self.backbone_frozen(self.current_epoch)
        part = self.pretrained_part()
        part.requires_grad_(not frozen)
        fixed = self.frozen_stages(self.current_epoch)
        for name, param in part.named_parameters():
            if name in fixed:
                param.requires_grad_(False)
        self._frozen_norms = None  # gradual unfreezing changes them from epoch to epoch
        # Random draws (augmentation, dropout) depend on the seed and the epoch only, so a run resumed from a
        # checkpoint continues exactly as the uninterrupted run would have.
        torch.manual_seed(self.config.seed * 100_003 + self.current_epoch)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        part = self.pretrained_part()
        if self.backbone_frozen(self.current_epoch) and part.training:
            part.eval()  # frozen batch-norm statistics, as with a frozen feature extractor
        elif self._frozen_norms is None:
            self._frozen_norms = frozen_norm_layers(part, self.frozen_stages(self.current_epoch))
        for layer in self._frozen_norms or ():
            layer.eval()  # the frozen stages' batch-norm statistics stay as pretrained

    # --- per-epoch metrics ------------------------------------------------------------------------------------

    def record(self, split: str, loss: torch.Tensor, size: int) -> None:
        """Add a batch's mean loss to its split's epoch mean (the metrics are updated by the step itself)."""
        getattr(self, f"{split}_loss_mean").update(loss.detach(), size)

    def log_epoch(self, split: str) -> None:
        """Log a split's loss and metrics for the epoch, once, and start them afresh.

        Logged once per epoch rather than per step: Lightning's bookkeeping of a value logged in every step costs
        about a millisecond per key and step, as long as a small head's whole step on cached features.
        """
        loss = getattr(self, f"{split}_loss_mean")
        metrics = self.train_metrics if split == "train" else self.val_metrics
        if not loss.update_called:
            return
        values = {f"{split}_loss": loss.compute(), **(metrics.compute() if metrics is not None else {})}
        # torchmetrics has already gathered every process's part; sync_dist averages identical values
        self.log_dict(values, prog_bar=split == "val", on_step=False, on_epoch=True, sync_dist=True)
        loss.reset()
        if metrics is not None:
            metrics.reset()

    def on_validation_epoch_end(self) -> None:
        # Validation runs after the training epoch's last batch, so its metrics are complete here; logged now, the
        # history, the checkpoints and early stopping all see them at the epoch's end.
        if not self.trainer.sanity_checking:
            self.log_epoch("train")
        self.log_epoch("val")

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")  # an epoch without validation

    # --- optimisation and checkpoints --------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        sections = self.config.sections
        optimizer = create_optimizer(self.model, sections.optimisation, sections.model.backbone)
        scheduler = create_scheduler(optimizer, sections.schedule, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["medtune"] = self.meta


class TaskModule(TransferModule):
    """Training, validation and prediction steps of any task: the task owns the loss, the epoch metrics and what
    a batch holds.

    Args:
        model: the network (a `medtune.models.Classifier`, a segmenter...), logits out.
        config: the resolved configuration (loss, optimizer, schedule and strategy keys).
        preprocessing: the pretrained network's normalisation.
        task: the run's task (`medtune.tasks.task_for`).
        class_weights: loss weight per class (multi-label: positive weight per label), or None.
        meta: what every checkpoint embeds besides the weights (config, classes, preprocessing, version).
        num_outputs: the network's outputs (classes or labels) for the epoch metrics.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        config: Config,
        preprocessing: Preprocessing,
        task: Task,
        class_weights: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        num_outputs: int = 0,
    ) -> None:
        super().__init__(model, config, preprocessing, meta, task)
        self.loss = task.loss(config, class_weights, num_outputs)
        # mixup / cutmix (timm's): training batches mixed, the loss given the mixed labels; validation as it is
        self.mix = create_mixup(config.sections.augmentation, num_outputs, not getattr(task, "single_label", True))
        self.train_metrics = task.create_epoch_metrics(num_outputs, "train_")
        self.val_metrics = task.create_epoch_metrics(num_outputs, "val_")
        self.on_features = False

    def train_on_features(self) -> None:
        """Take the frozen backbone's cached features as inputs and train the head alone: the checkpoints keep the
        whole network, the same as when the backbone runs in every step."""
        if self.config.strategy != "freeze":
            raise ValueError("only a frozen backbone can train its head on cached features")
        self.on_features = True

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.on_features:
            return self.model.head(images)
        return super().forward(images)

    # --- steps -------------------------------------------------------------------------------------------------

    def _step(self, batch: Any, metrics: Any, split: str) -> torch.Tensor:
        images, targets = self.task.split_batch(batch)
        loss_targets = self.task.loss_targets(targets)
        if self.mix is not None and split == "train" and len(images) % 2 == 0:  # timm mixes pairs: an even batch
            images, loss_targets = self.mix(to_unit(images), loss_targets)  # mixed in 0-1, as Normalize takes
        logits = self(images)
        loss = self.loss(logits, loss_targets)
        metrics.update(*self.task.metric_inputs(logits.detach(), targets))
        self.record(split, loss, len(targets))
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._step(batch, self.train_metrics, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._step(batch, self.val_metrics, "val")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        probs = to_probabilities(self(images), self.task.activation)
        if self.config.tta:
            probs = (probs + to_probabilities(self(images.flip(-1)), self.task.activation)) / 2
        return probs
