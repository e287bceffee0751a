"""Readers: a folder per class, a CSV/TSV manifest, a MedMNIST-style .npz. Each produces the same `Table`.

Adding a format (DICOM) is a new module here that calls `register_reader`, imported below.
"""

from __future__ import annotations

import os
from pathlib import Path

from medtune.config import Config, load_config
from medtune.data.readers import folder, npz, table  # noqa: F401  (registration)
from medtune.data.readers._base import READERS, Reader, register_reader
from medtune.data.table import Table
from medtune.errors import DataError


def list_readers() -> list[str]:
    """Names of the registered readers, in the order auto-detection tries them."""
    return READERS.names()


def read_table(source: str | Path, config: Config | None = None, labelled: bool = True) -> Table:
    """Read any supported source into the dataset table.

    Args:
        source: a folder, a CSV/TSV manifest or an .npz file.
        config: data keys (``reader=``, ``label=``, ``group=``...); defaults when None.
        labelled: False reads a folder as unlabelled images (for prediction).

    Raises:
        DataError: the source is missing, of an unknown kind, or unusable; the message names the fix.

    >>> read_table("../shared/data/cxr3").classes  # doctest: +SKIP
    ('covid', 'normal', 'pneumonia')
    """
    config = config or load_config()
    path = Path(os.path.abspath(Path(source).expanduser()))
    if not path.exists():
        raise DataError(f"{path} does not exist; give a folder of images, a CSV/TSV manifest or an .npz file")
    if not labelled:
        if not path.is_dir():
            raise DataError(f"{path} is not a folder; unlabelled images are read from a folder")
        return folder.read_unlabelled(path)
    if config.reader != "auto":
        return READERS.get(config.reader).read(path, config)
    for _, reader in READERS:
        if reader.detect(path):
            return reader.read(path, config)
    kinds = "; ".join(f"{r.name}: {r.describe}" for _, r in READERS)
    raise DataError(f"cannot tell how to read {path}. Supported sources: {kinds}")


__all__ = ["READERS", "Reader", "list_readers", "read_table", "register_reader"]
