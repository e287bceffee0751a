"""CSV/TSV manifest reader: a path column and one label column, several 0/1 label columns, or a delimited
label string (``Infiltration|Pneumonia``); optional split, group (patient), mask and domain columns.
Paths are relative to the manifest's folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from medtune._registry import suggest
from medtune.config.schema import DataSettings
from medtune.data.readers._base import register_reader
from medtune.data.readers.names import labels_from_names, name_pattern
from medtune.data.table import LABEL_SEP, Table, create_table
from medtune.errors import DataError

SUFFIXES = (".csv", ".tsv")
PATH_NAMES = ("path", "image", "image_path", "filepath", "file_path", "file", "filename", "file_name", "img",
              "image index", "image_id")  # fmt: skip
LABEL_NAMES = ("label", "class", "target", "diagnosis", "category", "finding_labels", "finding labels")
GROUP_NAMES = ("patient_id", "patientid", "patient id", "patient", "subject_id", "subject")
MASK_NAMES = ("mask", "mask_path", "mask_file")
#: Columns that name where an image comes from, read as its domain unless ``domain=`` names another.
DOMAIN_NAMES = ("domain", "source", "site", "hospital", "scanner", "institution", "center", "centre")
TRUE = {"1", "1.0", "true", "yes", "y", "t"}
FALSE = {"0", "0.0", "false", "no", "n", "f", "", "-1", "-1.0"}


def _separator(path: Path) -> str:
    """Tab for .tsv; otherwise the header line decides between comma, semicolon (European Excel) and tab."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    with path.open(encoding="utf-8", errors="replace") as f:
        header = f.readline()
    if "," not in header:
        for sep in (";", "\t"):
            if sep in header:
                return sep
    return ","


def read_manifest_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=_separator(path), dtype=str, keep_default_na=False, na_values=[""],
                            skipinitialspace=True, encoding="utf-8-sig")  # fmt: skip
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path} as a table: {exc}; expected a CSV/TSV file with a header row") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(f"{path} has a header but no rows; add one row per image")
    return frame


def find_column(frame: pd.DataFrame, given: str | None, candidates: tuple[str, ...], what: str, key: str,
          path: Path) -> str | None:  # fmt: skip
    """The column named by `given` (which must exist), else the first of `candidates` present (any case)."""
    columns = list(frame.columns)
    if given is not None:
        if given in columns:
            return given
        raise DataError(
            f"{path} has no {what} column {given!r}.{suggest(given, columns)} Columns are: {', '.join(columns)}; "
            f"set {key}=COLUMN"
        )
    lower = {c.lower(): c for c in columns}
    return next((lower[name] for name in candidates if name in lower), None)


def resolve_paths(values: pd.Series, base: Path, manifest: Path, outside: bool = False) -> pd.Series:
    """Paths of a manifest's column, relative ones taken from its folder; those that climb out of that folder with
    ``..`` are refused unless `outside` (``outside_paths=true``): a manifest someone else wrote reads only the
    images beside or below it, unless you allow more."""
    if not outside:
        root = os.path.normpath(base)
        climbing = [v for v in values.dropna() if not Path(v).is_absolute() and ".." in Path(v).parts
                    and not os.path.normpath(base / v).startswith(root + os.sep)]  # fmt: skip
        if climbing:
            raise DataError(
                f"{manifest}: {len(climbing)} relative image path(s) climb out of its folder with '..' (e.g. "
                f"{', '.join(repr(v) for v in climbing[:3])}); a manifest reads the images beside or below it unless "
                "you allow others: set outside_paths=true if you trust it, or give absolute paths"
            )
    return values.map(lambda v: str(Path(v) if Path(v).is_absolute() else base / v), na_action="ignore")


def _multi_hot_labels(frame: pd.DataFrame, columns: list[str], path: Path) -> pd.Series:
    """Join the names of the 0/1 columns that are 1 into a multi-label cell."""
    flags = {}
    for column in columns:
        values = frame[column].fillna("").str.strip().str.lower()
        bad = ~values.isin(TRUE | FALSE)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{path}: column {column!r} must hold 0 or 1, found {frame[column].iloc[row]!r} on row {row + 2}; "
                "fix that cell, or leave the column out of labels="
            )
        flags[column] = values.isin(TRUE).to_numpy()
    return pd.Series([LABEL_SEP.join(c for c in columns if flags[c][i]) for i in range(len(frame))], index=frame.index)


def _delimited_labels(values: pd.Series, sep: str, no_finding: str) -> pd.Series:
    def parse(cell: object) -> str:
        if not isinstance(cell, str):
            return ""
        names = [t.strip() for t in cell.split(sep) if t.strip() and t.strip() != no_finding]
        return LABEL_SEP.join(sorted(set(names)))

    return values.map(parse)


def _image_paths(frame: pd.DataFrame, config: DataSettings, path: Path) -> pd.DataFrame:
    """The rows' ``path`` (resolved against the manifest's folder) and ``id`` (the path as written)."""
    path_col = find_column(frame, config.path, PATH_NAMES, "image path", "path", path)
    if path_col is None:
        raise DataError(
            f"{path} has no image path column (looked for {', '.join(PATH_NAMES[:6])}...). Columns are: "
            f"{', '.join(frame.columns)}; set path=COLUMN"
        )
    if frame[path_col].isna().any():
        row = int(np.flatnonzero(frame[path_col].isna().to_numpy())[0])
        raise DataError(f"{path}: row {row + 2} has an empty {path_col!r}; every row needs an image path")
    out = pd.DataFrame({"path": resolve_paths(frame[path_col].str.strip(), path.parent, path, config.outside_paths)})
    out["id"] = frame[path_col].str.strip()
    return out


def _optional_columns(frame: pd.DataFrame, out: pd.DataFrame, config: DataSettings, path: Path, notes: list) -> None:
    """Add the split, group, mask and domain columns the manifest has to `out` (noting the ones found by name)."""
    optional = (("split", "split", ("split",)), ("group", "group", GROUP_NAMES),
                ("mask", "mask_column", MASK_NAMES), ("domain", "domain", DOMAIN_NAMES))  # fmt: skip
    for key, setting, candidates in optional:
        column = find_column(frame, getattr(config, setting), candidates, key, setting, path)
        if column is None:
            continue
        if getattr(config, setting) is None:
            notes.append(f"{key} from column {column!r} (set {setting}=COLUMN to choose another)")
        values = frame[column].str.strip()
        out[key] = resolve_paths(values, path.parent, path, config.outside_paths) if key == "mask" else values


def read_paths(path: Path, config: DataSettings) -> Table:
    """A CSV/TSV manifest's images without labels (a label column is ignored): paths and the optional split, group,
    mask and domain columns, for prediction and for estimating the class mix of unlabelled data."""
    frame = read_manifest_csv(path)
    out, notes = _image_paths(frame, config, path), ["unlabelled: the manifest's paths only"]
    _optional_columns(frame, out, config, path, notes)
    return create_table(out, classes=(), source=path, reader="table", notes=notes)


def read_manifest(path: Path, config: DataSettings) -> Table:
    """Read a CSV/TSV manifest into a table, using the column keys of `config`."""
    frame = read_manifest_csv(path)
    notes: list[str] = []
    out = _image_paths(frame, config, path)

    multilabel = bool(config.labels) or config.label_sep is not None
    classes = config.classes
    pattern = name_pattern(config)
    if pattern is not None:
        pass  # labels (and groups) from the file names, after the optional columns below
    elif config.labels:
        for column in config.labels:
            find_column(frame, column, (), "label", "labels", path)
        out["label"] = _multi_hot_labels(frame, config.labels, path)
        classes = classes or list(config.labels)
    else:
        label_col = find_column(frame, config.label, LABEL_NAMES, "label", "label", path)
        if label_col is None:
            raise DataError(
                f"{path} has no label column (looked for {', '.join(LABEL_NAMES[:5])}...). Columns are: "
                f"{', '.join(frame.columns)}; set label=COLUMN, or labels=A,B,C for 0/1 columns"
            )
        notes.append(f"labels from column {label_col!r}")
        labels = frame[label_col].str.strip()
        if config.label_sep is not None:
            out["label"] = _delimited_labels(labels, config.label_sep, config.no_finding)
        else:
            missing = labels.isna()
            if missing.any():
                row = int(np.flatnonzero(missing.to_numpy())[0])
                raise DataError(
                    f"{path}: {int(missing.sum())} row(s) have an empty {label_col!r} (first on row {row + 2}); "
                    "fill in their labels or remove those rows"
                )
            out["label"] = labels

    _optional_columns(frame, out, config, path, notes)
    if pattern is not None:
        out, note = labels_from_names(out, pattern, path)
        notes.insert(0, note)
    return create_table(out, classes=classes, multilabel=multilabel, source=path, reader="table", notes=notes)


register_reader(
    "table",
    detect=lambda p: p.is_file() and p.suffix.lower() in SUFFIXES,
    describe="a CSV/TSV manifest with a path column and label column(s)",
)(read_manifest)
