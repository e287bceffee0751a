"""The image store on the real datasets in ../shared/data: contents, reuse, rebuilds, failures, memory, crashes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medtune.data.decode import read_entry
from medtune.data.images import prepare
from medtune.data.loader import StoreDataset, create_store_loader
from medtune.data.readers import read_table
from medtune.data.store import ImageStore, StoreSpec, detect_channels, open_store
from medtune.data.table import Table
from medtune.errors import ConfigError, DataError
from tests.conftest import REPO, shared_path


@pytest.fixture(scope="module")
def cxr3() -> Table:
    return read_table(shared_path("cxr3"))


@pytest.fixture(scope="module")
def cxr60(cxr3) -> Table:
    """The first 60 rows: the COVID images, of mixed sources and sizes."""
    return cxr3.with_frame(cxr3.frame.iloc[:60])


@pytest.fixture(scope="module")
def pneumoniamnist() -> Table:
    """140 rows from two arrays of the archive (train and test), so a chunk reads more than one member."""
    table = read_table(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    return table.with_frame(table.frame.iloc[list(range(100)) + list(range(5300, 5340))])


def expected(table: Table, row: int, spec: StoreSpec) -> np.ndarray:
    """Row `row` decoded and prepared directly, the way the store promises to hold it."""
    r = table.frame.iloc[row]
    image = read_entry(r["path"], r["array"], r["index"])
    return prepare(image, spec.size, spec.channels, spec.resize, spec.interpolation)


def copy_images(table: Table, rows: list[int], dest: Path) -> Table:
    """Copy some rows' image files into ``dest/<label>/`` and read that folder as a table."""
    for row in rows:
        r = table.frame.iloc[row]
        (dest / r["label"]).mkdir(parents=True, exist_ok=True)
        shutil.copy2(r["path"], dest / r["label"] / Path(r["path"]).name)
    return read_table(dest)


def store_folders(cache: Path) -> list[str]:
    """The cache's entries and leftovers; the lock files beside them (`medtune._locks`) left out."""
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) if cache.exists() else []


def run_python(code: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_store_holds_the_prepared_images(cxr60, tmp_path):
    spec = StoreSpec(size=32)
    store = open_store(cxr60, spec, cache_dir=tmp_path, workers=0, progress=False)
    assert store.images.shape == (60, 32, 32, 1) and store.images.dtype == np.uint8
    assert len(store) == 60 and store.ids == tuple(cxr60.frame["id"])
    for row in (0, 17, 41, 59):
        np.testing.assert_array_equal(store[row], expected(cxr60, row, spec))
    meta = json.loads((store.path / "meta.json").read_text())
    assert meta["count"] == 60 and meta["key"] == store.key == store.path.name
    assert meta["spec"] == {"size": 32, "channels": 1, "resize": "squash", "interpolation": "bicubic",
                            "window": "auto", "frame": None, "mask": "none", "mask_margin": 0.1}  # fmt: skip
    assert store_folders(tmp_path) == [store.key]  # the temporary build folder is gone


def test_default_cache_is_medtune_cache(cxr60):
    store = open_store(cxr60.with_frame(cxr60.frame.iloc[:4]), StoreSpec(size=16), workers=0, progress=False)
    assert store.path.parent == Path(os.environ["MEDTUNE_CACHE"]) / "stores"


def test_reopening_does_not_rebuild(cxr60, tmp_path):
    first = open_store(cxr60, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    stamp = (first.path / "images.npy").stat().st_mtime_ns
    start = time.perf_counter()
    again = open_store(cxr60, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    assert time.perf_counter() - start < 0.5
    assert again.path == first.path and (again.path / "images.npy").stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(again.images, first.images)


def test_reopening_decodes_nothing(cxr3, tmp_path):
    table = copy_images(cxr3, [200, 201, 700, 701], tmp_path / "data")
    first = open_store(table, StoreSpec(size=32), cache_dir=tmp_path / "cache", workers=0, progress=False)
    stored = np.array(first.images)
    for path in map(Path, table.frame["path"]):  # garbage of the same size and time: only a decode would notice
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = open_store(table, StoreSpec(size=32), cache_dir=tmp_path / "cache", workers=0, progress=False)
    assert again.key == first.key
    np.testing.assert_array_equal(again.images, stored)


def test_changed_spec_or_rows_give_a_new_store(cxr60, tmp_path):
    base = open_store(cxr60, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    bigger = open_store(cxr60, StoreSpec(size=48), cache_dir=tmp_path, workers=0, progress=False)
    fewer = open_store(cxr60.with_frame(cxr60.frame.iloc[1:]), StoreSpec(size=32), cache_dir=tmp_path, workers=0)
    assert len({base.key, bigger.key, fewer.key}) == 3
    assert bigger.images.shape == (60, 48, 48, 1) and fewer.images.shape == (59, 32, 32, 1)
    np.testing.assert_array_equal(fewer[0], base[1])
    assert sorted(store_folders(tmp_path)) == sorted([base.key, bigger.key, fewer.key])


def test_a_touched_file_gives_a_new_store(cxr3, tmp_path):
    table = copy_images(cxr3, [200, 201, 700, 701], tmp_path / "data")
    spec = StoreSpec(size=32)
    first = open_store(table, spec, cache_dir=tmp_path / "cache", workers=0, progress=False)
    path = Path(table.frame["path"][2])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    second = open_store(table, spec, cache_dir=tmp_path / "cache", workers=0, progress=False)
    assert second.key != first.key
    np.testing.assert_array_equal(second.images, first.images)  # same pixels, rebuilt because the file changed


def test_an_epoch_from_the_store_decodes_no_image_file(cxr3, tmp_path):
    table = copy_images(cxr3, list(range(200, 220)) + list(range(700, 720)), tmp_path / "data")
    store = open_store(table, StoreSpec(size=32), cache_dir=tmp_path / "cache", workers=2, progress=False)
    stored = np.array(store.images)
    shutil.rmtree(tmp_path / "data")  # from here on any decode would fail
    assert not any(Path(p).exists() for p in table.frame["path"])
    loader = DataLoader(StoreDataset(store, targets=table.targets()), batch_size=16, shuffle=False)
    images, targets = zip(*loader, strict=True)
    images, targets = torch.cat(images), torch.cat(targets)
    assert images.shape == (40, 1, 32, 32) and images.dtype == torch.uint8
    np.testing.assert_array_equal(images.permute(0, 2, 3, 1).numpy(), stored)
    np.testing.assert_array_equal(targets.numpy(), table.targets())


def test_dataset_serves_chosen_rows_with_transform(cxr60, tmp_path):
    store = open_store(cxr60, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    dataset = StoreDataset(store, rows=[5, 3], targets=np.arange(60) * 10, transform=lambda x: x.float() / 255)
    image, target = dataset[0]
    assert len(dataset) == 2 and target == 50 and image.dtype == torch.float32 and image.shape == (1, 32, 32)
    np.testing.assert_allclose(image[0].numpy(), store[5][..., 0] / 255, rtol=1e-6)
    assert StoreDataset(store)[7][1] == 7  # without targets, the target is the store row
    with pytest.raises(IndexError, match=r"0\.\.59"):
        StoreDataset(store, rows=[60])


@pytest.mark.parametrize("size", [28, 64])
def test_npz_rows(pneumoniamnist, tmp_path, size):
    spec = StoreSpec(size=size)
    store = open_store(pneumoniamnist, spec, cache_dir=tmp_path, workers=2, progress=False)
    assert store.images.shape == (140, size, size, 1)
    for row in (0, 57, 99, 100, 139):
        np.testing.assert_array_equal(store[row], expected(pneumoniamnist, row, spec))
    if size == 28:  # the archive's own size: the pixels pass through unchanged
        frame = pneumoniamnist.frame
        assert set(frame["array"][100:]) == {"test_images"}
        with np.load(frame["path"][0]) as archive:
            raw = archive["test_images"][frame["index"][100:].to_numpy(dtype=int)]
        np.testing.assert_array_equal(store.images[100:, ..., 0], raw)


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_images_are_all_named(cxr3, tmp_path, workers):
    good = cxr3.frame["path"][300]
    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(good, folder / name)
    data = Path(good).read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "noise.png").write_bytes(np.random.default_rng(0).bytes(4096))
    table = read_table(tmp_path / "data")
    with pytest.raises(DataError) as error:
        open_store(table, StoreSpec(size=32), cache_dir=tmp_path / "cache", workers=workers, progress=False)
    message = str(error.value)
    assert "2 of 5 images cannot be read" in message
    assert str(folder / "truncated.png") in message and str(folder / "noise.png") in message
    assert "a.png" not in message
    assert "remove or replace these files" in message and "medtune data summary" in message
    assert store_folders(tmp_path / "cache") == []  # neither a store nor a temporary folder is left


def test_many_failures_are_counted(cxr3, tmp_path):
    folder = tmp_path / "data" / "normal"
    folder.mkdir(parents=True)
    for i in range(13):
        (folder / f"empty{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"13 of 13 images(.|\n)*\.\.\. and 3 more"):
        open_store(read_table(tmp_path / "data"), StoreSpec(size=32), cache_dir=tmp_path / "cache", workers=0)


def test_workers_give_identical_arrays(cxr60, tmp_path):
    spec = StoreSpec(size=32, resize="pad", interpolation="lanczos")
    serial = open_store(cxr60, spec, cache_dir=tmp_path / "serial", workers=0, progress=False)
    parallel = open_store(cxr60, spec, cache_dir=tmp_path / "parallel", workers=2, progress=False)
    assert serial.key == parallel.key
    np.testing.assert_array_equal(serial.images, parallel.images)


def test_colour_stores_and_channel_detection(cxr60, pneumoniamnist, tmp_path):
    tiles = read_table(shared_path("pathology-tiles"), labelled=False)
    assert detect_channels(cxr60) == 1 and detect_channels(pneumoniamnist) == 1 and detect_channels(tiles) == 3
    store = open_store(tiles, StoreSpec(size=48, channels=3, resize="crop"), cache_dir=tmp_path, workers=0)
    assert store.images.shape == (len(tiles), 48, 48, 3)
    np.testing.assert_array_equal(store[4], expected(tiles, 4, store.spec))


def test_spec_is_validated():
    bad_specs = [{"channels": 2}, {"resize": "stretch"}, {"interpolation": "cubic"}]
    for bad in [{"size": 0}, *({"size": 32, **b} for b in bad_specs)]:
        with pytest.raises(ConfigError):
            StoreSpec(**bad)


def test_a_damaged_store_is_rebuilt(cxr60, tmp_path):
    store = open_store(cxr60, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    (store.path / "images.npy").unlink()
    with pytest.raises(DataError, match="not a complete image store"):
        ImageStore(store.path)
    again = open_store(cxr60, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    np.testing.assert_array_equal(again[0], expected(cxr60, 0, store.spec))


PEAK_RSS = """
    import resource, sys
    from medtune.data.readers import read_table
    from medtune.data.store import StoreSpec, open_store
    table = read_table({data!r})
    table = table.with_frame(table.frame.iloc[:{n}])
    open_store(table, StoreSpec(size=64), cache_dir={cache!r}, workers=0, progress=False)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_memory_does_not_grow_with_the_number_of_images(tmp_path):
    data = str(shared_path("cxr3"))
    peaks = {}
    for n in (100, 600):
        peaks[n] = int(run_python(PEAK_RSS.format(data=data, n=n, cache=str(tmp_path / str(n)))))  # KiB on Linux
    # 500 more decoded 256 px images held in memory would add ~32 MB; the store adds a few pages at most.
    assert peaks[600] - peaks[100] < 12 * 1024, peaks


INTERRUPTED = """
    from medtune.data.readers import read_table
    from medtune.data.store import StoreSpec, open_store
    table = read_table({data!r})
    open_store(table.with_frame(table.frame.iloc[:300]), StoreSpec(**{spec!r}), cache_dir={cache!r}, workers=0)
"""


def test_an_interrupted_build_is_cleaned_up_and_built_again(cxr3, tmp_path):
    spec = StoreSpec(size=256, interpolation="lanczos")
    cache = tmp_path / "cache"
    code = INTERRUPTED.format(data=str(shared_path("cxr3")), spec=asdict(spec), cache=str(cache))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any(p.name.startswith(".build-") for p in cache.glob("*")) and proc.poll() is None:
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.005)
    time.sleep(0.1)  # let it write some rows
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = store_folders(cache)
    assert len(left) == 1 and left[0].startswith(f".build-{proc.pid}-"), f"not killed mid-build: {left}"

    table = cxr3.with_frame(cxr3.frame.iloc[:300])
    store = open_store(table, spec, cache_dir=cache, workers=2, progress=False)
    assert store_folders(cache) == [store.key]  # the dead build's folder is gone
    assert store.images.shape == (300, 256, 256, 1)
    for row in (0, 150, 299):
        np.testing.assert_array_equal(store[row], expected(table, row, spec))


def test_batched_loader_reads_whole_batches_channels_last(tmp_path):
    table = read_table(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    table = table.with_frame(table.frame.iloc[:150])
    store = open_store(table, StoreSpec(size=32, channels=3), cache_dir=tmp_path, workers=0, progress=False)
    dataset = StoreDataset(store, rows=np.arange(10, 150), targets=table.targets())
    batches = list(create_store_loader(dataset, batch_size=64))
    assert [len(b[0]) for b in batches] == [64, 64, 12]
    images, targets = batches[0]
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8
    assert images.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(images[5].permute(1, 2, 0).numpy(), store[15])
    assert targets.tolist() == table.targets()[10:74].tolist()
    shuffled = torch.cat([t for _, t in create_store_loader(dataset, 64, shuffle=True, seed=1)])
    again = torch.cat([t for _, t in create_store_loader(dataset, 64, shuffle=True, seed=1)])
    assert shuffled.tolist() == again.tolist() and sorted(shuffled.tolist()) == sorted(
        targets.tolist() + batches[1][1].tolist() + batches[2][1].tolist()
    )
