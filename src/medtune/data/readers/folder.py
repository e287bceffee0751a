"""Folder readers: a folder per class (``root/<class>/*``), split folders (``root/{train,val,test}/<class>/*``,
the torchvision ImageFolder and Kaggle layouts), and an unlabelled folder for prediction."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from medtune.config.schema import DataSettings
from medtune.data.images import is_image_file
from medtune.data.readers._base import register_reader
from medtune.data.readers.names import labels_from_names, name_pattern
from medtune.data.table import Table, create_table
from medtune.errors import DataError

SPLIT_DIRS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
              "test": "test", "testing": "test"}  # fmt: skip


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _walk_files(path: Path) -> tuple[list[Path], list[Path]]:
    """All files under `path` in a stable order, split into images and others; hidden entries skipped."""
    images, others = [], []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(files):
            if name.startswith("."):
                continue
            file = Path(folder) / name
            (images if is_image_file(file) else others).append(file)
    return images, others


def _skipped_note(others: list[Path], root: Path) -> list[str]:
    if not others:
        return []
    examples = ", ".join(str(p.relative_to(root)) for p in others[:3])
    return [f"ignored {len(others)} file(s) that are not images ({examples})"]


def _class_rows(class_dir: Path, root: Path, label: str, split: str | None, notes: list[str]) -> list[dict]:
    images, others = _walk_files(class_dir)
    notes += _skipped_note(others, root)
    return [{"id": img.relative_to(root).as_posix(), "path": str(img), "label": label, "split": split}
            for img in images]  # fmt: skip


def is_flat_folder(root: Path) -> bool:
    """True for a folder of images without sub-folders: images with no class to read from the layout."""
    if _visible_dirs(root):
        return False
    return any(p.is_file() and not p.name.startswith(".") and is_image_file(p) for p in root.iterdir())


def _is_split_layout(root: Path) -> bool:
    names = {d.name.lower() for d in _visible_dirs(root)}
    return bool(names) and names <= set(SPLIT_DIRS) and any(SPLIT_DIRS[n] == "train" for n in names)


def _read_named(root: Path, config: DataSettings, pattern: re.Pattern[str]) -> Table:
    """Every image under `root` (split folders kept), labelled by its file name (`medtune.data.readers.names`)."""
    notes: list[str] = []
    parts = [(d, SPLIT_DIRS[d.name.lower()]) for d in _visible_dirs(root)] if _is_split_layout(root) else [(root, None)]
    rows = []
    for folder, split in parts:
        images, others = _walk_files(folder)
        notes += _skipped_note(others, root)
        rows += [{"id": img.relative_to(root).as_posix(), "path": str(img), "split": split} for img in images]
    if not rows:
        raise DataError(
            f"no images found in {root} (searched sub-folders too); expected .png, .jpg, .tif, .bmp or .dcm"
        )
    frame, note = labels_from_names(pd.DataFrame(rows), pattern, root)
    order = config.classes or sorted(set(frame["label"]))
    return create_table(frame, classes=order, source=root, reader="folder", notes=[note, *notes])


def read_class_folders(root: Path, config: DataSettings) -> Table:
    """Read ``root/<class>/*`` or ``root/<split>/<class>/*`` into a table; class names are folder names (or file
    names: ``label_from=name``, ``label_pattern=``)."""
    pattern = name_pattern(config)
    if pattern is not None:
        return _read_named(root, config, pattern)
    rows: list[dict] = []
    notes: list[str] = []
    classes: set[str] = set()
    if _is_split_layout(root):
        notes.append("split folders found: images keep the split of their folder")
        for split_dir in _visible_dirs(root):
            class_dirs = _visible_dirs(split_dir)
            if not class_dirs:
                loose, _ = _walk_files(split_dir)
                notes.append(
                    f"{split_dir.name}/ has no class folders: its {len(loose)} image(s) are unlabelled "
                    "and left out (predict them with medtune predict)"
                )
                continue
            for class_dir in class_dirs:
                classes.add(class_dir.name)
                rows += _class_rows(class_dir, root, class_dir.name, SPLIT_DIRS[split_dir.name.lower()], notes)
    else:
        loose = [p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")]
        for class_dir in _visible_dirs(root):
            classes.add(class_dir.name)
            rows += _class_rows(class_dir, root, class_dir.name, None, notes)
        loose_images = [p for p in loose if is_image_file(p)]
        if loose_images and not rows:
            raise DataError(
                f"{root} holds {len(loose_images)} image(s) but no class folders; for training put each class in "
                f"its own folder ({root}/<class>/image.png), give a CSV of labels, or read labels from the file "
                f"names (label_from=name for ADI-AAQEFMRI.tif, or label_pattern=REGEX)"
            )
        notes += _skipped_note(loose, root) if loose else []
    if not rows:
        raise DataError(
            f"no images found in {root}: expected {root}/<class>/*.png (or .jpg, .tif, .bmp, .dcm), optionally inside "
            "train/, val/ and test/ folders"
        )
    order = config.classes or sorted(classes)
    return create_table(pd.DataFrame(rows), classes=order, source=root, reader="folder", notes=notes)


register_reader("folder", detect=Path.is_dir, describe="a folder per class, optionally inside train/val/test")(
    read_class_folders
)


def read_unlabelled(root: Path) -> Table:
    """Every image under `root` (recursive), without labels: the input of prediction."""
    images, others = _walk_files(root)
    if not images:
        raise DataError(
            f"no images found in {root} (searched sub-folders too); expected .png, .jpg, .tif, .bmp or .dcm"
        )
    rows = [{"id": img.relative_to(root).as_posix(), "path": str(img)} for img in images]
    return create_table(pd.DataFrame(rows), classes=(), source=root, reader="folder", notes=_skipped_note(others, root))
