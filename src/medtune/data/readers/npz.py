"""MedMNIST-style ``.npz`` reader: ``{train,val,test}_images`` and ``{train,val,test}_labels`` (or plain
``images`` / ``labels``); grayscale ``(N, H, W)`` or colour ``(N, H, W, 3)``; one label ``(N,)``/``(N, 1)`` or
several ``(N, C)`` 0/1 columns. Class names come from ``classes=``, a sidecar file, or MedMNIST's own names."""

from __future__ import annotations

import json
import re
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune.config.schema import DataSettings
from medtune.data.readers._base import register_reader
from medtune.data.table import LABEL_SEP, Table, create_table
from medtune.errors import DataError

# Class names of the MedMNIST v2 datasets (medmnist.INFO), so their files read with names, not numbers.
MEDMNIST_CLASSES: dict[str, list[str]] = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal, benign"],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "chestmnist": ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
                   "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"],
    "pathmnist": ["adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
                  "normal colon mucosa", "cancer-associated stroma", "colorectal adenocarcinoma epithelium"],
    "dermamnist": ["actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
                   "benign keratosis-like lesions", "dermatofibroma", "melanoma", "melanocytic nevi",
                   "vascular lesions"],
}  # fmt: skip


def _sidecar_classes(path: Path) -> list[str] | None:
    """Class names from ``<stem>.json`` (a list, or MedMNIST's ``{"label": {"0": name}}``) or ``<stem>.txt``."""
    json_file, txt_file = path.with_suffix(".json"), path.with_suffix(".txt")
    if json_file.is_file():
        data = json.loads(json_file.read_text(encoding="utf-8"))
        data = data.get("label", data.get("classes", data)) if isinstance(data, dict) else data
        if isinstance(data, dict):
            return [str(data[k]) for k in sorted(data, key=int)]
        if isinstance(data, list):
            return [str(v) for v in data]
        raise DataError(f"{json_file}: expected a list of class names or {{'label': {{'0': name, ...}}}}")
    if txt_file.is_file():
        return [line.strip() for line in txt_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return None


def _class_names(path: Path, config: DataSettings, n_classes: int) -> tuple[list[str], str]:
    stem = re.sub(r"_\d+$", "", path.stem.lower())  # pneumoniamnist_64.npz is MedMNIST+ at 64 px
    for names, origin in (
        (config.classes, "classes="),
        (_sidecar_classes(path), "the sidecar file"),
        (MEDMNIST_CLASSES.get(stem), f"MedMNIST's names for {stem}"),
    ):
        if names is not None:
            if len(names) < n_classes:
                raise DataError(
                    f"{path}: labels go up to {n_classes - 1} but {origin} names only {len(names)} classes "
                    f"({names}); give one name per class"
                )
            return list(names), f"class names from {origin}"
    return [str(i) for i in range(n_classes)], "no class names given: classes are numbered (set classes=a,b,...)"


#: What numpy and zipfile raise on a damaged archive or member (fuzzing found the header parser's SyntaxError and
#: TokenError, and zlib's error, among them).
_ARCHIVE_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, SyntaxError, tokenize.TokenError, zlib.error,
                   RuntimeError, NotImplementedError)  # fmt: skip


def _load(data: Any, name: str, path: Path) -> np.ndarray:
    try:
        return data[name]
    except _ARCHIVE_ERRORS as exc:
        raise DataError(f"cannot read the array {name!r} of {path}: {type(exc).__name__}: {exc}; the archive is "
                        "truncated or corrupt: re-create it with numpy.savez") from None  # fmt: skip


def _arrays(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except _ARCHIVE_ERRORS as exc:
        raise DataError(f"cannot read {path} as an .npz archive: {exc}; the file is truncated or not .npz") from None
    prefixes = [s for s in ("train", "val", "test") if f"{s}_images" in keys]
    if not prefixes and "images" in keys:
        prefixes = [""]
    if not prefixes:
        raise DataError(
            f"{path} holds arrays {sorted(keys)}; expected train_images/train_labels (and val_, test_), "
            "or images/labels"
        )
    out = {}
    for split in prefixes:
        stem = f"{split}_" if split else ""
        if f"{stem}labels" not in keys:
            raise DataError(f"{path} has {stem}images but no {stem}labels; add the labels array")
        images, labels = _load(data, f"{stem}images", path), _load(data, f"{stem}labels", path)
        _check_arrays(path, stem, images, labels)
        out[split] = (images, labels.reshape(len(labels), -1).astype(np.int64))
    return out


def _check_arrays(path: Path, stem: str, images: np.ndarray, labels: np.ndarray) -> None:
    """Images ``(N, H, W)`` or ``(N, H, W, 1|3)`` of numbers, N > 0; labels ``(N,)`` or ``(N, K)`` of whole numbers
    (fuzzing found scalars, empty arrays and text reaching the reshape)."""
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)) or 0 in images.shape:
        raise DataError(f"{path}: {stem}images has shape {images.shape}; expected (N, H, W) or (N, H, W, 3) with "
                        "N, H, W > 0")  # fmt: skip
    if images.dtype.kind not in "uifb":
        raise DataError(f"{path}: {stem}images holds {images.dtype} values; expected numbers (uint8, uint16, float)")
    if labels.ndim not in (1, 2) or (labels.ndim == 2 and labels.shape[1] == 0):
        raise DataError(f"{path}: {stem}labels has shape {labels.shape}; expected (N,) class indices or (N, K) 0/1")
    if len(labels) != len(images):
        raise DataError(f"{path}: {len(images)} {stem}images but {len(labels)} {stem}labels; they must match")
    whole = labels.dtype.kind in "uib" or (
        labels.dtype.kind == "f" and bool(np.isfinite(labels).all()) and bool((labels == np.round(labels)).all())
    )
    if not whole:
        raise DataError(f"{path}: {stem}labels holds {labels.dtype} values that are not whole numbers; expected "
                        "class indices (0, 1, 2...) or 0/1 columns")  # fmt: skip


def read_npz(path: Path, config: DataSettings) -> Table:
    """Read a MedMNIST-style archive into a table (``path`` is the archive, ``array``/``index`` the image)."""
    arrays = _arrays(path)
    widths = {labels.shape[1] for _, labels in arrays.values()}
    if len(widths) != 1:
        raise DataError(f"{path}: label arrays have different widths {sorted(widths)}; they must match")
    multilabel = widths.pop() > 1
    all_labels = np.concatenate([labels for _, labels in arrays.values()])
    if all_labels.min() < 0:
        raise DataError(f"{path}: labels must be class indices >= 0 (or 0/1 columns), found {all_labels.min()}")
    n_classes = all_labels.shape[1] if multilabel else int(all_labels.max()) + 1
    if n_classes > max(1000, 10 * len(all_labels)):  # fuzzing: a label of 2**40 asked for 2**40 class names
        raise DataError(f"{path}: labels go up to {n_classes - 1} for {len(all_labels)} images; expected class "
                        "indices 0, 1, 2... (one per class, without large gaps)")  # fmt: skip
    classes, note = _class_names(path, config, n_classes)
    rows = []
    for split, (_, labels) in arrays.items():
        prefix = f"{split}_" if split else ""
        for i, row in enumerate(labels):
            label = LABEL_SEP.join(classes[c] for c in np.flatnonzero(row)) if multilabel else classes[int(row[0])]
            rows.append({"id": f"{split or 'all'}/{i}", "path": str(path), "array": f"{prefix}images", "index": i,
                         "label": label, "split": split or None})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame["index"] = frame["index"].astype("Int64")
    return create_table(frame, classes=classes, multilabel=multilabel, source=path, reader="npz", notes=[note])


register_reader(
    "npz", detect=lambda p: p.is_file() and p.suffix.lower() == ".npz", describe="a MedMNIST-style .npz archive"
)(read_npz)
