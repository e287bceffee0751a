"""Decoding many table rows at once: image files one by one, ``.npz`` archive rows in one forward pass over
the archive member, so that no archive is ever loaded whole. Used by the image store and by the data checks."""

from __future__ import annotations

import math
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune.data.images import read_image
from medtune.data.table import Table
from medtune.errors import ImageReadError


@dataclass(frozen=True)
class Entry:
    """One table row as the builder needs it: where its image is and where it goes in the store."""

    position: int
    path: str
    array: str | None = None
    index: int | None = None
    mask: str | None = None

    def describe(self) -> str:
        return self.path if self.array is None else f"{self.path} [{self.array}][{self.index}]"


def table_entries(table: Table) -> list[Entry]:
    """One `Entry` per table row, in table order."""
    entries = []
    frame = table.frame
    columns = zip(frame["path"], frame["array"], frame["index"], frame["mask"], strict=True)
    for position, (path, array, index, mask) in enumerate(columns):
        mask = str(mask) if isinstance(mask, str) and mask else None
        if isinstance(array, str):
            entries.append(Entry(position, str(path), array, None if pd.isna(index) else int(index), mask))
        else:
            entries.append(Entry(position, str(path), mask=mask))
    return entries


Decoded = np.ndarray | ImageReadError


def decode_entries(
    entries: list[Entry], window: str = "auto", frame: int | str | None = None
) -> Iterator[tuple[Entry, Decoded]]:
    """Decode `entries`: image files one by one, then each archive array in one forward pass. `window` and
    `frame` reach the DICOM decoder (see `medtune.data.images.read_image`)."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for entry in entries:
        if entry.array is None:
            try:
                yield entry, read_image(entry.path, window, frame)
            except ImageReadError as exc:
                yield entry, exc
        else:
            groups.setdefault((entry.path, entry.array), []).append(entry)
    for (path, array), members in groups.items():
        yield from _archive_rows(path, array, members)


def _archive_rows(path: str, array: str, members: list[Entry]) -> Iterator[tuple[Entry, Decoded]]:
    """Rows of one array inside an ``.npz``, read in index order from the (compressed) member stream.

    Only the requested rows are held, never the whole array, so a 224 px MedMNIST+ archive does not need
    gigabytes of memory.
    """
    members = sorted(members, key=lambda e: -1 if e.index is None else e.index)
    done = 0
    try:
        with zipfile.ZipFile(path) as archive, archive.open(f"{array}.npy") as stream:
            shape, dtype, start = _npy_header(stream)
            row_bytes = dtype.itemsize * math.prod(shape[1:])
            for entry in members:
                if entry.index is None or not 0 <= entry.index < shape[0]:
                    yield entry, ImageReadError(entry.describe(), f"{array} has rows 0..{shape[0] - 1}, not this one")
                else:
                    stream.seek(start + entry.index * row_bytes)
                    data = stream.read(row_bytes)
                    if len(data) != row_bytes:
                        raise EOFError("the array ends early")
                    yield entry, np.frombuffer(data, dtype=dtype).reshape(shape[1:])
                done += 1
    except FileNotFoundError:
        reason = "file not found; check the path"
    except KeyError:
        reason = f"the archive holds no array named {array!r}"
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = f"{exc}; the archive is truncated, corrupt or not an .npz file: re-create or remove it"
    else:
        return
    for entry in members[done:]:
        yield entry, ImageReadError(entry.describe(), reason)


def _npy_header(stream: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of a ``.npy`` stream whose rows can be read one by one."""
    version = np.lib.format.read_magic(stream)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version} is not supported; save the archive with numpy.savez")
    shape, fortran_order, dtype = readers[version](stream)
    if fortran_order or dtype.hasobject or len(shape) < 1:
        raise ValueError(f"array of shape {shape}, dtype {dtype} (Fortran order {fortran_order}) is not an image stack")
    return shape, dtype, stream.tell()


def read_entry(
    path: str | Path,
    array: str | None = None,
    index: int | None = None,
    window: str = "auto",
    frame: int | str | None = None,
) -> np.ndarray:
    """Decode one table entry: an image file, or row `index` of `array` inside an ``.npz`` archive (read alone,
    without loading the whole array)."""
    if not isinstance(array, str):
        return read_image(path, window, frame)
    [(_, image)] = decode_entries([Entry(0, str(path), array, int(index))])
    if isinstance(image, ImageReadError):
        raise image
    return image
