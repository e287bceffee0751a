"""Where medtune keeps its caches (image stores, converted weights)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(sub: str = "") -> Path:
    """Return medtune's cache folder (``$MEDTUNE_CACHE``, else ``$XDG_CACHE_HOME/medtune``, else
    ``~/.cache/medtune``), with `sub` appended, created if missing."""
    root = os.environ.get("MEDTUNE_CACHE")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "medtune"
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path
