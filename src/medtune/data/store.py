"""The image store: every image decoded once, resized to the working size and kept as uint8 on disk.

A store is a folder ``<cache>/<key>/`` holding ``images.npy``, an ``(N, size, size, channels)`` uint8 array read
through a memory map, and ``meta.json``. The key is a hash of the table rows (paths, archive rows, file sizes and
modification times) and the preprocessing, so a changed file, row or setting gives a new store and an unchanged
one is opened without decoding anything. Memory use does not grow with the number of images: rows are decoded in
bounded chunks straight into the memory-mapped file, by worker processes when ``workers > 0``. A store is built in
a temporary folder and renamed into place, so an interrupted build never leaves a half-written store behind.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from medtune._io import disk_full, is_disk_full, write_json
from medtune._locks import InUse, building
from medtune._paths import cache_dir as default_cache_dir
from medtune._progress import create_progress
from medtune._version import __version__
from medtune.data.decode import Entry, decode_entries, table_entries
from medtune.data.images import is_colour
from medtune.data.masks import prepare_masked
from medtune.data.store_spec import StoreSpec
from medtune.data.table import Table
from medtune.errors import ConfigError, DataError, ImageReadError

#: Bumped whenever the layout or the preprocessing changes meaning, so old stores are not reused.
STORE_FORMAT = 1
IMAGES_FILE = "images.npy"
META_FILE = "meta.json"

_BUILD_PREFIX = ".build-"
_MAX_CHUNK = 64  # image files one worker decodes per task (memory stays at one image either way)
_FILE_COST = 16  # an image file takes about as long to decode as this many rows of an .npz array
_LISTED_FAILURES = 10


class ImageStore:
    """A complete store folder opened read-only.

    Args:
        path: the store folder (``<cache>/<key>``), as `open_store` returns it.

    Attributes:
        path: the store folder.
        key: the hash the folder is named by.
        spec: the preprocessing of the images.
        ids: the table's ``id`` column, in store order.
        images: the ``(N, size, size, channels)`` uint8 memory map (read-only).

    Raises:
        DataError: the folder is not a complete store of this format.
    """

    def __init__(self, path: str | os.PathLike, hold: bool = True) -> None:
        self.path = Path(path)
        # held while open, so `medtune cache clean` leaves the store alone (taken first: a clean in progress ends
        # before the folder is read); `hold=False` only checks a store its own builder holds
        self._use = InUse(self.path) if hold else None
        try:
            meta = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
            self.key: str = meta["key"]
            self.spec = StoreSpec(**meta["spec"])
            self.ids: tuple[str, ...] = tuple(meta["ids"])
            count, fmt = int(meta["count"]), int(meta["format"])
            self.images: np.memmap = np.load(self.path / IMAGES_FILE, mmap_mode="r")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.release()
            raise DataError(f"{self.path} is not a complete image store ({exc}); delete it to rebuild") from None
        expected = (count, self.spec.size, self.spec.size, self.spec.stored_channels)
        found = (fmt, self.images.shape, self.images.dtype, len(self.ids))
        if found != (STORE_FORMAT, expected, np.uint8, count):
            self.release()
            raise DataError(
                f"{self.path} holds format {fmt}, images {self.images.shape} {self.images.dtype}; expected format "
                f"{STORE_FORMAT}, {expected} uint8: delete the folder to rebuild"
            )

    def __len__(self) -> int:
        return len(self.ids)

    def release(self) -> None:
        """Let `medtune cache clean` remove the store (done when the object is collected, or the process ends)."""
        if self._use is not None:
            self._use.release()

    def __getitem__(self, i: int) -> np.ndarray:
        """Image `i` as a read-only ``(H, W, C)`` uint8 view of the file."""
        return np.asarray(self.images[i])

    def __reduce__(self) -> tuple[Callable, tuple[Path]]:
        # Pickled (spawned loader workers) as its folder, so the images are mapped again, never copied.
        return (ImageStore, (self.path,))

    def __repr__(self) -> str:
        return f"ImageStore({len(self)} images, {self.spec}, path={str(self.path)!r})"


def open_store(
    table: Table,
    spec: StoreSpec,
    cache_dir: str | os.PathLike | None = None,
    workers: int = 2,
    progress: bool = True,
) -> ImageStore:
    """Open the store of `table` in `spec`, building it first when it does not exist yet.

    Args:
        table: the images, in the order the store keeps them.
        spec: size, channels and resizing of the stored images.
        cache_dir: folder that holds the stores; the ``stores`` cache of medtune when None.
        workers: processes that decode images during a build; 0 decodes in this process.
        progress: show a progress bar during a build (only on a terminal).

    Returns:
        The opened store; ``store[i]`` is row ``i`` of `table` as ``(size, size, channels)`` uint8.

    Raises:
        DataError: some images cannot be read (all are listed, nothing is kept), or the table is empty.

    >>> from medtune.data.readers import read_table
    >>> store = open_store(read_table("xrays/"), StoreSpec(size=64))  # doctest: +SKIP
    >>> store.images.shape  # doctest: +SKIP
    (1124, 64, 64, 1)
    """
    if len(table) == 0:
        raise DataError(f"{table.source or 'the table'} has no rows, so there is nothing to store")
    if workers < 0:
        raise ConfigError(f"workers must be 0 (build in this process) or more, got {workers}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir("stores")
    root.mkdir(parents=True, exist_ok=True)
    entries = table_entries(table)
    key = _store_key(table, entries, spec)
    final = root / key
    if final.is_dir():
        try:
            return ImageStore(final)
        except DataError:
            pass  # damaged by hand: rebuilt below
    # One process builds a store; another that needs the same one waits for it, then opens it (`medtune._locks`).
    with building(final, f"the image store of {table.source or 'these images'}"):
        if final.is_dir() and not _complete(final):
            discard(final)
        if not final.is_dir():
            _remove_stale_builds(root)
            _build(entries, list(table.frame["id"]), spec, key, final, workers, progress)
    return ImageStore(final)


def _complete(folder: Path) -> bool:
    try:
        ImageStore(folder, hold=False)
    except DataError:
        return False
    return True


def detect_channels(table: Table, sample: int = 32, window: str = "auto", frame: int | str | None = None) -> int:
    """3 when any of the first `sample` rows holds a colour image, else 1.

    Colour files whose three channels are equal (X-rays saved as RGB JPEG) count as gray; unreadable files are
    skipped here and reported by the store build. `window` and `frame` reach the DICOM decoder.
    """
    head = table_entries(table.with_frame(table.frame.iloc[:sample]))
    for _, image in decode_entries(head, window, frame):
        if isinstance(image, np.ndarray) and is_colour(image):
            return 3
    return 1


# --- the key ----------------------------------------------------------------------------------------------------


def _file_state(path: str) -> str:
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _store_key(table: Table, entries: list[Entry], spec: StoreSpec) -> str:
    """sha256 over the store format, the spec and each row's id, source and file size and mtime."""
    digest = hashlib.sha256(json.dumps({"format": STORE_FORMAT, "spec": asdict(spec)}, sort_keys=True).encode())
    archives: dict[str, str] = {}
    for row_id, entry in zip(table.frame["id"], entries, strict=True):
        if entry.array is None:
            state = _file_state(entry.path)
        else:
            state = archives.get(entry.path) or archives.setdefault(entry.path, _file_state(entry.path))
        row = [str(row_id), entry.path, entry.array, entry.index, state]
        if spec.mask != "none":
            row += [entry.mask, entry.mask and _file_state(entry.mask)]
        digest.update(json.dumps(row).encode() + b"\n")
    return digest.hexdigest()


# --- building ---------------------------------------------------------------------------------------------------


def _build_chunk(npy: str, entries: list[Entry], spec: StoreSpec) -> tuple[int, list[tuple[str, str]]]:
    """Decode `entries` into their rows of the store file; return how many were handled and which failed.

    Runs in a worker process. Each image is written as soon as it is decoded; the memory map is opened per
    chunk and closed after, so the pages it touched are released and memory stays at one chunk's worth. The
    writes reach the disk through the page cache; the builder fsyncs the file once at the end.
    """
    images = np.load(npy, mmap_mode="r+")
    failures = []
    try:
        for entry, image in decode_entries(entries, spec.window, spec.frame):
            try:
                if isinstance(image, ImageReadError):
                    raise image
                images[entry.position] = prepare_masked(image, entry.mask, spec)
            except ImageReadError as exc:
                failures.append((exc.path, exc.reason))
            except ValueError as exc:  # an array prepare cannot turn into an image (2 or 4 channels)
                failures.append((entry.describe(), str(exc)))
    finally:
        del images
    return len(entries), failures


def _chunks(entries: list[Entry], workers: int) -> list[list[Entry]]:
    """Split `entries` into contiguous chunks of similar decoding cost, about four per worker.

    An image file costs `_FILE_COST` archive rows (a PNG decode against a slice of an array), so chunks of
    archive rows are longer: each chunk re-reads its archive member from the start up to its last row.
    """
    costs = [1 if e.array is not None else _FILE_COST for e in entries]
    budget = max(1, min(_MAX_CHUNK * _FILE_COST, math.ceil(sum(costs) / (4 * max(1, workers)))))
    chunks: list[list[Entry]] = [[]]
    spent = 0
    for entry, cost in zip(entries, costs, strict=True):
        if chunks[-1] and spent + cost > budget:
            chunks.append([])
            spent = 0
        chunks[-1].append(entry)
        spent += cost
    return chunks


def _run_chunks(
    pool: ProcessPoolExecutor | None, npy: Path, entries: list[Entry], spec: StoreSpec, workers: int
) -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """Yield each chunk's result as it finishes, in this process when `pool` is None; at most two chunks per
    worker are in flight, so the queue holds no more than that."""
    chunks = _chunks(entries, workers)
    if pool is None:
        for chunk in chunks:
            yield _build_chunk(str(npy), chunk, spec)
        return
    pending: set[Future] = set()
    for chunk in chunks:
        if len(pending) >= 2 * workers:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in finished)
        pending.add(pool.submit(_build_chunk, str(npy), chunk, spec))
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from (f.result() for f in finished)


@contextmanager
def _worker_pool(workers: int) -> Iterator[ProcessPoolExecutor | None]:
    """Decoding processes (None for 0), started at once: forked before the progress bar's thread exists, they
    cannot inherit a lock that thread holds (stderr's, say). On leaving, queued chunks are cancelled."""
    if workers == 0:
        yield None
        return
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        pool.submit(int).result()  # with fork, the first task launches every worker
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _build(
    entries: list[Entry], ids: list[str], spec: StoreSpec, key: str, final: Path, workers: int, progress: bool
) -> None:
    """Build the store in a temporary folder beside `final` and rename it into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{os.getpid()}-", dir=final.parent))
    try:
        npy = tmp / IMAGES_FILE
        shape = (len(entries), spec.size, spec.size, spec.stored_channels)
        np.lib.format.open_memmap(npy, mode="w+", dtype=np.uint8, shape=shape).flush()
        _reserve(npy, final)
        failures: list[tuple[str, str]] = []
        with _worker_pool(workers) as pool, create_progress(progress) as bar:
            task = bar.add_task(f"decoding {len(entries)} images to {spec.size} px", total=len(entries))
            for handled, failed in _run_chunks(pool, npy, entries, spec, workers):
                failures.extend(failed)
                bar.advance(task, handled)
        if failures:
            raise DataError(_failure_message(failures, len(entries)))
        with open(npy, "rb+") as f:
            os.fsync(f.fileno())
        write_json(tmp / META_FILE, {
            "format": STORE_FORMAT, "key": key, "spec": asdict(spec), "count": len(entries), "shape": list(shape),
            "medtune": __version__, "ids": [str(i) for i in ids],
        })  # fmt: skip
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            discard(tmp)  # another process finished the same store first: use theirs
    except BaseException:
        discard(tmp)
        raise


def _reserve(npy: Path, final: Path) -> None:
    """Allocate the whole file on disk now: a memory-mapped write into a sparse file on a full disk kills the
    process (SIGBUS) rather than raising; reserved first, a full disk is a `DiskFullError` before any decoding."""
    size = npy.stat().st_size
    with open(npy, "rb+") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, size)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(final, size) from None
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # filesystems without fallocate: write as before
                raise


def _failure_message(failures: list[tuple[str, str]], total: int) -> str:
    lines = [f"  {path}: {reason}" for path, reason in failures[:_LISTED_FAILURES]]
    more = len(failures) - _LISTED_FAILURES
    if more > 0:
        lines.append(f"  ... and {more} more")
    return (
        f"{len(failures)} of {total} images cannot be read, so the image store was not built:\n"
        + "\n".join(lines)
        + "\nremove or replace these files, or run `medtune data summary` to see all problems"
    )


def discard(path: Path) -> None:
    """Remove a cache entry (folder or file), renaming it first to a build name of this process, so a half-removed
    entry never looks complete and, if this process dies meanwhile, is a stale build the next one removes."""
    doomed = path.with_name(f"{_BUILD_PREFIX}{os.getpid()}-discard-{secrets.token_hex(4)}")
    try:
        os.replace(path, doomed)
    except OSError:
        doomed = path
    if doomed.is_dir():
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        doomed.unlink(missing_ok=True)


def is_stale_build(path: Path) -> bool:
    """A temporary build (``.build-<pid>-...``) whose process is gone: a build killed mid-way."""
    pid = path.name[len(_BUILD_PREFIX) :].split("-", 1)[0] if path.name.startswith(_BUILD_PREFIX) else ""
    return pid.isdigit() and not _pid_alive(int(pid))


def _remove_stale_builds(root: Path) -> None:
    """Remove temporary build folders whose process is gone (a build killed mid-way)."""
    for folder in root.glob(f"{_BUILD_PREFIX}*"):
        if is_stale_build(folder):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # os.kill(pid, 0) terminates the process on Windows: never clean up there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
