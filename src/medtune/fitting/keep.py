"""Which epoch's weights a classifier keeps: the best validation score only when it is more than luck.

``keep=best`` keeps the epoch with the best monitored validation score, as Lightning's checkpoint does.
``keep=last`` keeps the last epoch. ``keep=auto`` (the default) keeps the last epoch of the schedule, when the
learning rate has decayed, unless

- early stopping ended training (validation had stopped improving for ``patience`` epochs: the best epoch), or
- the best epoch beats the last on at least `WIN_SHARE` of paired bootstrap resamples of the validation images
  (`medtune.metrics.compare.share_better`).

A small or saturated validation split crowns an epoch by chance: on PneumoniaMNIST the second and the fifth of six
epochs scored validation AUC 0.99615 and 0.99608. The decision, with the numbers behind it and its epochs counted
from 1 as the training log says them (``epoch_base``: 1), is written to ``kept.json``; ``best.ckpt`` holds the kept
weights, so every later command uses them. Segmenters and multi-label runs keep the best epoch.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pandas as pd
from torch import nn

from medtune._io import write_json
from medtune.apply.scoring import store_probabilities
from medtune.config import monitor_mode
from medtune.metrics.compare import share_better
from medtune.runs import PreparedDataset, Run, read_history
from medtune.runs.run import EPOCH_BASE
from medtune.runs.trained import network_state, read_checkpoint_file
from medtune.tasks import task_for

#: ``keep=auto`` keeps the best epoch when it wins at least this share of paired resamples of the validation split.
WIN_SHARE = 0.95


def _best_row(history: pd.DataFrame, monitor: str) -> pd.Series:
    """The first epoch with the best monitored value (Lightning replaces its best only on a strict gain)."""
    values = history[monitor]
    best = values.min() if monitor_mode(monitor) == "min" else values.max()
    return history[values == best].iloc[0]


def keep_checkpoint(network: nn.Module, dataset: PreparedDataset, run: Run) -> dict[str, Any] | None:
    """Decide which epoch's weights the run keeps, put them in ``best.ckpt`` and write ``kept.json``.

    Args:
        network: the classifier (its weights are replaced while the two epochs are compared).
        dataset: the run's prepared dataset (the validation split is scored).
        run: the run directory, after training.

    Returns:
        The decision as written to ``kept.json``, or None where the best epoch is kept without a decision file
        (segmenters, multi-label runs, no history or checkpoints).
    """
    config, table = dataset.config, dataset.table
    if not task_for(config, table).single_label or not run.history_file.is_file():
        return None
    if not (run.best_checkpoint.is_file() and run.last_checkpoint.is_file()) or not len(table.positions("val")):
        return None
    if run.kept_file.is_file():  # an earlier process decided, then stopped before the evaluation: keep its choice
        return None
    history = read_history(run.history_file)
    best, last = _best_row(history, config.monitor), history.iloc[-1]
    decision: dict[str, Any] = {"rule": config.keep, "monitor": config.monitor, "best_epoch": int(best["epoch"]),
                                "last_epoch": int(last["epoch"]), "best": float(best[config.monitor]),
                                "last": float(last[config.monitor])}  # fmt: skip
    stopped_early = len(history) < int(config.epochs or len(history))
    if decision["best_epoch"] == decision["last_epoch"]:
        keep, reason = "best", "the last epoch scored best on validation"
    elif config.keep != "auto":
        keep, reason = config.keep, f"keep={config.keep}"
    elif stopped_early and config.patience > 0:
        keep, reason = "best", f"early stopping ended training ({config.patience} epochs without a better score)"
    else:
        decision["share_better"] = _share_best_wins(network, dataset, run, config.monitor)
        won = decision["share_better"] >= WIN_SHARE
        keep = "best" if won else "last"
        reason = (f"the best epoch beat the last on {decision['share_better']:.0%} of paired bootstrap resamples of "
                  f"the validation images ({'at least' if won else 'under'} {WIN_SHARE:.0%})")  # fmt: skip
    decision.update(epoch=decision[f"{keep}_epoch"], epoch_base=EPOCH_BASE, kept=keep, reason=reason)
    if keep == "last" and decision["best_epoch"] != decision["last_epoch"]:
        _replace(run.last_checkpoint, run.best_checkpoint)
    write_json(run.kept_file, decision)
    return decision


def _share_best_wins(network: nn.Module, dataset: PreparedDataset, run: Run, monitor: str) -> float:
    """Score the validation split with the best and the last epoch's weights; the share of paired resamples on
    which the best epoch scores strictly better."""
    rows = dataset.table.positions("val")
    targets = dataset.table.targets()[rows]
    activation = task_for(dataset.config, dataset.table).activation
    probs = []
    for checkpoint in (run.best_checkpoint, run.last_checkpoint):
        network.load_state_dict(network_state(read_checkpoint_file(checkpoint)))
        network.eval()
        probs.append(store_probabilities(network, dataset.resolved.preprocessing, dataset.store, rows, dataset.config,
                                         activation=activation))  # fmt: skip
    return share_better(targets, probs[0], probs[1], monitor.removeprefix("val_"), seed=dataset.config.seed)


def _replace(source: os.PathLike, target: os.PathLike) -> None:
    """Copy `source` over `target` atomically (a temporary file beside it, then a rename)."""
    temporary = f"{os.fspath(target)}.tmp"
    shutil.copyfile(source, temporary)
    os.replace(temporary, target)
