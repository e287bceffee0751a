"""Labels (and groups) read from file names: ``label_from=name`` and ``label_pattern=REGEX``.

Tile datasets name each file by its class (NCT-CRC-HE-100K's ``ADI-AAQEFMRI.tif``, LC25000's ``lungaca12.jpeg``),
often with the slide or patient in the name too. ``label_from=name`` takes the part of the file name before the
first ``-`` or ``_``; ``label_pattern=`` is a regular expression searched in the file's path relative to the data
(its ``id``), with a named group ``label`` and optionally ``group`` (the slide or patient, for grouped splits).
Folders and CSV manifests alike: the CSV's path column names the files.
"""

from __future__ import annotations

import re

import pandas as pd

from medtune.config.schema import DataSettings
from medtune.errors import ConfigError, DataError

#: ``label_from=name``: the file name's prefix before the first ``-`` or ``_`` (the extension never counts).
NAME_PREFIX = r"^(?:.*/)?(?P<label>[^/_-]+)[-_][^/]*$"


def name_pattern(config: DataSettings) -> re.Pattern[str] | None:
    """The compiled pattern that names the label, or None when labels come from folders or a label column.

    Raises:
        ConfigError: both keys given, an invalid expression, or one without a ``label`` group.
    """
    if config.label_from == "name" and config.label_pattern:
        raise ConfigError("give label_from=name or label_pattern=REGEX, not both (the pattern names the label itself)")
    text = NAME_PREFIX if config.label_from == "name" else config.label_pattern
    if not text:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise ConfigError(f"label_pattern={text!r} is not a valid regular expression: {exc}") from None
    if "label" not in pattern.groupindex:
        raise ConfigError(
            f"label_pattern={text!r} has no group named label; write it as (?P<label>...), e.g. "
            r"label_pattern='^(?P<label>[A-Z]+)-(?P<group>\w+)'"
        )
    return pattern


def labels_from_names(frame: pd.DataFrame, pattern: re.Pattern[str], source: object) -> tuple[pd.DataFrame, str]:
    """Set ``label`` (and ``group`` when the pattern has one) of every row from its ``id``.

    Returns:
        The frame and a note for the summary.

    Raises:
        DataError: files the pattern does not match, named (the first few) with the pattern and the fix.
    """
    found = frame["id"].astype(str).map(lambda name: pattern.search(name.replace("\\", "/")))
    unmatched = frame.loc[found.isna(), "id"].astype(str).tolist()
    if unmatched:
        examples = ", ".join(unmatched[:5])
        raise DataError(
            f"{source}: {len(unmatched)} of {len(frame)} file name(s) do not match {pattern.pattern!r} (e.g. "
            f"{examples}); rename them, remove them, or give a label_pattern= that fits every name"
        )
    frame = frame.copy()
    frame["label"] = [match.group("label") for match in found]
    if (frame["label"].str.len() == 0).any():
        first = frame.loc[frame["label"].str.len() == 0, "id"].iloc[0]
        raise DataError(f"{source}: the label group of {pattern.pattern!r} matched nothing in {first}; fix the pattern")
    note = f"labels from file names ({pattern.pattern})"
    if "group" in pattern.groupindex:
        frame["group"] = [match.group("group") for match in found]
        note += ", groups from the group part"
    return frame, note
