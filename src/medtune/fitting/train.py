"""``medtune train``: data to a trained, evaluated run directory, on Lightning.

The recipe: prepare the data (`medtune.runs.prepare_dataset`: table, masks, split by patient when there are groups,
resolution, image store), build a timm backbone with a head, train with the chosen strategy, keep the best and the
last checkpoints, then evaluate the best weights on the test split. The same call on an unfinished run resumes it
from ``last.ckpt``. `train_and_report` then writes the report page (the command line, ``medtune.train`` and the
experiment queue call it).
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
from medtune.errors import ConfigError, DataError
from medtune.fitting.keep import keep_checkpoint
from medtune.models.custom import NetworkSource
from medtune.runs import PreparedDataset, Run, prepare_dataset, prepare_run, read_dataset_table, resolve_config
from medtune.runs.network import read_network
from medtune.runs.run import history_columns
from medtune.runs.trained import network_state, read_checkpoint_file

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
        ConfigError: no data, a key that does not fit the data, or an occupied ``--out``.
        DataError: the data cannot be used (each problem is named with its fix).

    >>> from medtune.config import load_config
    >>> result = train(load_config(data="../shared/data/pneumoniamnist/pneumoniamnist.npz"))  # doctest: +SKIP
    >>> result.metrics["macro"]["auc"]  # doctest: +SKIP
    """
    segment = config.task == "segment"
    table = read_dataset_table(config, labelled=None if segment else True)
    table = _check_segmentable(table) if segment else _check_trainable(table)
    resolved = resolve_config(config, table)
    run, resumed = prepare_run(resolved.config, out)
    labelled = None if segment else True
    dataset = prepare_dataset(
        resolved.config, run, table=table, create_split=not resumed, labelled=labelled, progress=progress
    )
    model = fit(dataset, run, resumed, progress, callbacks, log_prefix)
    if segment:
        from medtune.apply.segment_eval import evaluate_segment_split
        from medtune.runs.trained import TrainedSegmenter

        segmenter = TrainedSegmenter(model, dataset.resolved.preprocessing, dataset.config, run.best_checkpoint)
        return TrainResult(run, evaluate_segment_split(segmenter, dataset, run.path), resumed)
    from medtune.apply.evaluate import evaluate_split

    metrics = evaluate_split(model, dataset, run.path)
    return TrainResult(run, metrics, resumed)


def _check_segmentable(table: Table) -> Table:
    """A segmenter learns from masks: every image needs one (`attach_masks` has refused images without)."""
    if len(table) < 3:
        raise DataError(f"{table.source} has {len(table)} image(s) with masks; a train, val and test split need more")
    return table


def _check_trainable(table: Table) -> Table:
    if not table.labelled:
        raise DataError(f"{table.source}: training needs a label for every image; unlabelled rows were found")
    if table.multilabel:
        if not table.classes:
            raise DataError(f"{table.source}: no image carries a finding; multi-label training needs at least one")
        return table
    if len(table.classes) < 2:
        raise DataError(f"{table.source} has one class ({table.classes[0]!r}); a classifier needs at least two")
    return table


def fit(
    dataset: PreparedDataset,
    run: Run,
    resumed: bool,
    progress: bool = True,
    extra_callbacks: Sequence[Any] = (),
    log_prefix: str = "",
) -> torch.nn.Module:
    """Train the network of `dataset`'s configuration on its train split, checking on its val split; return the
    best (else last) weights in eval mode."""
    import lightning as L

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no GPU/TPU banner, tips or loader notes
    config = dataset.config
    if config.threads:
        torch.set_num_threads(config.threads)  # pinned: no following of other processes (`SharedCores`)
    L.seed_everything(config.seed, workers=True, verbose=False)
    module = create_module(dataset, read_network(run.network_dir))
    loaders = feature_loaders(dataset, module, progress, log_prefix)
    train_loader, val_loader = loaders or create_loaders(dataset)
    trainer = create_trainer(config, run, progress, extra_callbacks, log_prefix, len(train_loader))
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
    targets = None if config.task == "segment" else dataset.table.targets()  # a segmenter's target: the mask
    train_rows, val_rows = dataset.rows("train"), dataset.rows("val")
    transform = create_train_transform(resolve_augment(config), config.image_size, config.mask)
    train_set = StoreDataset(dataset.store, train_rows, targets, transform, seed=config.seed)
    return _split_loaders(dataset, train_set, StoreDataset(dataset.store, val_rows, targets))


def _split_loaders(dataset: PreparedDataset, train_set: Any, val_set: Any) -> tuple[Any, Any]:
    """Loaders of a training and a validation dataset (store rows or cached features): the training one shuffled
    by the seed, weighted with ``sampler=weighted``, its batches shared between distributed processes; the
    validation one split by rows."""
    from medtune.data.loader import create_store_loader
    from medtune.training.sampling import sample_weights

    config, table = dataset.config, dataset.table
    train_rows = dataset.rows("train")
    weights = None
    if config.sampler == "weighted":
        weights = sample_weights(table.targets()[train_rows], len(table.classes), table.multilabel)
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
    if config.task != "classify" or config.strategy != "freeze" or not config.cache_features:
        return None
    if create_train_transform(resolve_augment(config), config.image_size, config.mask) is not None:
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
    """The LightningModule around a new network (backbone and head) for `dataset`, with the loss weights of its
    training split and the facts every checkpoint embeds (`network`: your own network's code, as the run
    recorded it)."""
    from medtune.fitting.module import ClassifierModule
    from medtune.models import create_classifier
    from medtune.training.sampling import loss_weights

    config, table, resolved = dataset.config, dataset.table, dataset.resolved
    if config.task == "segment":
        return _segmenter_module(dataset)
    num_classes = len(table.classes)
    model = create_classifier(
        config.backbone, num_classes, resolved.in_chans, config.head, config.dropout, config.pretrained,
        config.weights, config.image_size, network,
    )  # fmt: skip
    if config.strategy != "finetune" and not any(True for _ in model.head.parameters()):
        raise ConfigError(
            f"strategy={config.strategy} trains a head apart from the backbone, but the output of {config.backbone} "
            "does not come from a final nn.Linear layer, so it has none; use strategy=finetune, or end the network "
            "with nn.Linear(features, num_classes)"
        )
    meta = {
        "network": network.to_dict() if network else None,
        "version": __version__,
        "classes": list(table.classes),
        "multilabel": table.multilabel,
        "in_chans": resolved.in_chans,
        "config": config.model_dump(mode="json"),
        "preprocessing": resolved.preprocessing.to_dict(),
    }
    targets = table.targets()[dataset.rows("train")]
    weights = loss_weights(config, targets, num_classes, table.multilabel)
    return ClassifierModule(model, config, resolved.preprocessing, weights, meta, table.multilabel)


def _segmenter_module(dataset: PreparedDataset) -> Any:
    from medtune.fitting.segment_module import SegmenterModule
    from medtune.models.segmenters import create_segmenter

    config, resolved = dataset.config, dataset.resolved
    model = create_segmenter(config.arch, config.backbone, resolved.in_chans, config.pretrained, config.weights)
    meta = {
        "version": __version__,
        "task": "segment",
        "in_chans": resolved.in_chans,
        "config": config.model_dump(mode="json"),
        "preprocessing": resolved.preprocessing.to_dict(),
    }
    return SegmenterModule(model, config, resolved.preprocessing, meta)


def create_trainer(
    config: Config, run: Run, progress: bool, extra_callbacks: Sequence[Any], log_prefix: str, steps_per_epoch: int
) -> Any:
    """A Lightning Trainer with the run's checkpoints (best by ``monitor=`` and last), its history, early stopping
    and a progress bar on a terminal."""
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

    from medtune.fitting.callbacks import AtomicCheckpointIO, HistoryWriter, SharedCores

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
    history = HistoryWriter(run.history_file, echo=not interactive, prefix=log_prefix, columns=history_columns(config))
    callbacks: list[Any] = [checkpoint, last, history]
    if config.threads == 0 and not _on_gpu(config):
        callbacks.append(SharedCores(prefix=log_prefix))
    if config.patience > 0:
        callbacks.append(EarlyStopping(config.monitor, mode=mode, patience=config.patience, check_finite=False))
    if interactive:
        callbacks.append(RichProgressBar(leave=True))
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
