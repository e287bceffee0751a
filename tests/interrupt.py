"""A run stopped partway, in the test's own process: what a kill during epoch 2 leaves (``last.ckpt`` of epoch 1,
nothing finished), without a second process."""

from __future__ import annotations

import lightning as L


class Killed(Exception):
    """Raised where the process would have been killed."""


class StopAtSecondEpoch(L.Callback):
    """Stands for a process killed during epoch 2: last.ckpt holds epoch 1, nothing else is finished."""

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            raise Killed
