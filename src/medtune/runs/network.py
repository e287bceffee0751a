"""Your own network's code in a run (``backbone=path/to/file.py:NAME``, ``package.module:NAME`` or a registered
name): ``RUN/network/<file>.py``, a copy of the code the run trained with, and ``RUN/network/network.json``, where
it came from and its SHA-256. Checkpoints embed the same record, so a run is rebuilt from its own copy after the
file moved or changed, and a changed file is said.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from medtune._io import write_json, write_text
from medtune.config import Config
from medtune.errors import DataError
from medtune.models.custom import NetworkSource, is_custom, network_source
from medtune.tasks import get_task

#: The record's file name inside ``RUN/network/``.
RECORD = "network.json"


def current_network(config: Config) -> NetworkSource | None:
    """The code of the configuration's own network as it is now; None for timm backbones and segmenters."""
    if not get_task(config.task).labelled or not is_custom(config.backbone):  # a segmenter's encoder is timm's
        return None
    return network_source(config.backbone)


def write_network(folder: Path, source: NetworkSource | None) -> None:
    """Copy the network's code into `folder` (``RUN/network``) with its record, atomically."""
    if source is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    if source.source is not None:
        write_text(folder / _copy_name(source), source.source)
    write_json(folder / RECORD, {**source.to_dict(), "source": None, "copy": _copy_name(source)})


def _copy_name(source: NetworkSource) -> str:
    return Path(source.file).name if source.file else f"{source.short_name}.py"


def read_network(folder: Path) -> NetworkSource | None:
    """The network recorded in `folder` (``RUN/network``), None when the run trains a timm backbone.

    Raises:
        DataError: the record or its copy is unreadable.
    """
    record = folder / RECORD
    if not record.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
        copy = folder / str(data.get("copy"))
        text = copy.read_text(encoding="utf-8") if copy.is_file() else None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the network record {record}: {exc}; train the run again") from None
    return NetworkSource.from_dict({**data, "source": text})


def network_difference(folder: Path, source: NetworkSource | None) -> str | None:
    """How the network code of a run in `folder` differs from `source` (None when it is the same, or neither is
    your own network's)."""
    recorded = read_network(folder)
    if recorded is None or source is None or recorded.sha256 == source.sha256:
        return None
    return (
        f"network code: {source.file or source.spec} is not the code the run started with (sha256 "
        f"{str(recorded.sha256)[:12]} -> {str(source.sha256)[:12]}; the run's copy is {folder / _copy_name(recorded)})"
    )


def recorded_network(meta: dict[str, Any], where: Path) -> NetworkSource | None:
    """The network code a checkpoint embeds (None for timm backbones); says on stderr when the file it came from
    changed since (a file's recorded copy is used; a module or registered network is today's code)."""
    data = meta.get("network")
    if not data:
        return None
    source = NetworkSource.from_dict(data)
    change = source.changed()
    if change:
        used = "the copy recorded in the run is used" if source.kind == "file" else "today's code is used"
        print(f"note: {where}: network code {change} since the run was trained; {used}", file=sys.stderr)
    return source
