"""The prepared dataset: the data exactly as a run saw it, read through one path by every command.

    configuration (+ run)  ->  table (reader)  ->  masks attached  ->  split (the run's, a split file, the source's
    or a fresh one)  ->  limited (``limit=``)  ->  resolved (size, channels, preprocessing)  ->  image store

`train`, `evaluate`, `report`, `explain` and `data summary` all come through `prepare_dataset`; the report reads
its images from the store the run trained on instead of decoding the source again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from medtune.config import Config
from medtune.data.harmonise import select_rows
from medtune.data.masks import attach_masks
from medtune.data.readers import read_table
from medtune.data.split import assign_splits, label_strata, load_split, save_split
from medtune.data.store import ImageStore, open_store
from medtune.data.table import Table
from medtune.errors import ConfigError, DataError
from medtune.runs.network import read_network
from medtune.runs.resolve import Resolved, resolve_config
from medtune.runs.run import Run
from medtune.runs.segmasks import attach_predicted_masks, is_segmentation_run
from medtune.tasks import get_task

#: Splits a command can ask for; ``all`` keeps every row.
SPLIT_CHOICES = ("train", "val", "test", "all")


@dataclass(frozen=True)
class PreparedDataset:
    """A table, the resolution of its configuration and the image store built on it.

    Attributes:
        table: the rows, masks attached and splits applied, in store order.
        resolved: the configuration with nothing left open, and its preprocessing.
        store: the images, decoded once at the working size (None when not asked for).
    """

    table: Table
    resolved: Resolved
    store: ImageStore | None = None

    @property
    def config(self) -> Config:
        """The resolved configuration."""
        return self.resolved.config

    def rows(self, split: str) -> np.ndarray:
        """Store rows of one split."""
        return self.table.positions(split)

    def images(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The stored images of `ids` (``(size, size, channels)`` uint8, as the network saw them).

        Raises:
            DataError: an id is not in the data, or the dataset was prepared without its store.
        """
        if self.store is None:
            raise DataError("this dataset was prepared without its image store; prepare it with store=True")
        position = {str(v): i for i, v in enumerate(self.table.frame["id"])}
        missing = [i for i in ids if str(i) not in position]
        if missing:
            raise DataError(
                f"{len(missing)} image(s) of the run, e.g. {missing[0]!r}, are no longer in {self.config.data}"
            )
        return [np.asarray(self.store.images[position[str(i)]]) for i in ids]


def read_dataset_table(config: Config, labelled: bool | None = True, progress: bool = True) -> Table:
    """Read ``config.data`` with its reader and pair its masks (`medtune.data.masks.attach_masks`), or predict them
    with the segmentation run ``masks=SEG_RUN`` (`medtune.runs.segmasks`); no split yet.

    Args:
        config: the data keys.
        labelled: as in `medtune.data.readers.read_table`: None also accepts a folder of images without
            sub-folders (unlabelled), as ``medtune data summary`` does.
        progress: a progress bar while masks are predicted.
    """
    if not config.data:
        raise ConfigError("no data given: pass DATA (a folder, a CSV/TSV manifest or an .npz file) or data= in YAML")
    task = get_task(config.task)
    if not task.labelled:
        labelled = None  # a segmenter learns from masks: a flat folder of images is its usual layout
    table = read_table(config.data, config, labelled)
    if config.domains or config.harmonise or config.label_map or config.keep_classes:
        table = select_rows(table, config.sections.data)
    if not task.mask_is_target and is_segmentation_run(config.masks):
        return attach_predicted_masks(table, config, progress)
    return attach_masks(table, config.sections.data, task.mask_is_target)


def load_table(config: Config, labelled: bool | None = True) -> Table:
    """`read_dataset_table`, then a split for every labelled row: from ``split_file=``, the source, or a fresh
    seeded split.

    >>> load_table(load_config(data="xrays/")).class_counts()  # doctest: +SKIP
    """
    return default_split(read_dataset_table(config, labelled), config)


def default_split(table: Table, config: Config) -> Table:
    """The split `medtune train` would give `table` with `config`: from ``split_file=``, the source's own, or a
    fresh seeded one (labelled or segmentation data; other tables are returned as they are)."""
    if config.split_file:
        return load_split(table, config.split_file)
    if table.labelled or not get_task(config.task).labelled:  # a segmenter's targets are its masks: no labels
        return assign_splits(table, config.val_fraction, config.test_fraction, config.seed)
    return table


def prepare_dataset(
    config: Config,
    run: Run | None = None,
    *,
    table: Table | None = None,
    split: str | None = None,
    create_split: bool = False,
    assign_missing: bool = True,
    labelled: bool | None = True,
    store: bool = True,
    progress: bool = True,
) -> PreparedDataset:
    """The data of `config` as a run sees it: table, masks, split, resolution and image store.

    Args:
        config: the configuration (a run's saved one, or one to train).
        run: take the run's split from its ``split.csv``; with `create_split`, make it (from ``split_file=`` or a
            fresh seeded split, then ``limit=``) and save it there.
        table: a table already read (`read_dataset_table`); read from ``config.data`` when None.
        split: keep only this split (``train``, ``val``, ``test``) or every row (``all``, None).
        create_split: make and save the run's split instead of reading it (a new training run).
        assign_missing: without a run, give rows without a split one (`load_table`); False leaves the table's own
            splits as they are (other data to evaluate).
        labelled: as in `read_dataset_table`.
        store: open (building when needed) the image store of the rows.
        progress: a progress bar while the store is built.

    Raises:
        DataError: the run has no ``split.csv``, a split is empty, or the data is unusable (named with its fix).

    >>> dataset = prepare_dataset(load_config(data="xrays/"), split="test")  # doctest: +SKIP
    >>> dataset.store.images.shape  # doctest: +SKIP
    """
    if split is not None and split not in SPLIT_CHOICES:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_CHOICES)}")
    if table is None:
        table = read_dataset_table(config, labelled, progress)
    if run is not None:
        table = _run_split(table, config, run, create_split)
    elif assign_missing:
        table = default_split(table, config)
    if split not in (None, "all"):
        table = table.subset(split)
        if len(table) == 0:
            raise DataError(f"{table.source} has no images in the {split} split; pick another with --split")
    resolved = resolve_config(config, table, read_network(run.network_dir) if run is not None else None)
    images = open_store(table, resolved.spec, config.cache_dir, config.workers, progress) if store else None
    return PreparedDataset(table, resolved, images)


def _run_split(table: Table, config: Config, run: Run, create: bool) -> Table:
    """The run's split: read back from ``split.csv``, or (`create`) made, limited and saved there."""
    if not create:
        if not run.split_file.is_file():
            raise DataError(f"{run.path} has no split.csv; it is not a run that `medtune train` started")
        return load_split(table, run.split_file, only_listed=True)
    table = default_split(table, config)
    if config.limit:
        table = limit_table(table, config.limit, config.seed)
    if config.train_limit:
        table = limit_table(table, config.train_limit, config.seed, splits=("train",))
    for name in ("train", "val"):
        if not (table.frame["split"] == name).any():
            raise DataError(
                f"{table.source}: the {name} split is empty; check val_fraction= or the data's split column"
            )
    save_split(table, run.split_file)
    return table


def limit_table(table: Table, limit: int, seed: int, splits: tuple[str, ...] | None = None) -> Table:
    """At most `limit` images per split (of `splits`, default all), drawn stratified by label (seeded);
    multi-label by each image's rarest finding, so rare findings are kept as often as the rounding allows."""
    frame = table.frame
    kept = []
    for name, part in frame.groupby("split", sort=False):
        if len(part) <= limit or (splits is not None and name not in splits):
            kept.append(part)
            continue
        share = limit / len(part)
        strata = label_strata(part) if table.multilabel else part["label"].fillna("")
        sample = part.groupby(strata, group_keys=False).sample(frac=share, random_state=seed)
        kept.append(sample.iloc[:limit])
    return table.with_frame(frame.loc[sorted(i for part in kept for i in part.index)])
