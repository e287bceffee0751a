"""Reading a file whose length fields may lie: reads never ask for more than the bytes the file has left.

Decoders read an element, chunk or tag by the length its header gives. A corrupt length (``0xFFFF0931`` in a PNG
chunk, ``0xFFFFFFF0`` in a DICOM element) makes Python's buffered ``read(n)`` reserve ``n`` bytes before finding the
file short: gigabytes of address space, a ``MemoryError`` wherever memory is limited (``ulimit -v``, strict
overcommit). Fuzzing the readers found both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class ClampedReader:
    """A binary file whose ``read(n)`` asks for at most the bytes left; everything else is the file's own."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file, self._size = file, size

    def read(self, count: int | None = -1) -> bytes:
        left = max(0, self._size - self._file.tell())
        return self._file.read(left if count is None or count < 0 else min(count, left))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


@contextmanager
def open_clamped(path: str | Path) -> Iterator[ClampedReader]:
    """Open `path` for reading as a `ClampedReader` (closed on exit)."""
    with open(path, "rb") as file:
        yield ClampedReader(file, Path(path).stat().st_size)
