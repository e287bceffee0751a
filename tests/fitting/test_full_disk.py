"""A full disk: an image store, a checkpoint, ``metrics.json`` and an export written onto a small tmpfs that fills up
give a `DiskFullError` naming the folder, leave no half-written file a later run would trust, and the same command
finishes once space is freed (the tmpfs made larger). Needs permission to mount a tmpfs (root, as on CI)."""

from __future__ import annotations

import json
import subprocess

import pytest

import medtune
from medtune._io import write_json
from medtune.config import load_config
from medtune.data.readers import read_table
from medtune.data.store import StoreSpec, open_store
from medtune.deploy.export import export
from medtune.errors import DiskFullError
from tests.conftest import shared_path


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tmpfs of the size asked for, and a function that resizes it."""
    folder = tmp_path / "disk"
    folder.mkdir()

    def resize(size: str, first: bool = False) -> None:
        options = f"size={size}" if first else f"remount,size={size}"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): run as root")

    yield folder, resize
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _leftovers(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and (
        p.suffix in (".tmp", ".ckpt", ".npy", ".onnx") or ".build-" in str(p)))  # fmt: skip


def _fill(path):
    """Write zeros to `path` until the disk is full."""
    with open(path, "wb", buffering=0) as file:
        try:
            while True:
                file.write(b"\0" * (1 << 20))
        except OSError:
            pass
    with open(path, "ab", buffering=0) as file:  # the last few kilobytes too
        try:
            while True:
                file.write(b"\0" * 1024)
        except OSError:
            pass


def test_an_image_store_on_a_full_disk_is_refused_then_built_once_space_is_freed(small_disk):
    folder, resize = small_disk
    resize("2m", first=True)
    table = read_table(shared_path("cxr3"))
    with pytest.raises(DiskFullError, match=r"no space left on the device of .*disk.* needs about 17\.\d MiB"):
        open_store(table, StoreSpec(size=128), cache_dir=folder, workers=0, progress=False)
    assert _leftovers(folder) == []  # nothing half-built where the next run would look
    resize("64m")
    store = open_store(table, StoreSpec(size=128), cache_dir=folder, workers=0, progress=False)
    assert store.images.shape == (len(table), 128, 128, 1)


def test_a_checkpoint_on_a_full_disk_leaves_no_truncated_file_and_the_run_finishes_later(small_disk):
    folder, resize = small_disk
    resize("8m", first=True)  # the run's small files fit, Lite0's checkpoint (13 MB of weights) does not
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    config = load_config(data=data, limit=48, image_size=32, epochs=1, batch_size=16, workers=0, report=False)
    with pytest.raises(DiskFullError, match=r"of .*run/checkpoints .*writing (best|last)\.ckpt; nothing half"):
        medtune.train(config, folder / "run", progress=False)
    assert _leftovers(folder) == []
    resize("256m")
    result = medtune.train(config, folder / "run", progress=False)  # the same command
    assert (folder / "run" / "metrics.json").is_file() and result.metrics["n"] > 0

    before = (folder / "run" / "metrics.json").read_text()
    _fill(folder / "filler")  # full again
    with pytest.raises(DiskFullError, match=r"writing metrics\.json"):
        write_json(folder / "run" / "metrics.json", {"padding": "x" * 400_000})
    assert (folder / "run" / "metrics.json").read_text() == before and json.loads(before)  # the old one, whole
    with pytest.raises(DiskFullError, match=r"writing model\.onnx"):
        export(folder / "run", folder / "run" / "model.onnx")
    assert _leftovers(folder) == ["run/checkpoints/best.ckpt", "run/checkpoints/last.ckpt"]
