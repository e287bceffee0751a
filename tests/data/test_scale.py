"""Scale: a store of 100,000 images at 64 px (PneumoniaMNIST's images repeated into a larger ``.npz`` in the
test's folder) is built and read with flat memory: peak RSS printed; the process's own (anonymous) memory, sampled
every 50 ms, under 2 GB."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import REPO, shared_path

ROWS = 100_000
BUILD_AND_READ = """
    import resource, threading, time
    from medtune.data.readers import read_table
    from medtune.data.store import StoreSpec, open_store

    def anonymous_mb():  # the process's own memory; mapped store pages are file pages the kernel can drop
        fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(fields["RssAnon"].split()[0]) // 1024

    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.05):
            peak[0] = max(peak[0], anonymous_mb())

    threading.Thread(target=sample, daemon=True).start()
    started = time.monotonic()
    store = open_store(read_table({data!r}), StoreSpec(size=64), cache_dir={cache!r}, workers=2, progress=False)
    built = time.monotonic() - started
    checksum = 0
    for start in range(0, len(store), 4096):  # every row read back, in batches as the loaders do
        checksum = (checksum + int(store.images[start : start + 4096].sum())) % 1_000_003
    done.set()
    peak[0] = max(peak[0], anonymous_mb())
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(len(store), store.images.shape[1], round(built, 1), own, peak[0], workers, checksum)
"""


def test_a_store_of_100k_images_is_built_and_read_with_flat_memory(tmp_path):
    with np.load(shared_path("pneumoniamnist", "pneumoniamnist.npz")) as source:
        images, labels = source["train_images"], source["train_labels"]
    repeats = -(-ROWS // len(images))
    data = tmp_path / "large.npz"
    np.savez(data, train_images=np.concatenate([images] * repeats)[:ROWS],
             train_labels=np.concatenate([labels] * repeats)[:ROWS])  # fmt: skip
    del images, labels
    code = textwrap.dedent(BUILD_AND_READ.format(data=str(data), cache=str(tmp_path / "cache")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr
    rows, size, seconds, own_mb, anonymous_mb, worker_mb, _ = done.stdout.split()
    print(f"100k store: {seconds} s to build; peak RSS {own_mb} MB, of which the process's own memory at most "
          f"{anonymous_mb} MB, the rest the mapped store (decoding workers {worker_mb} MB)")  # fmt: skip
    assert (int(rows), int(size)) == (ROWS, 64)
    # the archive is read a row at a time and the store mapped: the process's own memory stays flat. Peak RSS also
    # counts the mapped store's pages (410 MB here), which the kernel drops under pressure; 2166 MB was once seen
    # on a clean clone under the full suite, so the bound is on the process's own memory.
    assert int(anonymous_mb) < 2048 and int(worker_mb) < 2048
