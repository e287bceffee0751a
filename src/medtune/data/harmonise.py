"""Label harmonisation: class names from different datasets matched through one table of chest X-ray synonyms and
a user's map, so that a classifier trained on one hospital's labels can be scored on another's.

The built-in table holds the 18 pathologies TorchXRayVision harmonises (Cohen et al. 2020) with their usual
spellings (``Pleural_Thickening``, ``pleural thickening``, ``Pleural Thickening``...), plus ``normal`` (``No
Finding``, ``healthy``, ``negative``...) and ``covid`` (``COVID-19``, ``covid19``, ``SARS-CoV-2``...). Names are
compared case- and separator-blind. A user map (``label_map=map.yaml``: ``source label: target
label``, or ``null`` to drop) comes first. A label that matches nothing is kept under its own name and listed by
`harmonise_labels`, never guessed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from medtune._registry import suggest
from medtune.data.table import LABEL_SEP, Table, split_labels
from medtune.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from medtune.config.schema import DataSettings

#: Canonical name -> the spellings that mean it (the canonical name itself always counts).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "normal": ("no finding", "no findings", "healthy", "negative", "nofinding", "no_finding", "normal lung"),
    "covid": ("covid-19", "covid19", "covid 19", "sars-cov-2", "coronavirus", "covid pneumonia"),
    "atelectasis": (),
    "consolidation": (),
    "infiltration": ("infiltrate", "infiltrates"),
    "pneumothorax": (),
    "edema": ("oedema", "pulmonary edema"),
    "emphysema": (),
    "fibrosis": (),
    "effusion": ("pleural effusion", "pleural_effusion"),
    "pneumonia": ("pneumonia (bacterial or viral)", "bacterial pneumonia", "viral pneumonia", "lung infection"),
    "pleural thickening": ("pleural_thickening", "pleural other"),
    "cardiomegaly": ("enlarged heart",),
    "nodule": ("nodules",),
    "mass": ("masses",),
    "hernia": (),
    "lung lesion": ("lung_lesion", "lesion"),
    "fracture": ("fractures",),
    "lung opacity": ("lung_opacity", "opacity", "airspace opacity"),
    "enlarged cardiomediastinum": ("enlarged_cardiomediastinum",),
}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(name).strip().casefold())


_LOOKUP: dict[str, str] = {_key(s): canon for canon, spellings in SYNONYMS.items() for s in (canon, *spellings)}


def canonical_label(name: str) -> str | None:
    """The canonical name of a class in the built-in table, or None when it has none.

    >>> canonical_label("Pleural_Thickening"), canonical_label("No Finding"), canonical_label("COVID-19")
    ('pleural thickening', 'normal', 'covid')
    >>> canonical_label("Tuberculosis") is None
    True
    """
    return _LOOKUP.get(_key(name))


def read_label_map(path: str | os.PathLike | None) -> dict[str, str | None]:
    """A user's label map (YAML ``source label: target label``; ``null`` drops the label), keys compared blind to
    case and separators.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping of names to names (or null).
    """
    if path is None:
        return {}
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"label map {file} does not exist; give a YAML file of `source label: target label` lines")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"label map {file} is not valid YAML ({exc}); write `source label: target label` lines"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) or v is None for v in data.values()):
        raise ConfigError(f"label map {file} must map names to names (or to null to drop a label), e.g. `Pneumonia: "
                          "pneumonia`")  # fmt: skip
    return {_key(str(k)): (None if v is None else str(v)) for k, v in data.items()}


def harmonise_labels(
    labels: Iterable[str], label_map: Mapping[str, str | None] | None = None
) -> tuple[dict[str, str | None], list[str]]:
    """Map each label to its harmonised name: the user's map first, then the built-in table; a label neither
    knows keeps its own name (lower case) and is listed as unmatched. None means dropped by the map.

    Returns:
        The mapping of every given label, and the unmatched labels in order.

    >>> harmonise_labels(["No Finding", "Pneumonia", "Tuberculosis"], {"tuberculosis": None})
    ({'No Finding': 'normal', 'Pneumonia': 'pneumonia', 'Tuberculosis': None}, [])
    """
    label_map = dict(label_map or {})
    out: dict[str, str | None] = {}
    unmatched: list[str] = []
    for label in dict.fromkeys(labels):
        key = _key(label)
        if key in label_map:
            target = label_map[key]
            out[label] = None if target is None else (canonical_label(target) or _key(target))
        elif (canon := canonical_label(label)) is not None:
            out[label] = canon
        else:
            out[label] = key
            unmatched.append(label)
    return out, unmatched


def check_label_map(
    label_map: Mapping[str, str | None], labels: Iterable[str], where: str, strict: bool = False
) -> None:
    """Refuse map entries that name no label of the data (a typo), with the closest labels. Unless `strict`, a
    name of the synonym table passes too (a map shared by several datasets names labels of each).

    Raises:
        ConfigError: a source label of the map is none of `labels`.
    """
    present = {_key(label): label for label in labels}
    unknown = [key for key in label_map if key not in present and (strict or canonical_label(key) is None)]
    if unknown:
        hints = "; ".join(f"{key!r} is no label of {where}.{suggest(key, list(present))}" for key in unknown)
        raise ConfigError(f"label map: {hints} Its labels are {', '.join(sorted(present.values()))}.")


def select_rows(table: Table, config: DataSettings) -> Table:
    """`table` with its labels harmonised (``harmonise=true`` or ``label_map=``), only the classes of
    ``keep_classes=`` and the domains of ``domains=``; what was renamed and dropped goes into its notes.

    Raises:
        ConfigError: a label map entry names no label of the data, or ``domains=`` without a domain column.
        DataError: nothing is left.
    """
    frame, classes, notes = table.frame, list(table.classes), list(table.notes)
    if config.domains:
        if frame["domain"].isna().all():
            raise ConfigError(f"domains={','.join(config.domains)} needs a domain column: give domain=COLUMN")
        keep = frame["domain"].astype(str).isin(config.domains)
        notes.append(f"{int(keep.sum())} of {len(frame)} image(s) from domain(s) {', '.join(config.domains)}")
        frame = frame[keep]
    if config.harmonise or config.label_map:
        label_map = read_label_map(config.label_map)
        check_label_map(label_map, classes, table.source)
        mapping, unmatched = harmonise_labels(classes, label_map)
        frame = frame.assign(label=[_relabel(v, mapping, table.multilabel) for v in frame["label"]])
        frame = frame[frame["label"].notna()]
        classes = sorted({name for name in mapping.values() if name is not None})
        renamed = [f"{k} -> {v}" for k, v in mapping.items() if v != k]
        notes.append("labels harmonised" + (f": {', '.join(renamed)}" if renamed else " (no change)"))
        if unmatched:
            notes.append(f"labels in no synonym table, kept as they are: {', '.join(unmatched)}")
    multilabel = table.multilabel
    if config.keep_classes and multilabel and "normal" in config.keep_classes:
        frame, dropped = _single_label(frame, config.keep_classes)
        notes.append(f"findings read as single labels ({dropped} image(s) with none or several of the kept classes "
                     "left out; no finding is normal)")  # fmt: skip
        classes, multilabel = [*classes, "normal"], False
    if config.keep_classes:
        kept = [c for c in config.keep_classes if c in classes]
        frame, dropped = _keep(frame, kept, multilabel)
        if dropped:
            notes.append(f"{dropped} image(s) left out: their labels are not among {', '.join(config.keep_classes)}")
        classes = kept
    present = {n for v in frame["label"] for n in (split_labels(v) if multilabel else [v])}
    classes = [c for c in classes if c in present]  # a domain may lack classes the whole table has
    if frame.empty or not classes:
        raise DataError(f"{table.source}: no image is left after choosing classes and domains; check keep_classes=, "
                        "domains= and the label map")  # fmt: skip
    return replace(table, frame=frame.reset_index(drop=True), classes=tuple(classes), notes=tuple(notes),
                   multilabel=multilabel)  # fmt: skip


def _single_label(frame: pd.DataFrame, kept: Sequence[str]) -> tuple[pd.DataFrame, int]:
    """Multi-label rows as single labels over `kept`: no finding is ``normal``, exactly one kept finding is that
    class (whatever else the image shows), and rows with none of the kept findings, or several, are left out."""
    labels = []
    for value in frame["label"]:
        names = split_labels(value)
        inside = [n for n in names if n in kept]
        labels.append("normal" if not names else inside[0] if len(inside) == 1 else None)
    out = frame.assign(label=labels)
    return out[out["label"].notna()], int(out["label"].isna().sum())


def _relabel(value: object, mapping: Mapping[str, str | None], multilabel: bool) -> str | None:
    if not isinstance(value, str):
        return None
    if not multilabel:
        return mapping.get(value, value)
    names = [mapping.get(n, n) for n in split_labels(value)]
    return LABEL_SEP.join(sorted({n for n in names if n}))


def _keep(frame: pd.DataFrame, kept: list[str], multilabel: bool) -> tuple[pd.DataFrame, int]:
    if not multilabel:
        keep = frame["label"].isin(kept)
        return frame[keep], int((~keep).sum())
    labels = [LABEL_SEP.join(n for n in split_labels(v) if n in kept) for v in frame["label"]]
    return frame.assign(label=labels), 0
