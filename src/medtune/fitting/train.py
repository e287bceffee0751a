"""``medtune train``: data to a trained, evaluated run directory, on Lightning.

The recipe: prepare the data (`medtune.runs.prepare_dataset`: table, masks, split by patient when there are groups,
resolution, image store), build a timm backbone with a head, train with the chosen strategy, keep the best and the
last checkpoints, then evaluate the best weights on the test split. The same call on an unfinished run resumes it
from ``last.ckpt``. `train_and_report` then writes the report page (the command line, ``medtune.train`` and the
experiment queue call it). With ``logger=tensorboard|mlflow`` the run is tracked as it goes
(`medtune.fitting.tracking`).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medtune._version import __version__
from medtune.config import Config, monitor_mode
from medtune.data.table import Table
from medtune.errors import DataError
from medtune.fitting.keep import keep_checkpoint
from medtune.fitting.tracking import Tracker, check_tracking, reopen_tracker, tracked
from medtune.models.custom import NetworkSource
from medtune.runs import PreparedDataset, Run, prepare_dataset, prepare_run, read_dataset_table, resolve_config
from medtune.runs.network import read_network
from medtune.runs.run import history_columns
from medtune.runs.trained import network_state, read_checkpoint_file
from medtune.tasks import Task, task_for

#: How much faster a frozen-backbone epoch is on cached features (`benchmarks/freeze.py`, PneumoniaMNIST, 2 cores).
FEATURE_SPEEDUP = "16x at 64 px and 74x at 128 px"


@dataclass(frozen=True)
class TrainResult:
    """What a finished `train` call gives back.

    Attributes:
        run: the run directory.
        metrics: the final evaluation (``metrics.json``).
        resumed: True when training continued an interrupted run.
        report: the report page (None with ``report=false``, when it failed, or before it was written).
        report_error: why the report could not be written.
    """

    run: Run
    metrics: dict[str, Any]
    resumed: bool
    report: Path | None = None
    report_error: str | None = None


def train_and_report(
    config: Config,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    log_prefix: str = "",
) -> TrainResult:
    """`train`, then the run's report page unless ``report=false``. A report that cannot be written leaves the
    run complete, with ``report_error`` saying why."""
    from dataclasses import replace

    result = train(config, out, progress=progress, callbacks=callbacks, log_prefix=log_prefix)
    if not config.report:
        return result
    from medtune.reports import write_run_report

    page, problem = write_run_report(result.run.path)
    tracker = reopen_tracker(config, result.run) if page is not None else None
    if tracker is not None:
        tracker.log_report(page)  # logger=mlflow: the page and its plots join the run's artifacts
    return replace(result, report=page, report_error=problem)


def train(
    config: Config,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    log_prefix: str = "",
) -> TrainResult:
    """Train and evaluate a classifier as `config` says, in a run directory.

    Args:
        config: the configuration; ``config.data`` names the data.
        out: the run directory (default ``runs/<data>-<backbone>``, numbered when taken).
        progress: show progress bars on a terminal.
        callbacks: more Lightning callbacks (the experiment queue's heartbeat checks and pruning).
        log_prefix: put before each per-epoch log line (which experiment it is, when several run at once).

    Returns:
        The run, its final metrics, and whether it resumed (no report: see `medtune.train`).

    Raises:
        ConfigError: no data, a key that does not fit the data, an occupied ``--out``, or an MLflow store that
            cannot be opened.
        DataError: the data cannot be used (each problem is named with its fix).
        MissingDependencyError: ``logger=tensorboard|mlflow`` without ``pip install 'medtune[tracking]'``.

    >>> from medtune.config import load_config
    >>> result = train(load_config(data="pneumoniamnist.npz"))  # doctest: +SKIP
    >>> result.metrics["macro"]["auc"]  # doctest: +SKIP
    """
    task = task_for(config)
    check_tracking(config)  # a missing tracking package is said before any work
    table = read_dataset_table(config, labelled=True if task.labelled else None)
    task = task_for(config, table)
    table = task.check_trainable(table)
    resolved = resolve_config(config, table)
    run, resumed = prepare_run(resolved.config, out)
    if config.shortcut_check and task.labelled:
        check_shortcuts(table, run, log_prefix)
    dataset = prepare_dataset(
        resolved.config, run, table=table, create_split=not resumed, labelled=True if task.labelled else None,
        progress=progress,
    )  # fmt: skip
    with tracked(resolved.config, run, log_prefix) as tracker:  # logger=tensorboard|mlflow
        model = fit(dataset, run, resumed, progress, callbacks, log_prefix, tracker)
        metrics = evaluate_trained(task, model, dataset, run)
        if config.guard and task.labelled:
            fit_run_guard(run, progress, log_prefix)
        if tracker is not None:
            tracker.log_outcome(resolved.config, run, metrics)
    return TrainResult(run, metrics, resumed)


def fit_run_guard(run: Run, progress: bool = True, log_prefix: str = "") -> None:
    """Fit the trained classifier's guard (`medtune.apply.guard`) into ``RUN/guard/``; a run with too few images
    for one trains all the same, and says so."""
    from medtune.apply.guard import fit_guard

    try:
        guard = fit_guard(run.path, progress=progress)
    except DataError as exc:
        print(f"{log_prefix}note: no guard fitted ({exc}); guard=false skips it", file=sys.stderr)
        return
    meta = guard.meta
    print(f"{log_prefix}guard fitted: {meta['accepted_validation']:.1%} of {meta['validation_images']} validation "
          f"images pass, {1000 * meta['seconds_per_image']:.1f} ms per image", file=sys.stderr)  # fmt: skip


def check_shortcuts(table: Table, run: Run, log_prefix: str = "") -> list[str]:
    """The class-by-source check of `data shortcuts` on the training table, in the default path: each warning is
    printed and kept in ``RUN/shortcuts.json`` (the report shows them first). Nothing when the table has no
    source column (``domain=``, or one named source, site, hospital, scanner...)."""
    from medtune._io import write_json
    from medtune.features.shortcuts import table_shortcuts

    counts, found = table_shortcuts(table)
    if counts.empty:
        return []
    for warning in found:
        print(f"{log_prefix}warning: {warning} (shortcut_check=false turns this check off)", file=sys.stderr)
    write_json(run.shortcuts_file, {"counts": {str(c): {str(d): int(n) for d, n in row.items()}
                                               for c, row in counts.iterrows()}, "warnings": found})  # fmt: skip
    return found


def evaluate_trained(task: Task, network: torch.nn.Module, dataset: PreparedDataset, run: Run) -> dict[str, Any]:
    """Evaluate the network training just gave `run` on its test split: a classifier with
    `medtune.apply.evaluate.evaluate_split`, a segmenter (a task without labels) with `medtune.apply.segment_eval`."""
    if task.labelled:
        from medtune.apply.evaluate import evaluate_split

        return evaluate_split(network, dataset, run.path)
    from medtune.apply.segment_eval import evaluate_segment_split
    from medtune.runs.trained import TrainedSegmenter

    segmenter = TrainedSegmenter(network, dataset.resolved.preprocessing, dataset.config, run.best_checkpoint)
    return evaluate_segment_split(segmenter, dataset, run.path)


def fit(
    dataset: PreparedDataset,
    run: Run,
    resumed: bool,
    progress: bool = True,
    extra_callbacks: Sequence[Any] = (),
    log_prefix: str = "",
    tracker: Tracker | None = None,
) -> torch.nn.Module:
    """Train the network of `dataset`'s configuration on its train split, checking on its val split; return the
    best (else last) weights in eval mode. `tracker` logs each epoch (`medtune.fitting.tracking`)."""
    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no GPU/TPU banner, tips or loader notes
    config = dataset.config
    if config.threads:
        torch.set_num_threads(config.threads)  # pinned: no following of other processes (`SharedCores`)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = create_module(dataset, read_network(run.network_dir))
    loaders = feature_loaders(dataset, module, progress, log_prefix)
    train_loader, val_loader = loaders or create_loaders(dataset)
    trainer = create_trainer(config, run, progress, extra_callbacks, log_prefix, len(train_loader), tracker)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*No positive samples in targets.*")
        warnings.filterwarnings("ignore", message=".*No negative samples in targets.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        if resumed:
            read_checkpoint_file(run.last_checkpoint)  # tensors and plain values only, else a named refusal
        trainer.fit(module, train_loader, val_loader, ckpt_path=run.last_checkpoint if resumed else None,
                    weights_only=True)  # fmt: skip
    best = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
    model = module.model
    if trainer.world_size > 1:
        if not trainer.is_global_zero:
            raise SystemExit(0)  # a process Lightning started for distributed training: the first one evaluates
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    keep_checkpoint(model, dataset, run)
    model.load_state_dict(network_state(read_checkpoint_file(best)))
    return model.eval()


def create_loaders(dataset: PreparedDataset) -> tuple[Any, Any]:
    """The shuffled, augmented training loader (weighted with ``sampler=weighted``) and the validation loader."""
    from medtune.data.loader import StoreDataset
    from medtune.training.augment import create_train_transform, resolve_augment

    config = dataset.config
    targets = task_for(config, dataset.table).training_targets(dataset.table)
    train_rows, val_rows = dataset.rows("train"), dataset.rows("val")
    transform = create_train_transform(resolve_augment(config.sections.augmentation), config.image_size, config.mask)
    train_set = StoreDataset(dataset.store, train_rows, targets, transform, seed=config.seed)
    return _split_loaders(dataset, train_set, StoreDataset(dataset.store, val_rows, targets))


def _split_loaders(dataset: PreparedDataset, train_set: Any, val_set: Any) -> tuple[Any, Any]:
    """Loaders of a training and a validation dataset (store rows or cached features): the training one shuffled
    by the seed, weighted with ``sampler=weighted``, its batches shared between distributed processes; the
    validation one split by rows."""
    from medtune.data.loader import create_store_loader

    config, table = dataset.config, dataset.table
    train_rows = dataset.rows("train")
    weights = None
    if config.sampler == "weighted":
        weights = task_for(config, table).sample_weights(table, train_rows)
    drop_last = len(train_rows) > config.batch_size
    train_loader = create_store_loader(train_set, config.batch_size, True, drop_last, config.seed, weights, "batch")
    return train_loader, create_store_loader(val_set, max(64, config.batch_size), shard="rows")


def feature_loaders(
    dataset: PreparedDataset, module: Any, progress: bool, log_prefix: str = ""
) -> tuple[Any, Any] | None:
    """With ``strategy=freeze`` and no augmentation the frozen backbone sees each image the same way in every
    epoch, so its features are computed once (the cache `medtune embed` shares) and `module` trains its head on
    them: loaders of features in the order the image loaders would give. None on every other path; with a
    frozen backbone and augmentation, one line says what that costs and how to take the fast path."""
    from medtune.data.loader import FeatureDataset
    from medtune.training.augment import create_train_transform, resolve_augment

    config, table = dataset.config, dataset.table
    if not hasattr(module.model, "head") or config.strategy != "freeze" or not config.cache_features:
        return None
    if (
        create_train_transform(resolve_augment(config.sections.augmentation), config.image_size, config.mask)
        is not None
    ):
        print(f"{log_prefix}strategy=freeze with augment={config.augment} runs the frozen backbone over every image in "
              f"every epoch; augment=none computes its features once and trains the head on them, "
              f"{FEATURE_SPEEDUP} faster per epoch", file=sys.stderr)  # fmt: skip
        return None
    from medtune.features.embed import cached_features

    features, _ = cached_features(dataset, module.model.backbone, progress=progress)
    module.train_on_features()
    targets = table.targets()
    train_set = FeatureDataset(features, dataset.rows("train"), targets)
    return _split_loaders(dataset, train_set, FeatureDataset(features, dataset.rows("val"), targets))


def create_module(dataset: PreparedDataset, network: NetworkSource | None = None) -> Any:
    """The LightningModule around a new network for `dataset` (the task builds it: a backbone and head, or a
    segmenter), with the loss weights of its training split and the facts every checkpoint embeds (`network`: your
    own network's code, as the run recorded it)."""
    from medtune.fitting.module import TaskModule

    config, table, resolved = dataset.config, dataset.table, dataset.resolved
    task = task_for(config, table)
    model = task.create_network(config, table, resolved.in_chans, network)
    meta = {
        "network": network.to_dict() if network else None,
        "version": __version__,
        **task.checkpoint_meta(table),
        "in_chans": resolved.in_chans,
        "config": config.model_dump(mode="json"),
        "preprocessing": resolved.preprocessing.to_dict(),
    }
    weights = task.loss_weights(config, table, dataset.rows("train"))
    return TaskModule(model, config, resolved.preprocessing, task, weights, meta, len(table.classes))


def create_trainer(
    config: Config,
    run: Run,
    progress: bool,
    extra_callbacks: Sequence[Any],
    log_prefix: str,
    steps_per_epoch: int,
    tracker: Tracker | None = None,
) -> Any:
    """A Lightning Trainer with the run's checkpoints (best by ``monitor=`` and last), its history (each row also
    to `tracker`), early stopping and a progress bar on a terminal."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from medtune.fitting.callbacks import AtomicCheckpointIO, EpochBar, HistoryWriter, SharedCores

    mode = monitor_mode(config.monitor)
    checkpoint = ModelCheckpoint(
        dirpath=run.checkpoints, filename="best", monitor=config.monitor, mode=mode, save_top_k=1, save_last=False,
        enable_version_counter=False, auto_insert_metric_name=False,
    )  # fmt: skip
    # Lightning 2.6 writes save_last's last.ckpt only when a top-k checkpoint is saved at the same step, so with
    # save_top_k=1 it held the best epoch, not the last: a second callback without a monitor writes it every epoch.
    last = ModelCheckpoint(dirpath=run.checkpoints, filename="last", monitor=None, save_top_k=1, every_n_epochs=1,
                           enable_version_counter=False, auto_insert_metric_name=False)  # fmt: skip
    interactive = progress and sys.stderr.isatty()
    history = HistoryWriter(run.history_file, echo=not interactive, prefix=log_prefix, columns=history_columns(config),
                            on_row=tracker.log_epoch if tracker is not None else None)  # fmt: skip
    callbacks: list[Any] = [checkpoint, last, history]
    if config.threads == 0 and not _on_gpu(config):
        callbacks.append(SharedCores(prefix=log_prefix))
    if config.patience > 0:
        callbacks.append(EarlyStopping(config.monitor, mode=mode, patience=config.patience, check_finite=False))
    if interactive:
        callbacks.append(EpochBar(leave=True))
    callbacks.extend(extra_callbacks)
    return L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        num_nodes=config.num_nodes,
        strategy=_distributed_strategy(config),
        # medtune's samplers share each batch between the processes themselves (one process's batches, split)
        use_distributed_sampler=False,
        sync_batchnorm=_distributed(config) and _on_gpu(config),  # SyncBatchNorm needs GPU modules
        precision=_precision(config),
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=interactive,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run.path,
        log_every_n_steps=max(1, min(50, steps_per_epoch)),
        plugins=[AtomicCheckpointIO()],
    )


def _distributed(config: Config) -> bool:
    return config.num_nodes > 1 or config.devices not in ("auto", 1, "1")


def _distributed_strategy(config: Config) -> str:
    """Lightning's strategy: DDP for several processes, told that a frozen backbone's weights get no gradients."""
    if config.distributed == "auto" and _distributed(config) and config.strategy != "finetune":
        return "ddp_find_unused_parameters_true"
    return config.distributed


def _on_gpu(config: Config) -> bool:
    return torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda")


def _precision(config: Config) -> str:
    if config.precision != "auto":
        return config.precision
    if _on_gpu(config):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"
