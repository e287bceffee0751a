"""Readers: a folder per class, a CSV/TSV manifest, a MedMNIST-style .npz. Each produces the same `Table`.

Modules: `_base` (the reader registry), `folder` (a folder per class, split folders), `manifest` (CSV/TSV
manifests), `npz` (MedMNIST-style archives), `names` (labels and groups read from file names).

Image files of any registered format (PNG, JPEG, TIFF, BMP, DICOM) are read by the folder and CSV readers alike; a
new kind of source is a new module here that calls `register_reader`, imported below. `read_table` finishes every
table the same way: DICOM images without a group column are grouped by their PatientID.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from medtune.config import Config, load_config
from medtune.config.schema import DataSettings
from medtune.data.dicom import DICOM_SUFFIXES, read_patient_ids
from medtune.data.readers import folder, manifest, npz  # noqa: F401  (registration)
from medtune.data.readers._base import READERS, Reader, register_reader
from medtune.data.table import Table
from medtune.errors import DataError


def list_readers() -> list[str]:
    """Names of the registered readers, in the order auto-detection tries them."""
    return READERS.names()


def read_table(source: str | Path, config: DataSettings | Config | None = None, labelled: bool | None = True) -> Table:
    """Read any supported source into the dataset table.

    Args:
        source: a folder, a CSV/TSV manifest or an .npz file.
        config: the data section of a configuration (``reader=``, ``label=``, ``group=``...; a whole `Config`
            gives its section); defaults when None.
        labelled: False reads a folder, or a CSV/TSV manifest's path column, as unlabelled images (for prediction);
            None reads a folder of images without sub-folders as unlabelled and everything else as labelled (for
            looking at data).

    Raises:
        DataError: the source is missing, of an unknown kind, or unusable; the message names the fix.

    >>> read_table("xrays/").classes  # doctest: +SKIP
    ('covid', 'normal', 'pneumonia')
    """
    config = (config or load_config()).sections.data if isinstance(config, Config | None) else config
    path = Path(os.path.abspath(Path(source).expanduser()))
    if not path.exists():
        raise DataError(f"{path} does not exist; give a folder of images, a CSV/TSV manifest or an .npz file")
    if labelled is None:
        named = config.label_from == "name" or bool(config.label_pattern)
        labelled = named or not (path.is_dir() and config.reader in ("auto", "folder") and folder.is_flat_folder(path))
    return _groups_from_dicom(_read(path, config, labelled), config)


def _read(path: Path, config: DataSettings, labelled: bool) -> Table:
    if not labelled:
        if path.is_file() and path.suffix.lower() in manifest.SUFFIXES:
            return manifest.read_paths(path, config)
        if not path.is_dir():
            raise DataError(f"{path} is not a folder or a CSV/TSV of paths; unlabelled images are read from those")
        return folder.read_unlabelled(path)
    if config.reader != "auto":
        return READERS.get(config.reader).read(path, config)
    for _, reader in READERS:
        if reader.detect(path):
            return reader.read(path, config)
    kinds = "; ".join(f"{r.name}: {r.describe}" for _, r in READERS)
    raise DataError(f"cannot tell how to read {path}. Supported sources: {kinds}")


def _groups_from_dicom(found: Table, config: DataSettings) -> Table:
    """Without a group column, DICOM rows take their PatientID as group (rows without one stay ungrouped)."""
    frame = found.frame
    if config.group is not None or frame["group"].notna().any():
        return found
    rows = frame["array"].isna() & frame["path"].map(lambda p: Path(str(p)).suffix.lower() in DICOM_SUFFIXES)
    if not rows.any():
        return found
    frame = frame.copy()
    frame.loc[rows, "group"] = read_patient_ids(list(frame.loc[rows, "path"]))
    if frame["group"].isna().all():
        return found
    note = "group from DICOM PatientID (set group=COLUMN to choose another)"
    return replace(found, frame=frame, notes=(*found.notes, note))


__all__ = ["READERS", "Reader", "list_readers", "read_table", "register_reader"]
