"""Data: readers into one table, splitting, checks, the image store, and summaries."""

from __future__ import annotations

from medtune.config import Config
from medtune.data.masks import attach_masks
from medtune.data.readers import list_readers, read_table
from medtune.data.split import assign_splits, load_split, save_split
from medtune.data.table import Table, create_table


def load_table(config: Config, labelled: bool | None = True) -> Table:
    """Read ``config.data``, pair its masks (`medtune.data.masks.attach_masks`) and give every labelled row a
    split (from ``split_file=``, the source, or a fresh split).

    Args:
        config: the data keys.
        labelled: as in `read_table`: None also accepts a folder of images without sub-folders (unlabelled, no
            split), as ``medtune data summary`` does.

    >>> load_table(load_config(data="../shared/data/cxr3")).class_counts()  # doctest: +SKIP
    """
    table = attach_masks(read_table(config.data, config, labelled), config)
    if config.split_file:
        return load_split(table, config.split_file)
    if table.labelled:
        return assign_splits(table, config.val_fraction, config.test_fraction, config.seed)
    return table


__all__ = [
    "Table",
    "assign_splits",
    "create_table",
    "list_readers",
    "load_split",
    "load_table",
    "read_table",
    "save_split",
]
