"""What medtune keeps in its cache, and removing it safely: image stores, feature caches, predicted masks and
converted weights (``medtune cache list|clean``).

An entry is one folder or file under ``<cache>/<kind>/``. Its last use is its lock file's time (`medtune._locks`:
opening a store or building any entry touches it), else its own. An entry in use (a process has the store open, or
builds the entry) is never removed: removal needs the entry's lock exclusively, without waiting.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from medtune._locks import lock_file, try_exclusive
from medtune._paths import cache_dir
from medtune.data.store import discard, is_stale_build
from medtune.errors import ConfigError

#: The cache's kinds of entries, as folder names under the cache root.
KINDS = ("stores", "features", "masks", "weights")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


@dataclass(frozen=True)
class CacheEntry:
    """One entry of the cache.

    Attributes:
        kind: ``stores``, ``features``, ``masks`` or ``weights``.
        path: the folder or file.
        size: bytes on disk (sparse files counted by their blocks).
        last_used: seconds since the epoch.
        in_use: a process has it open or is building it now.
        leftover: a temporary build whose process is gone (removed by any clean).
    """

    kind: str
    path: Path
    size: int
    last_used: float
    in_use: bool
    leftover: bool = False


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` in seconds.

    >>> parse_age("30d"), parse_age("1.5h")
    (2592000.0, 5400.0)
    """
    found = _AGE.match(str(text))
    if not found:
        raise ConfigError(f"--older-than {text!r}: expected a number and a unit, such as 30d, 12h, 90m or 2w")
    return float(found.group(1)) * _SECONDS[found.group(2)]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum((Path(root) / name).stat().st_blocks * 512 for root, _, names in os.walk(path) for name in names)


def _in_use(path: Path) -> bool:
    handle = try_exclusive(path)
    if handle is None:
        return True
    handle.close()
    return False


def list_cache(root: str | os.PathLike | None = None) -> list[CacheEntry]:
    """Every entry of the cache (and leftovers of killed builds), most recently used first."""
    base = Path(root) if root is not None else cache_dir()
    entries = []
    for kind in KINDS:
        folder = base / kind
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            leftover = is_stale_build(path)
            if path.name.startswith(".") and not leftover:
                continue  # lock files, builds in progress
            lock = lock_file(path)
            used = (lock if lock.exists() else path).stat().st_mtime
            entries.append(CacheEntry(kind, path, _size(path), used, not leftover and _in_use(path), leftover))
    return sorted(entries, key=lambda e: -e.last_used)


def clean_cache(
    older_than: float | None = None, everything: bool = False, root: str | os.PathLike | None = None
) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove the entries unused for `older_than` seconds (all with `everything`) and leftovers of killed builds.

    Returns:
        The removed entries, and those left because a process uses them.
    """
    if older_than is None and not everything:
        raise ConfigError("say what to remove: --older-than AGE (30d, 12h...) or --all")
    now = time.time()
    removed, busy = [], []
    for entry in list_cache(root):
        if not (entry.leftover or everything or now - entry.last_used > float(older_than or 0)):
            continue
        handle = None if entry.leftover else try_exclusive(entry.path)
        if handle is None and not entry.leftover:
            busy.append(entry)
            continue
        try:
            discard(entry.path)
        finally:
            if handle is not None:
                handle.close()
        removed.append(entry)
    return removed, busy
