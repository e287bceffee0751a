"""Data: readers into one table, splitting, checks, masks, the image store and its loader, and summaries.

Commands read data through `medtune.runs.prepare_dataset`, which joins these pieces in one order.
"""

from __future__ import annotations

from medtune.data.readers import list_readers, read_table
from medtune.data.split import assign_splits, load_split, save_split
from medtune.data.table import Table, create_table

__all__ = [
    "Table",
    "assign_splits",
    "create_table",
    "list_readers",
    "load_split",
    "read_table",
    "save_split",
]
