"""The dataset table: one row per image, the same for every reader.

Columns: ``id`` (unique), ``path`` (the image file, or the array file for ``.npz``), ``array`` and ``index``
(the array key and row inside an array file, empty for image files), ``label`` (a class name; for multi-label
tables the present class names joined by ``|``, empty for none), ``split`` (train/val/test or empty),
``group`` (patient), ``mask`` (mask file), ``domain`` (source hospital). Splitting, checks, the image store and
everything downstream read this table only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from medtune.errors import DataError

COLUMNS = ("id", "path", "array", "index", "label", "split", "group", "mask", "domain")
SPLITS = ("train", "val", "test")
LABEL_SEP = "|"


@dataclass(frozen=True)
class Table:
    """A validated dataset table and what its labels mean.

    Attributes:
        frame: the rows, with exactly the columns in `COLUMNS`.
        classes: class names in index order (empty for unlabelled data).
        multilabel: True when an image may carry several classes at once.
        source: where the table was read from, for messages.
        reader: the reader that produced it.
        notes: what the reader decided or skipped, in words, for `data summary` to show.
    """

    frame: pd.DataFrame
    classes: tuple[str, ...]
    multilabel: bool = False
    source: str = ""
    reader: str = ""
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def labelled(self) -> bool:
        """True when the table has classes and every row a label."""
        return bool(self.classes) and bool(self.frame["label"].notna().all())

    @property
    def has_splits(self) -> bool:
        """True when every row already belongs to a split."""
        return bool(self.frame["split"].notna().all())

    def targets(self) -> np.ndarray:
        """Integer class indices ``(N,)`` (-1 where unlabelled), or multi-hot ``(N, C)`` float32 for multi-label."""
        index = {name: i for i, name in enumerate(self.classes)}
        labels = self.frame["label"]
        if not self.multilabel:
            return np.array([index[v] if isinstance(v, str) else -1 for v in labels], dtype=np.int64)
        out = np.zeros((len(labels), len(self.classes)), dtype=np.float32)
        for row, value in enumerate(labels):
            for name in split_labels(value):
                out[row, index[name]] = 1.0
        return out

    def subset(self, split: str) -> Table:
        """The rows of one split."""
        return self.with_frame(self.frame[self.frame["split"] == split])

    def positions(self, split: str) -> np.ndarray:
        """Row positions (0-based) of one split, e.g. the image-store rows of a split."""
        return np.flatnonzero((self.frame["split"] == split).to_numpy())

    def with_frame(self, frame: pd.DataFrame) -> Table:
        """The same table description over other rows."""
        return replace(self, frame=frame.reset_index(drop=True))

    def class_counts(self) -> pd.DataFrame:
        """Images per class (rows) and split (columns), every class listed even when it has none."""
        rows = []
        for split, part in self.frame.groupby(self.frame["split"].fillna("(none)"), sort=False):
            counts = dict.fromkeys(self.classes, 0)
            for value in part["label"]:
                for name in split_labels(value) if self.multilabel else ([value] if isinstance(value, str) else []):
                    counts[name] += 1
            rows.append(pd.Series(counts, name=split))
        table = pd.DataFrame(rows).T if rows else pd.DataFrame(index=list(self.classes))
        order = [s for s in (*SPLITS, "(none)") if s in table.columns]
        return table.reindex(index=list(self.classes), columns=order).fillna(0).astype(int)


def split_labels(value: object) -> list[str]:
    """The class names held in one multi-label cell (`|`-joined; empty or missing means none)."""
    if not isinstance(value, str) or value == "":
        return []
    return value.split(LABEL_SEP)


def create_table(
    frame: pd.DataFrame,
    classes: list[str] | tuple[str, ...] | None = None,
    multilabel: bool = False,
    source: str | Path = "",
    reader: str = "",
    notes: list[str] | tuple[str, ...] = (),
) -> Table:
    """Validate reader output into a `Table`: fill missing columns, check ids, splits and labels.

    Args:
        frame: at least ``path``; other columns of `COLUMNS` are added empty when missing.
        classes: class names in order; when None they are the sorted labels found.
        multilabel: labels are `|`-joined sets of class names.
        source: where the rows came from, used in messages.
        reader: the reader's registered name.
        notes: remarks for `data summary` (columns chosen, files skipped).

    Raises:
        DataError: no rows, duplicate ids, an unknown split name, or labels missing from `classes`.
    """
    source = str(source)
    if len(frame) == 0:
        raise DataError(f"no images found in {source}: point medtune at a folder of images, a CSV or an .npz file")
    frame = frame.copy()
    for column in COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    frame = frame[list(COLUMNS)].reset_index(drop=True)
    if frame["id"].isna().any():
        frame["id"] = frame["id"].fillna(frame["path"].astype(str))
    frame["id"] = frame["id"].astype(str)
    dupes = frame["id"][frame["id"].duplicated()].unique()
    if len(dupes):
        raise DataError(
            f"{source}: {len(dupes)} image(s) are listed more than once, e.g. {', '.join(map(str, dupes[:3]))}; "
            "each image must appear on one row only: remove the repeated rows"
        )
    _check_splits(frame, source)
    found = _labels_found(frame["label"], multilabel)
    if classes is None:
        classes = sorted(found)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        rows = frame.index[frame["label"].map(lambda v: bool(set(_cell_labels(v, multilabel)) & set(unknown)))]
        raise DataError(
            f"{source}: label(s) {', '.join(map(repr, unknown))} (first on row {int(rows[0]) + 1}) are not in the "
            f"class list {list(classes)}; add them with classes=... or fix those rows"
        )
    bad = [c for c in classes if LABEL_SEP in c] if multilabel else []
    if bad:
        raise DataError(f"{source}: class name(s) {bad} contain {LABEL_SEP!r}, which separates multi-label classes")
    return Table(
        frame=frame, classes=tuple(classes), multilabel=multilabel, source=source, reader=reader, notes=tuple(notes)
    )


def _cell_labels(value: object, multilabel: bool) -> list[str]:
    if multilabel:
        return split_labels(value)
    return [value] if isinstance(value, str) else []


def _labels_found(labels: pd.Series, multilabel: bool) -> list[str]:
    found: set[str] = set()
    for value in labels.dropna().unique():
        found.update(_cell_labels(value, multilabel))
    return sorted(found)


def _check_splits(frame: pd.DataFrame, source: str) -> None:
    given = frame["split"].dropna()
    if given.empty:
        frame["split"] = None
        return
    aliases = {"training": "train", "valid": "val", "validation": "val", "dev": "val", "testing": "test"}
    normalised = frame["split"].map(
        lambda v: aliases.get(str(v).strip().lower(), str(v).strip().lower()), na_action="ignore"
    )
    unknown = sorted(set(normalised.dropna()) - set(SPLITS))
    if unknown:
        raise DataError(
            f"{source}: unknown split value(s) {unknown}; expected train, val or test (also training, valid, "
            "validation, testing)"
        )
    if normalised.isna().any():
        n = int(normalised.isna().sum())
        raise DataError(
            f"{source}: {n} row(s) have no split while others do; give every row a split or drop the split column"
        )
    frame["split"] = normalised
