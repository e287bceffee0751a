"""Locks on cache entries (image stores, feature caches, predicted masks), shared by every process on a machine.

Each entry ``<folder>/<name>`` has a lock file ``<folder>/.<name>.lock``, locked with ``flock``:

- a process that builds the entry holds it exclusively: a second process that needs the same entry waits (and says
  so) instead of building it again, then opens what the first built;
- a process that has the entry open holds it shared, so ``medtune cache clean`` (which needs it exclusively) never
  removes an entry in use;
- the lock file's modification time is the entry's last use.

The kernel releases ``flock`` locks when their process ends, so a killed build leaves no lock behind.
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def lock_file(entry: str | os.PathLike) -> Path:
    """The lock file of a cache entry: ``.<name>.lock`` beside it."""
    entry = Path(entry)
    return entry.with_name(f".{entry.name}.lock")


def _open(entry: str | os.PathLike) -> IO[bytes]:
    path = lock_file(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "a+b")


#: Lock files this process holds shared, with how many open objects hold each: one open file per entry, so that a
#: process that has an entry open and then rebuilds it converts its own lock instead of waiting for itself.
_HELD: dict[str, list] = {}


@contextmanager
def building(entry: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold `entry` exclusively while it is built; when another process builds it, say so and wait for it."""
    key = str(lock_file(entry))
    held = _HELD.get(key)
    handle = held[0] if held else _open(entry)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process building {what} ({Path(entry).name})", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        os.utime(handle.name)
        yield
    finally:
        if held:
            fcntl.flock(handle, fcntl.LOCK_SH)  # back to this process's shared hold
        else:
            handle.close()


class InUse:
    """A shared hold on a cache entry while it is open (released by `release`, or when the object is collected or
    the process ends). Marks the entry as used now."""

    def __init__(self, entry: str | os.PathLike) -> None:
        self._key: str | None = str(lock_file(entry))
        held = _HELD.get(self._key)
        if held:
            held[1] += 1
        else:
            handle = _open(entry)
            fcntl.flock(handle, fcntl.LOCK_SH)
            _HELD[self._key] = [handle, 1]
        os.utime(self._key)

    def release(self) -> None:
        if self._key is None:
            return
        key, self._key = self._key, None
        held = _HELD.get(key)
        if held:
            held[1] -= 1
            if held[1] <= 0:
                held[0].close()
                _HELD.pop(key, None)

    def __del__(self) -> None:
        self.release()


def try_exclusive(entry: str | os.PathLike) -> IO[bytes] | None:
    """Lock `entry` exclusively without waiting: the open lock (close it to release), or None when a process has
    it open or is building it."""
    handle = _open(entry)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
