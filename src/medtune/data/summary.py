"""`medtune data summary`: what is in the data, what is wrong with it, and one sample walked through every
preprocessing step with its shape and value range (like fastai's ``DataBlock.summary``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from medtune.config.schema import DataSettings
from medtune.data.checks import Problem, check_table, scan_images
from medtune.data.decode import read_entry
from medtune.data.dicom import DICOM_SUFFIXES, dicom_info
from medtune.data.images import resize, to_channels, to_uint8
from medtune.data.table import Table
from medtune.errors import ImageReadError

if TYPE_CHECKING:
    from medtune.models import Preprocessing

#: The DICOM header facts `data summary` counts images by.
DICOM_KEYS = ("modality", "photometric", "bits_stored", "bits_allocated", "transfer_syntax")


@dataclass(frozen=True)
class Step:
    """One stage of the sample walk-through."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    low: float
    high: float


@dataclass(frozen=True)
class Summary:
    """The findings of `summarize`.

    Attributes:
        table: the table with splits assigned.
        scan: per-image height, width, channels, dtype, hash and error.
        problems: errors first, then warnings.
        steps: the sample walk-through.
        sample_id: the id of the image walked through.
        channels: the channel count the data will be stored with.
        image_size: the working size.
        dicom: `dicom_info` of each DICOM file whose header is readable (empty without DICOM files).
    """

    table: Table
    scan: pd.DataFrame
    problems: list[Problem]
    steps: list[Step]
    sample_id: str
    channels: int
    image_size: int
    dicom: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        """True when no problem is an error."""
        return not any(p.level == "error" for p in self.problems)

    def size_table(self) -> pd.DataFrame:
        """Image count per (height, width, channels, dtype), most common first."""
        readable = self.scan[self.scan["error"].isna()]
        if readable.empty:
            return pd.DataFrame(columns=["height", "width", "channels", "dtype", "images"])
        keys = ["height", "width", "channels", "dtype"]
        sizes = readable.groupby(keys).size().reset_index(name="images")
        return sizes.sort_values("images", ascending=False).reset_index(drop=True)

    def mode_counts(self) -> dict[str, int]:
        """Image count per pixel mode (``gray 8-bit``, ``gray 16-bit``, ``RGB 8-bit``, ``gray float``...)."""
        readable = self.scan[self.scan["error"].isna()]
        bits = {"uint8": "8-bit", "uint16": "16-bit", "float32": "float"}
        modes = [
            f"{'gray' if c == 1 else 'RGB'} {bits.get(d, d)}"
            for c, d in zip(readable["channels"], readable["dtype"], strict=True)
        ]
        return {str(k): int(v) for k, v in pd.Series(modes, dtype=object).value_counts().items()}

    def dicom_counts(self) -> pd.DataFrame:
        """DICOM images per modality, photometric interpretation, bits stored and allocated, and transfer syntax,
        most common first; a missing header element shows as None."""
        if self.dicom is None or self.dicom.empty:
            return pd.DataFrame(columns=[*DICOM_KEYS, "images"])
        headers = self.dicom[list(DICOM_KEYS)].astype(object)
        counts = headers.groupby(list(DICOM_KEYS), dropna=False, sort=False).size().reset_index(name="images")
        counts = counts.sort_values("images", ascending=False, kind="stable").reset_index(drop=True)
        return counts.astype(object).where(counts.notna(), None)

    def to_dict(self) -> dict:
        """A JSON-ready form of the summary."""
        readable = self.scan[self.scan["error"].isna()]
        return {
            "source": self.table.source,
            "reader": self.table.reader,
            "images": len(self.table),
            "classes": list(self.table.classes),
            "multilabel": self.table.multilabel,
            "counts": {s: {c: int(n) for c, n in col.items()} for s, col in self.table.class_counts().items()},
            "height": _range(readable["height"]),
            "width": _range(readable["width"]),
            "modes": self.mode_counts(),
            "dicom": [{k: _plain(v) for k, v in row.items()} for row in self.dicom_counts().to_dict("records")],
            "channels": self.channels,
            "image_size": self.image_size,
            "notes": list(self.table.notes),
            "problems": [{"level": p.level, "title": p.title, "message": p.message} for p in self.problems],
            "sample": {"id": self.sample_id, "steps": [s.__dict__ for s in self.steps]},
        }


def _plain(value: object) -> object:
    """A JSON-ready scalar: numpy integers become int."""
    return int(value) if isinstance(value, np.integer) else value


def scan_dicom(table: Table) -> pd.DataFrame:
    """`dicom_info` of every DICOM file of `table` (header only); files whose header is unreadable are left out
    here, as the image scan reports them."""
    infos = []
    for path, array in zip(table.frame["path"], table.frame["array"], strict=True):
        if isinstance(array, str) or Path(str(path)).suffix.lower() not in DICOM_SUFFIXES:
            continue
        try:
            infos.append(dicom_info(path))
        except ImageReadError:
            continue
    return pd.DataFrame(infos, dtype=object)


def _range(values: pd.Series) -> dict:
    if values.empty:
        return {}
    return {"min": int(values.min()), "median": float(values.median()), "max": int(values.max())}


def _step(name: str, value: np.ndarray | torch.Tensor) -> Step:
    array = value.numpy() if isinstance(value, torch.Tensor) else value
    return Step(name, tuple(int(s) for s in array.shape), str(array.dtype), float(array.min()), float(array.max()))


def walk_sample(entry: pd.Series, size: int, channels: int, resize_mode: str, interpolation: str,
                mean: tuple[float, ...], std: tuple[float, ...], window: str = "auto",
                frame: int | str | None = None) -> list[Step]:  # fmt: skip
    """Take one table row through every stage from file to network input, recording each result."""
    array = read_entry(entry["path"], entry["array"], entry["index"], window, frame)
    steps = [_step("decoded", array)]
    array = to_uint8(array)
    steps.append(_step("to uint8", array))
    array = to_channels(array, channels)
    steps.append(_step(f"to {channels} channel(s)", array))
    array = resize(array, size, resize_mode, interpolation)
    steps.append(_step(f"resized ({resize_mode}) -> store", array))
    tensor = torch.from_numpy(np.array(array)).permute(2, 0, 1).float() / 255.0
    steps.append(_step("tensor C,H,W in [0, 1]", tensor))
    tensor = (tensor - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)
    steps.append(_step("normalised (backbone mean/std)", tensor))
    steps.append(_step("batch N,C,H,W", tensor.unsqueeze(0)))
    return steps


def summarize(
    table: Table,
    config: DataSettings,
    preprocessing: Preprocessing,
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    """Scan and check a table, and walk its first readable image through preprocessing.

    Args:
        table: the table, splits assigned (`medtune.runs.load_table`).
        config: the data section of the resolved configuration (`medtune.runs.resolve_config`): working size,
            channels, resizing.
        preprocessing: the network's normalisation that goes with it.
        on_progress: called with the number of images scanned after each chunk.

    Returns:
        The `Summary`; its ``ok`` is False when the data cannot be used as it is.

    >>> dataset = prepare_dataset(load_config(data="xrays/"), store=False)  # doctest: +SKIP
    >>> summarize(dataset.table, dataset.config.sections.data, dataset.resolved.preprocessing).ok  # doctest: +SKIP
    True
    """
    scan = scan_images(table, config.workers, on_progress, config.window, config.frame)
    problems = check_table(table, scan)
    readable = scan["error"].isna().to_numpy()
    channels, size = int(config.channels), int(config.image_size)
    steps: list[Step] = []
    sample_id = ""
    if readable.any():
        first = int(np.flatnonzero(readable)[0])
        sample_id = str(table.frame["id"].iat[first])
        steps = walk_sample(table.frame.iloc[first], size, channels, config.resize, config.interpolation,
                            preprocessing.mean[:channels], preprocessing.std[:channels], config.window,
                            config.frame)  # fmt: skip
    return Summary(table, scan, problems, steps, sample_id, channels, size, scan_dicom(table))
