"""Train/val/test splitting on the table: given splits kept, otherwise stratified, seeded and grouped by patient.

The result is saved as ``split.csv`` so a run can be reproduced, and read back with `load_split`.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from medtune._io import atomic_open
from medtune.data.table import SPLITS, Table, split_labels
from medtune.errors import DataError


def assign_splits(table: Table, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> Table:
    """Give every row a split.

    Splits the source already has are kept. A source with train and test but no val (Kaggle) gets val carved out
    of train. A source with train and val but no test (torchvision's ImageFolder layout, as PyTorch's ants/bees
    tutorial ships it) keeps its val images out of training and model selection as the test split, and val is
    carved out of train, so no reported score was used to pick the epoch (a note says so). Otherwise rows are
    split stratified by class and seeded; when the table
    has a ``group`` column (patient), all images of a group land in the same split. Rows without a group
    are their own group.

    Args:
        table: the dataset table.
        val_fraction: share of all images for validation.
        test_fraction: share of all images for test.
        seed: random seed; the same seed and table give the same split.

    Returns:
        The table with its ``split`` column filled.

    >>> assign_splits(table, 0.15, 0.15, seed=0).frame["split"].value_counts()  # doctest: +SKIP
    """
    frame = table.frame.copy()
    if table.has_splits:
        present = set(frame["split"])
        if present == {"train", "val"} and val_fraction > 0:
            return _val_as_test(table, val_fraction, seed)
        if "val" in present or val_fraction == 0 or "train" not in present:
            return table
        train = np.flatnonzero((frame["split"] == "train").to_numpy())
        share = val_fraction / max(1e-9, (frame["split"] == "train").mean())
        _, val = _split_off(frame.iloc[train], min(share, 0.5), seed)
        frame.loc[frame.index[train[val]], "split"] = "val"
        return table.with_frame(frame)
    frame["split"] = "train"
    rest = np.arange(len(frame))
    if test_fraction > 0:
        keep, taken = _split_off(frame, test_fraction, seed)
        frame.loc[frame.index[taken], "split"] = "test"
        rest = keep
    if val_fraction > 0:
        share = val_fraction / (1.0 - test_fraction)
        _, taken = _split_off(frame.iloc[rest], share, seed + 1)
        frame.loc[frame.index[rest[taken]], "split"] = "val"
    return table.with_frame(frame)


#: How the note of a source with train and val but no test begins (`evaluate_split` repeats it with the scores).
VAL_AS_TEST = "the source gives train and val but no test"


def _val_as_test(table: Table, val_fraction: float, seed: int) -> Table:
    """Train and val given, no test: the given val becomes the held-out test split and val comes out of train."""
    frame = table.frame.copy()
    given = (frame["split"] == "val").to_numpy()
    frame.loc[given, "split"] = "test"
    train = np.flatnonzero((frame["split"] == "train").to_numpy())
    share = val_fraction / max(1e-9, len(train) / len(frame))
    _, val = _split_off(frame.iloc[train], min(share, 0.5), seed)
    frame.loc[frame.index[train[val]], "split"] = "val"
    note = (f"{VAL_AS_TEST}: its {int(given.sum())} val images are the held-out test split (never used to pick "
            f"an epoch), and {len(val)} training images are the validation split")  # fmt: skip
    return replace(table.with_frame(frame), notes=(*table.notes, note))


def label_strata(frame: pd.DataFrame) -> np.ndarray:
    """One stratum per row of a table frame: its class; for multi-label rows their rarest class (or 'none')."""
    labels = frame["label"].fillna("")
    if not labels.str.contains("|", regex=False).any():
        return labels.to_numpy()
    counts = pd.Series([n for v in labels for n in split_labels(v)]).value_counts()
    return np.array([min(split_labels(v), key=lambda n: counts[n]) if v else "none" for v in labels])


def split_groups(frame: pd.DataFrame) -> np.ndarray:
    """The group of each row for a grouped split: its patient, or ``"\\0<id>"`` (a group of one) where it has none.

    Built in plain Python strings: pandas' string type without pyarrow drops a leading NUL (``"\\0" + series``),
    which changed the groups, and with them the seeded split, between installs with and without pyarrow.

    >>> split_groups(pd.DataFrame({"id": ["a", "b"], "group": ["p1", None]})).tolist()
    ['p1', '\\x00b']
    """
    pairs = zip(frame["group"].to_numpy(dtype=object), frame["id"].astype(str), strict=True)
    return np.array([str(g) if pd.notna(g) else f"\0{i}" for g, i in pairs], dtype=object)


def _split_off(frame: pd.DataFrame, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (kept, taken) with about `fraction` of rows taken, stratified and grouped."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit  # a second to import: on use

    n = len(frame)
    strata = label_strata(frame)
    groups = split_groups(frame)
    # A stratum too small to spread is merged into one "rare" stratum rather than breaking the split.
    values, counts = np.unique(strata, return_counts=True)
    folds = max(2, round(1.0 / fraction))
    rare = set(values[counts < folds])
    strata = np.array(["\0rare" if s in rare else s for s in strata])
    position = np.arange(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's "least populated class" note
        if len(np.unique(groups)) == n:
            if len(np.unique(strata)) < 2 or np.unique(strata, return_counts=True)[1].min() < 2:
                rng = np.random.default_rng(seed)
                taken = rng.permutation(n)[: max(1, round(n * fraction))]
                return np.setdiff1d(position, taken), np.sort(taken)
            splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            kept, taken = next(splitter.split(position, strata))
        else:
            if len(np.unique(groups)) < folds:
                raise DataError(
                    f"only {len(np.unique(groups))} patient groups for a {fraction:.0%} split; need at least "
                    f"{folds}: lower the split fractions or give more patients"
                )
            splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            kept, taken = next(splitter.split(position, strata, groups))
    return np.sort(kept), np.sort(taken)


def save_split(table: Table, path: str | Path) -> None:
    """Write which image went to which split (``id,split``, plus ``label`` and ``group``) atomically."""
    columns = ["id", "split", "label", "group"]
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        table.frame[columns].to_csv(f, index=False)


def load_split(table: Table, path: str | Path, only_listed: bool = False) -> Table:
    """Apply a saved ``split.csv`` to `table`; every image must be listed there.

    Args:
        only_listed: first drop the images the file does not list (a run's split after ``limit=``).

    Raises:
        DataError: the file is missing or unreadable, or lists other images than the table has.
    """
    path = Path(path)
    try:
        saved = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"cannot read split file {path}: {exc}") from None
    if not {"id", "split"} <= set(saved.columns):
        raise DataError(f"{path} needs columns id and split, found {list(saved.columns)}")
    bad = sorted(set(saved["split"]) - set(SPLITS))
    if bad:
        raise DataError(f"{path}: unknown split value(s) {bad}; expected train, val or test")
    mapping = dict(zip(saved["id"], saved["split"], strict=True))
    if only_listed:
        table = table.with_frame(table.frame[table.frame["id"].isin(mapping)])
    missing = [i for i in table.frame["id"] if i not in mapping]
    if missing:
        raise DataError(
            f"{path} does not list {len(missing)} image(s) of the data, e.g. {missing[:3]}; the data changed since "
            "the split was saved: drop split_file= to split again"
        )
    frame = table.frame.copy()
    frame["split"] = frame["id"].map(mapping)
    return table.with_frame(frame)
