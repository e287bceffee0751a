"""Lightning callbacks of a run: ``history.csv`` (one row per epoch, rewritten atomically) with a plain per-epoch
line for logs when no progress bar is shown, the progress bar's epochs counted from 1, the thread count that follows
the cores other processes leave, and checkpoints written atomically."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.plugins.io import TorchCheckpointIO
from rich.console import Console

from medtune._io import atomic_open
from medtune.runs.run import EPOCH_BASE, HISTORY_COLUMNS, read_history
from medtune.runs.trained import write_checkpoint_file


class HistoryWriter(L.Callback):
    """Append one row per finished epoch to ``history.csv``: the epoch (counted from 1, as the log line says it),
    train and validation loss, accuracy, balanced accuracy, macro F1 and ROC AUC, the learning rate and the epoch's
    seconds.

    An epoch is reported (its row written, its line printed) only once its checkpoint is on disk: the row is made
    when the epoch ends and kept as this callback's state, which Lightning saves inside that epoch's checkpoint (its
    checkpoint callbacks run after every other callback's ``on_train_epoch_end``); it is written when the next
    epoch starts or training ends, or, after a kill, when the run resumes from that checkpoint. A kill or a cancel
    right after a report therefore never loses the reported epoch. On resume, rows of epochs trained again are
    replaced, so the file always matches the weights. A run written before epochs were counted from 1 resumes
    too: `medtune.runs.read_history` reads its file from 1, and a pending row saved without ``epoch_base`` is
    moved up by one.

    Args:
        path: the ``history.csv`` file.
        echo: also print a one-line summary of each epoch (for logs, where no progress bar is drawn).
        prefix: put before each printed line.
        columns: the file's columns (`medtune.runs.run.history_columns`: a segmentation run logs Dice and IoU).
        on_row: called with each row once it is written (run tracking: `medtune.fitting.tracking`).
    """

    def __init__(
        self,
        path: str | Path,
        echo: bool = False,
        prefix: str = "",
        columns: tuple[str, ...] = HISTORY_COLUMNS,
        on_row: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.columns = columns
        self.metrics = tuple(c for c in columns if c.startswith(("train_", "val_")))
        self.echo = echo
        self.prefix = prefix
        self.on_row = on_row
        self._started = 0.0
        self._lr = math.nan
        self._pending: dict[str, Any] | None = None
        self._max_epochs: int | None = None
        self._console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()  # the previous epoch's checkpoint is written by now
        self._started = time.perf_counter()
        self._lr = max(group["lr"] for group in trainer.optimizers[0].param_groups)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush()

    def state_dict(self) -> dict[str, Any]:
        return {"pending": self._pending, "max_epochs": self._max_epochs, "epoch_base": EPOCH_BASE}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("pending")  # an epoch whose checkpoint was written, its report not yet
        if self._pending is not None and state_dict.get("epoch_base") != EPOCH_BASE:
            self._pending = {**self._pending, "epoch": int(self._pending["epoch"]) + 1}  # saved when counted from 0
        self._max_epochs = state_dict.get("max_epochs")

    def _flush(self) -> None:
        row, self._pending = self._pending, None
        if row is None:
            return
        history = read_history(self.path)
        history = history[history["epoch"] < row["epoch"]] if len(history) else history
        self._write(
            pd.concat([history, pd.DataFrame([row])], ignore_index=True) if len(history) else pd.DataFrame([row])
        )
        if self.echo:
            self._console.print(self.prefix + _epoch_line(row, self._max_epochs, self.metrics))
        if self.on_row is not None:
            self.on_row(row)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items()}
        row: dict[str, Any] = {"epoch": trainer.current_epoch + 1}  # Lightning counts from 0, people from 1
        row.update({column: metrics.get(column, math.nan) for column in self.metrics})
        row["lr"] = self._lr  # at the start of the epoch (warm-up and schedules move it every step)
        frozen = getattr(pl_module, "backbone_frozen", None)
        row["backbone_frozen"] = bool(frozen(trainer.current_epoch)) if frozen else False
        share = getattr(pl_module, "trainable_share", None)
        if "trainable" in self.columns:
            row["trainable"] = round(share(), 4) if share else math.nan
        row["seconds"] = round(time.perf_counter() - self._started, 3)
        self._pending, self._max_epochs = row, trainer.max_epochs  # saved in this epoch's checkpoint, then written

    def _write(self, frame: pd.DataFrame) -> None:
        with atomic_open(self.path, "w", encoding="utf-8", newline="") as f:
            frame.reindex(columns=list(self.columns)).to_csv(f, index=False, float_format="%.6g")


_SHOWN_TRAIN = ("loss", "acc", "dice")
_SHORT = {"balanced_acc": "bal.acc"}


def _epoch_line(row: dict[str, Any], max_epochs: int | None, metrics: tuple[str, ...]) -> str:
    def fmt(value: float) -> str:
        return "nan" if value is None or math.isnan(value) else f"{value:.4f}"

    def part(split: str) -> str:
        names = [m.split("_", 1)[1] for m in metrics if m.startswith(f"{split}_")]
        names = [n for n in names if split == "val" or n in _SHOWN_TRAIN]
        return f"{split} " + " ".join(f"{_SHORT.get(n, n)} {fmt(row[f'{split}_{n}'])}" for n in names)

    return (
        f"epoch {row['epoch']}/{max_epochs}: {part('train')} | {part('val')} | lr {row['lr']:.2e} | "
        f"{row['seconds']:.1f} s"
    )


class SharedCores(L.Callback):
    """Train on the cores other processes leave free (`medtune.training.threads`): measured after each step over
    at least a second, ``torch.set_num_threads`` changed, and restored when training ends. A change is said in one
    line once it has held for `settle` seconds (`medtune.training.threads.LastingChange`), so a load that flickers
    does not fill the log.

    Args:
        prefix: put before the printed line.
        settle: seconds a new thread count must hold before it is said.
    """

    def __init__(self, prefix: str = "", settle: float | None = None) -> None:
        self.prefix = prefix
        self.settle = settle
        self._governor: Any = None
        self._said: Any = None
        self._start = 0
        self._console = Console(stderr=True, highlight=False, markup=False, soft_wrap=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        from medtune.training.threads import SETTLE, LastingChange, ThreadGovernor

        self._start = torch.get_num_threads()
        self._governor = ThreadGovernor(self._start)
        self._said = LastingChange(self._start, SETTLE if self.settle is None else self.settle)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self._governor is None:
            return
        import torch

        from medtune.training.threads import cores_message

        threads = self._governor.update()
        if threads is not None:
            torch.set_num_threads(threads)
        previous = self._said.said
        lasting = self._said.update(self._governor.current, time.monotonic())
        if lasting is not None:
            message = cores_message(lasting, previous, self._governor.cores, self._governor.most)
            self._console.print(self.prefix + message)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import torch

        if self._governor is not None and torch.get_num_threads() != self._start:
            torch.set_num_threads(self._start)


class EpochBar(RichProgressBar):
    """Lightning's rich progress bar, its epochs counted from 1 of the total (``Epoch 1/5``) as ``history.csv``
    and the log line count them; Lightning's own says ``Epoch 0/4`` for the first of five."""

    def _get_train_description(self, current_epoch: int) -> str:
        total = self.trainer.max_epochs
        text = f"Epoch {current_epoch + 1}" + (f"/{total}" if total is not None and total > 0 else "")
        return f"{text:{len(self.validation_description)}}"  # padded as Lightning pads it, so the bar does not jump


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: the checkpoint is serialised in memory, written to a temporary
    file beside its name, synced, then renamed. Lightning's own writes the final file in place, so a full disk or a
    kill mid-write left a truncated ``last.ckpt`` that the next run would resume from; now the previous checkpoint
    stays whole and a full disk is a `medtune.errors.DiskFullError` naming the run folder."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        write_checkpoint_file(path, checkpoint)
