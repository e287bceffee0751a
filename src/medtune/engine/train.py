"""``medtune train``: data to a trained, evaluated run directory, on Lightning.

The recipe: read the table, split it (seeded, by patient when there are groups), store the images once, build a
timm backbone with a head, train with the chosen strategy, keep the best and the last checkpoints, then evaluate
the best weights on the test split. The same call on an unfinished run resumes it from ``last.ckpt``.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtune import __version__
from medtune.config import Config
from medtune.data import assign_splits, load_split, read_table, save_split
from medtune.data._decode import decode_entries, table_entries
from medtune.data.images import INTERPOLATIONS
from medtune.data.masks import attach_masks, network_channels
from medtune.data.store import ImageStore, StoreSpec, detect_channels, open_store
from medtune.data.table import Table
from medtune.engine.run import Run, network_state, prepare_run
from medtune.errors import ConfigError, DataError, MedtuneError
from medtune.models import Preprocessing, create_classifier, resolve_preprocessing

#: The smallest working size chosen automatically: EfficientNet-sized networks lose too much below it.
MIN_AUTO_SIZE = 64
#: Multi-label ``class_weights=auto``: the largest positive weight a label gets. Beyond about 20, the two or three
#: positive images of a rare finding dominate its gradient and the network learns to flag it everywhere.
MAX_POS_WEIGHT = 20.0


@dataclass(frozen=True)
class TrainResult:
    """What a finished `train` call gives back.

    Attributes:
        run: the run directory.
        metrics: the final evaluation (``metrics.json``).
        resumed: True when training continued an interrupted run.
        report: the report page (None with ``report=false`` or when it failed).
        report_error: why the report could not be written.
    """

    run: Run
    metrics: dict[str, Any]
    resumed: bool
    report: Path | None = None
    report_error: str | None = None


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
        The run, its final metrics, and whether it resumed.

    Raises:
        ConfigError: no data, a key that does not fit the data, or an occupied ``--out``.
        DataError: the data cannot be used (each problem is named with its fix).

    >>> from medtune.config import load_config
    >>> result = train(load_config(data="../shared/data/pneumoniamnist/pneumoniamnist.npz"))  # doctest: +SKIP
    >>> result.metrics["macro"]["auc"]  # doctest: +SKIP
    """
    if not config.data:
        raise ConfigError("no data given: pass DATA (a folder, a CSV/TSV manifest or an .npz file) or data= in YAML")
    table = attach_masks(_check_trainable(read_table(config.data, config)), config)
    config, preprocessing = resolve_config(config, table)
    run, resumed = prepare_run(config, out)
    table = _split(table, config, run, resumed)
    spec = StoreSpec.from_config(config)
    store = open_store(table, spec, config.cache_dir, config.workers, progress)
    model = _fit(config, table, store, preprocessing, run, resumed, progress, callbacks, log_prefix)
    from medtune.engine.evaluate import evaluate_split

    metrics = evaluate_split(model, preprocessing, table, store, config, run.path)
    report, problem = _report(run) if config.report else (None, None)
    return TrainResult(run, metrics, resumed, report, problem)


def _report(run: Run) -> tuple[Path | None, str | None]:
    """Write the run's report page; a failure is returned as text, since the trained run itself is complete."""
    from medtune.reports import create_report

    try:
        return create_report(run.path), None
    except (MedtuneError, OSError) as exc:
        return None, f"the report could not be written ({exc}); run `medtune report {run.path}` after fixing it"


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


def resolve_config(config: Config, table: Table) -> tuple[Config, Preprocessing]:
    """Fill in what ``auto`` leaves open: the absolute data path, the channel count and the working size.

    The automatic size is the backbone's pretrained size, but never more than the images' own median size
    (rounded up to a multiple of 32, at least 64 px): upscaling 28 px MedMNIST images to 224 px adds no detail and
    costs 12 times the compute.
    """
    channels = (
        config.channels
        if config.channels != "auto"
        else detect_channels(table, window=config.window, frame=config.frame)
    )
    preprocessing = resolve_preprocessing(config.backbone, channels + (config.mask == "channel"))
    size = config.image_size or _auto_size(table, preprocessing.input_size[-1])
    interpolation = config.interpolation or preprocessing.interpolation
    if interpolation not in INTERPOLATIONS:
        interpolation = "bicubic"
    values = config.model_dump()
    values.update(
        data=str(Path(config.data).expanduser().resolve()),
        channels=channels,
        image_size=size,
        interpolation=interpolation,
    )
    if config.masks:
        values["masks"] = str(Path(config.masks).expanduser().resolve())
    return Config(**values), preprocessing


def _auto_size(table: Table, backbone_size: int, sample: int = 32) -> int:
    head = table_entries(table.with_frame(table.frame.iloc[:sample]))
    sides = [max(image.shape[:2]) for _, image in decode_entries(head) if isinstance(image, np.ndarray)]
    if not sides:
        return backbone_size
    native = math.ceil(float(np.median(sides)) / 32) * 32
    return int(min(backbone_size, max(MIN_AUTO_SIZE, native)))


def _split(table: Table, config: Config, run: Run, resumed: bool) -> Table:
    """The run's split: read back from ``split.csv`` on resume, else made (and limited) and saved there."""
    if resumed and run.split_file.is_file():
        return load_split(table, run.split_file, only_listed=True)
    if config.split_file:
        table = load_split(table, config.split_file)
    else:
        table = assign_splits(table, config.val_fraction, config.test_fraction, config.seed)
    if config.limit:
        table = _limit(table, config.limit, config.seed)
    for split in ("train", "val"):
        if not (table.frame["split"] == split).any():
            raise DataError(
                f"{table.source}: the {split} split is empty; check val_fraction= or the data's split column"
            )
    save_split(table, run.split_file)
    return table


def _limit(table: Table, limit: int, seed: int) -> Table:
    """At most `limit` images per split, drawn stratified by label (seeded); multi-label by each image's rarest
    finding, so rare findings are kept as often as the rounding allows."""
    from medtune.data.split import label_strata

    frame = table.frame
    kept = []
    for _, part in frame.groupby("split", sort=False):
        if len(part) <= limit:
            kept.append(part)
            continue
        share = limit / len(part)
        strata = label_strata(part) if table.multilabel else part["label"]
        sample = part.groupby(strata, group_keys=False).sample(frac=share, random_state=seed)
        kept.append(sample.iloc[:limit])
    return table.with_frame(frame.loc[sorted(i for part in kept for i in part.index)])


def class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``n / (k * n_c)`` (scikit-learn's "balanced"); classes without images get 0.

    >>> class_weights(np.array([0, 0, 0, 1]), 2).round(3).tolist()
    [0.667, 2.0]
    """
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(targets) / (present.sum() * counts[present])
    return weights


def pos_weights(targets: np.ndarray, cap: float = MAX_POS_WEIGHT) -> np.ndarray:
    """Multi-label positive weight per label: negatives / positives among the images, at most `cap`; a label
    without positive images gets 1.

    >>> pos_weights(np.array([[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]), cap=2.0).tolist()
    [2.0, 1.0, 2.0]
    >>> pos_weights(np.array([[1, 1], [1, 0], [0, 0], [0, 0]])).tolist()
    [1.0, 3.0]
    """
    positive = (np.asarray(targets) > 0.5).sum(axis=0).astype(np.float64)
    ratio = np.divide(len(targets) - positive, positive, out=np.ones_like(positive), where=positive > 0)
    return np.minimum(ratio, cap)


def sample_weights(targets: np.ndarray, num_classes: int, multilabel: bool = False) -> np.ndarray:
    """Draw weight of each image for ``sampler=weighted``.

    Single-label: its class's `class_weights` (every class drawn equally often). Multi-label: the mean inverse
    frequency of its findings (frequency = share of the images with that finding); an image without a finding
    weighs the inverse share of such images, so "no finding" counts as one more class.

    >>> sample_weights(np.array([[1, 0], [0, 1], [0, 0], [0, 0]]), 2, multilabel=True).tolist()
    [4.0, 4.0, 2.0, 2.0]
    """
    if not multilabel:
        return class_weights(targets, num_classes)[targets]
    positive = np.asarray(targets) > 0.5
    n = len(positive)
    inverse = n / np.maximum(positive.sum(axis=0), 1)
    count = positive.sum(axis=1)
    none = count == 0
    return np.where(none, n / max(int(none.sum()), 1), (positive * inverse).sum(axis=1) / np.maximum(count, 1))


def _loss_weights(
    config: Config, train_targets: np.ndarray, num_classes: int, multilabel: bool = False
) -> torch.Tensor | None:
    if config.class_weights == "none":
        return None
    if config.class_weights == "auto":
        values = pos_weights(train_targets) if multilabel else class_weights(train_targets, num_classes)
        return torch.tensor(values, dtype=torch.float32)
    if len(config.class_weights) != num_classes:
        what = "findings: give one positive weight per finding" if multilabel else "classes: give one per class"
        raise ConfigError(
            f"class_weights has {len(config.class_weights)} values; the data has {num_classes} {what} in class "
            "order, or class_weights=auto"
        )
    return torch.tensor(config.class_weights, dtype=torch.float32)


def _precision(config: Config) -> str:
    if config.precision != "auto":
        return config.precision
    if torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda"):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _fit(
    config: Config,
    table: Table,
    store: ImageStore,
    preprocessing: Preprocessing,
    run: Run,
    resumed: bool,
    progress: bool,
    extra_callbacks: Sequence[Any] = (),
    log_prefix: str = "",
) -> torch.nn.Module:
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

    from medtune.data.store import StoreDataset, create_store_loader
    from medtune.engine.augment import create_train_transform, resolve_augment
    from medtune.engine.callbacks import HistoryWriter
    from medtune.engine.metrics import monitor_mode
    from medtune.engine.module import ClassifierModule

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no GPU/TPU banner, tips or loader notes
    L.seed_everything(config.seed, workers=True, verbose=False)
    targets = table.targets()
    train_rows, val_rows = table.positions("train"), table.positions("val")
    num_classes = len(table.classes)
    transform = create_train_transform(resolve_augment(config), config.image_size, config.mask)
    train_set = StoreDataset(store, train_rows, targets, transform, seed=config.seed)
    weights = None
    if config.sampler == "weighted":
        weights = sample_weights(targets[train_rows], num_classes, table.multilabel)
    drop_last = len(train_rows) > config.batch_size
    train_loader = create_store_loader(train_set, config.batch_size, True, drop_last, config.seed, weights)
    val_loader = create_store_loader(StoreDataset(store, val_rows, targets), max(64, config.batch_size))

    in_chans = network_channels(config)
    model = create_classifier(
        config.backbone, num_classes, in_chans, config.head, config.dropout, config.pretrained, config.weights,
        config.image_size,
    )  # fmt: skip
    meta = {
        "version": __version__,
        "classes": list(table.classes),
        "multilabel": table.multilabel,
        "in_chans": in_chans,
        "config": config.model_dump(mode="json"),
        "preprocessing": preprocessing.to_dict(),
    }
    loss_weights = _loss_weights(config, targets[train_rows], num_classes, table.multilabel)
    module = ClassifierModule(model, config, preprocessing, loss_weights, meta, table.multilabel)
    mode = monitor_mode(config.monitor)
    checkpoint = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=config.monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
        auto_insert_metric_name=False,
    )
    interactive = progress and sys.stderr.isatty()
    callbacks: list[Any] = [checkpoint, HistoryWriter(run.history_file, echo=not interactive, prefix=log_prefix)]
    if config.patience > 0:
        callbacks.append(EarlyStopping(config.monitor, mode=mode, patience=config.patience, check_finite=False))
    if interactive:
        callbacks.append(RichProgressBar(leave=True))
    callbacks.extend(extra_callbacks)
    trainer = L.Trainer(
        max_epochs=config.epochs,
        accelerator=config.accelerator,
        devices=config.devices,
        precision=_precision(config),
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=interactive,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=run.path,
        log_every_n_steps=max(1, min(50, len(train_loader))),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*No positive samples in targets.*")
        warnings.filterwarnings("ignore", message=".*No negative samples in targets.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        trainer.fit(module, train_loader, val_loader, ckpt_path=run.last_checkpoint if resumed else None)
    best = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
    model.load_state_dict(network_state(torch.load(best, map_location="cpu", weights_only=True)))
    return model.eval()
