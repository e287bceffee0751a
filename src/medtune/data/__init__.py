"""Data: readers into one table, splitting, checks, masks, the image store and its loader, and summaries.

- `readers/`: a folder per class, a CSV/TSV manifest, a MedMNIST-style ``.npz``, labels from file names.
- `table`: the one table every reader produces. `split`: seeded, stratified, grouped splits. `checks`: what is
  wrong with a table. `harmonise`: label synonyms and maps across datasets.
- `images`: decoding image files and the pure array steps to store-ready uint8; `dicom`: DICOM pixels and
  headers; `_clamped`: reads that never trust a length field; `decode`: many table rows decoded at once.
- `masks`: masks paired with images and the ways a classifier uses them; `mask_files`: predicted masks as files.
- `store`: the memory-mapped image store; `store_spec`: what a store holds (size, channels, filter, masks);
  `loader`: batches from a store. `summary`: ``medtune data summary``.

Commands read data through `medtune.runs.prepare_dataset`, which joins these pieces in one order.
"""

from __future__ import annotations

from pathlib import Path

from medtune.data.readers import list_readers, read_table
from medtune.data.split import assign_splits, load_split, save_split
from medtune.data.table import Table, create_table


def demo_data() -> Path:
    """The data that ships with medtune: PneumoniaMNIST at 28 px (CC BY 4.0; credit in ``data/demo/README.md``),
    what ``medtune demo`` and ``make demo`` train on without a network.

    >>> demo_data().name
    'pneumoniamnist.npz'
    """
    return Path(__file__).parent / "demo" / "pneumoniamnist.npz"


__all__ = [
    "Table",
    "assign_splits",
    "create_table",
    "demo_data",
    "list_readers",
    "load_split",
    "read_table",
    "save_split",
]
