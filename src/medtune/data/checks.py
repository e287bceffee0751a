"""Checks on the table: missing and unreadable files, empty classes, one class only, duplicates across splits,
patients in two splits, class imbalance. `scan_images` decodes every image once (in parallel) to learn sizes,
modes and content hashes; `check_table` turns table and scan into a list of `Problem`s."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from medtune.data.decode import Entry, decode_entries, table_entries
from medtune.data.images import is_colour
from medtune.data.table import Table
from medtune.errors import ImageReadError

IMBALANCE_RATIO = 10.0  # largest class over smallest above which imbalance is called out


@dataclass(frozen=True)
class Problem:
    """One finding about the data.

    Attributes:
        level: ``error`` (the data cannot be used as it is) or ``warning`` (it can, but look).
        title: a short name, e.g. ``unreadable images``.
        message: what was found, with the fix.
        items: the files or values concerned.
    """

    level: str
    title: str
    message: str
    items: tuple[str, ...] = field(default=())


def _describe(array: np.ndarray) -> dict:
    return {
        "height": int(array.shape[0]),
        "width": int(array.shape[1]),
        "channels": 1 if array.ndim == 2 else int(array.shape[2]),
        "colour": is_colour(array),
        "dtype": str(array.dtype),
        "hash": hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).hexdigest() + f"{array.shape}",
        "error": None,
    }


def _scan_chunk(entries: list[Entry], window: str = "auto", frame: int | str | None = None) -> list[tuple[int, dict]]:
    out = []
    for entry, image in decode_entries(entries, window, frame):
        out.append((entry.position, {"error": image.reason} if isinstance(image, ImageReadError) else _describe(image)))
    return out


def scan_images(
    table: Table,
    workers: int = 2,
    on_progress: Callable[[int], None] | None = None,
    window: str = "auto",
    frame: int | str | None = None,
) -> pd.DataFrame:
    """Decode every image of `table` once and describe it.

    Args:
        table: the dataset table.
        workers: decoding processes (0 decodes in this process).
        on_progress: called with the number of images finished after each chunk.
        window: DICOM windowing, as the image store decodes (see `medtune.data.images.read_image`).
        frame: the frame of multi-frame DICOM files, as the image store decodes.

    Returns:
        One row per table row (same order): height, width, channels, colour (`is_colour`), dtype, hash (of the
        decoded pixels) and error (None, or why the image could not be read).
    """
    entries = table_entries(table)
    chunks = [entries[start : start + 64] for start in range(0, len(entries), 64)]
    results: list[dict | None] = [None] * len(entries)

    def place(found: list[tuple[int, dict]]) -> None:
        for position, item in found:
            results[position] = item
        if on_progress:
            on_progress(len(found))

    scan = partial(_scan_chunk, window=window, frame=frame)
    if workers and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for found in pool.map(scan, chunks):
                place(found)
    else:
        for chunk in chunks:
            place(scan(chunk))
    return pd.DataFrame(results, columns=["height", "width", "channels", "colour", "dtype", "hash", "error"])


def check_table(table: Table, scan: pd.DataFrame | None = None) -> list[Problem]:
    """Everything worth telling about `table` (and its `scan`, when given), errors first.

    >>> [p.title for p in check_table(table)]  # doctest: +SKIP
    ['class imbalance']
    """
    problems = _check_files(table) if scan is None else _check_scan(table, scan)
    problems += _check_classes(table)
    problems += _check_groups(table)
    if scan is not None:
        problems += _check_duplicates(table, scan)
    return sorted(problems, key=lambda p: p.level != "error")


def _listing(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _check_files(table: Table) -> list[Problem]:
    paths = table.frame["path"].drop_duplicates()
    missing = [p for p in paths if not Path(p).is_file()]
    if not missing:
        return []
    return [_missing_problem(missing, len(paths))]


def _missing_problem(missing: list[str], total: int) -> Problem:
    level = "error" if len(missing) == total else "warning"
    return Problem(
        level,
        "missing files",
        f"{len(missing)} of {total} image files do not exist: {_listing(missing)}. Fix the paths (relative paths "
        "are read from the CSV's folder) or remove those rows",
        tuple(missing),
    )


def _check_scan(table: Table, scan: pd.DataFrame) -> list[Problem]:
    failed = scan["error"].notna().to_numpy()
    if not failed.any():
        return []
    paths = table.frame["path"].to_numpy()
    missing = [p for p, e in zip(paths[failed], scan["error"][failed], strict=True) if e.startswith("file not found")]
    unreadable = [f"{p} ({e.split(';')[0]})" for p, e in zip(paths[failed], scan["error"][failed], strict=True)
                  if not e.startswith("file not found")]  # fmt: skip
    problems = [_missing_problem(missing, len(paths))] if missing else []
    if unreadable:
        level = "error" if failed.all() else "warning"
        problems.append(
            Problem(
                level,
                "unreadable images",
                f"{len(unreadable)} image(s) cannot be decoded: {_listing(unreadable)}. Replace or remove these "
                "files; training stops on them",
                tuple(unreadable),
            )
        )
    if failed.all():
        problems = [Problem("error", p.title, p.message, p.items) for p in problems]
    return problems


def _check_classes(table: Table) -> list[Problem]:
    if not table.classes:
        return []
    counts = table.class_counts().sum(axis=1)
    problems = []
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        problems.append(
            Problem(
                "error",
                "empty classes",
                f"class(es) {', '.join(map(repr, empty))} have no images; add images to them or remove them "
                "(an empty class folder, or a name in classes= that no row uses)",
                tuple(empty),
            )
        )
    if len(table.classes) < 2:
        problems.append(
            Problem(
                "error",
                "one class",
                f"only one class ({table.classes[0]!r}) was found; a classifier needs at least two: check the "
                "label column or the folder layout",
            )
        )
    nonzero = counts[counts > 0]
    if len(nonzero) >= 2 and nonzero.max() / nonzero.min() > IMBALANCE_RATIO:
        problems.append(
            Problem(
                "warning",
                "class imbalance",
                f"the largest class ({nonzero.idxmax()}, {nonzero.max()}) has {nonzero.max() / nonzero.min():.0f}x "
                f"the images of the smallest ({nonzero.idxmin()}, {nonzero.min()}); consider class_weights=auto or "
                "a weighted sampler, and read balanced accuracy and per-class recall",
            )
        )
    if table.has_splits:
        per_split = table.class_counts()
        for split in ("val", "test"):
            if split in per_split.columns:
                absent = [c for c, n in per_split[split].items() if n == 0 and counts[c] > 0]
                if absent:
                    problems.append(
                        Problem(
                            "warning",
                            f"classes missing from {split}",
                            f"the {split} split has no image of {', '.join(map(repr, absent))}: its AUC for them "
                            "is undefined (NaN); move some images there or change the split",
                            tuple(absent),
                        )
                    )
    return problems


def _check_groups(table: Table) -> list[Problem]:
    frame = table.frame[table.frame["group"].notna() & table.frame["split"].notna()]
    if frame.empty:
        return []
    spread = frame.groupby("group")["split"].nunique()
    leaking = [str(g) for g in spread.index[spread > 1]]
    if not leaking:
        return []
    return [
        Problem(
            "warning",
            "patients in several splits",
            f"{len(leaking)} patient group(s) have images in more than one split (e.g. {_listing(leaking, 3)}); "
            "metrics will be optimistic. Let medtune split by patient (drop the given split, keep group=)",
            tuple(leaking),
        )
    ]


def _check_duplicates(table: Table, scan: pd.DataFrame) -> list[Problem]:
    frame = pd.DataFrame({"id": table.frame["id"], "split": table.frame["split"].fillna(""), "hash": scan["hash"]})
    frame = frame[frame["hash"].notna()]
    problems = []
    spread = frame.groupby("hash")["split"].nunique()
    across = frame[frame["hash"].isin(spread.index[spread > 1])]
    if not across.empty:
        pairs = [" = ".join(f"{r.id} ({r.split})" for r in g.itertuples()) for _, g in across.groupby("hash")]
        problems.append(
            Problem(
                "warning" if len(pairs) * 100 < len(frame) else "error",
                "duplicates across splits",
                f"{len(pairs)} image(s) appear, pixel for pixel, in more than one split: {_listing(pairs, 3)}. The "
                "test score counts images the model trained on: remove the copies or keep each in one split",
                tuple(pairs),
            )
        )
    within = frame[frame.duplicated("hash", keep=False) & ~frame["hash"].isin(across["hash"])]
    if not within.empty:
        problems.append(
            Problem(
                "warning",
                "duplicate images",
                f"{within['hash'].nunique()} image(s) are stored more than once within a split ({len(within)} rows, "
                f"e.g. {_listing(list(within['id']), 4)}); they weigh double in training",
                tuple(within["id"]),
            )
        )
    return problems
