"""One epoch of images: decoding PNGs every epoch (the notebook way) against reading the image store.

    python benchmarks/store.py [--data ../shared/data/cxr3] [--size 224] [--batch-size 64] [--limit N] [--quick]

The naive pipeline is the notebooks' torch Dataset: PIL opens each file, converts it, resizes it (bicubic) and
``ToTensor`` makes it a float tensor, through a DataLoader with 0 and with 2 workers. The store pipeline reads the
same images from `medtune.data.store` (built once beforehand; its build time is reported on its own) through
`StoreDataset` and a DataLoader with the same batch size, converting each batch to float the same way
(``.float().div(255)``, what ``ToTensor`` does per image). A last row shows the store's uint8 batches without the
conversion, to tell the loader's cost from the conversion's.

The main process runs torch with one intra-op thread (``--threads``), as DataLoader workers do: on a busy
2-core machine two OpenMP threads make every small tensor op wait on a barrier (``ToTensor`` per image, the
``torch.stack`` of each batch), which slows both pipelines by up to 20x and says nothing about decoding.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from _common import SHARED_DATA, parse_args
from PIL import Image
from rich.console import Console
from rich.table import Table as RichTable
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from medtune.data.loader import StoreDataset, create_store_loader
from medtune.data.readers import read_table
from medtune.data.store import StoreSpec, open_store


class NaiveDataset(Dataset):
    """What the notebooks wrote: decode, convert and resize every image on every epoch."""

    def __init__(self, paths: list[str], targets: np.ndarray, size: int, channels: int) -> None:
        self.paths, self.targets = paths, targets
        self.mode = "RGB" if channels == 3 else "L"
        self.transform = transforms.Compose(
            [transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC), transforms.ToTensor()]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert(self.mode)), int(self.targets[i])


def epoch(loader: DataLoader, to_float: bool) -> tuple[float, torch.Tensor]:
    """Seconds for one pass over `loader` (worker start-up included), and its first batch.

    uint8 batches are converted into one float buffer reused across batches, as a training loop does: a fresh
    38 MB float batch each time (RGB, 224 px, batch 64) costs more in page faults than the read itself.
    """
    start = time.perf_counter()
    first, buffer = None, None
    for images, _ in loader:
        if to_float:
            if buffer is None or buffer.shape[0] < images.shape[0]:
                buffer = torch.empty_like(images, dtype=torch.float32)  # keeps channels-last
            images = buffer[: images.shape[0]].copy_(images).div_(255)
        if first is None:
            first = images.clone()
    return time.perf_counter() - start, first


def best_epoch(loader: DataLoader, to_float: bool, repeats: int) -> tuple[float, torch.Tensor]:
    runs = [epoch(loader, to_float) for _ in range(repeats)]
    return min(r[0] for r in runs), runs[0][1]


def measure(table, args: argparse.Namespace, channels: int, cache: str) -> tuple[list[tuple[str, float]], float, float]:
    """Rows of (pipeline, seconds per epoch), the store build time, and the two first batches' difference."""
    targets = table.targets()
    start = time.perf_counter()
    spec = StoreSpec(size=args.size, channels=channels, interpolation="bicubic")
    store = open_store(table, spec, cache_dir=cache, workers=args.build_workers, progress=False)
    build = time.perf_counter() - start
    naive = NaiveDataset(list(table.frame["path"]), targets, args.size, channels)
    rows = []
    for workers in (0, 2):
        loader = DataLoader(naive, batch_size=args.batch_size, num_workers=workers)
        seconds, naive_first = best_epoch(loader, to_float=False, repeats=args.repeats)
        rows.append((f"naive: PIL decode + resize + ToTensor, {workers} loader workers", seconds))
    dataset = StoreDataset(store, targets=targets)
    loader = DataLoader(dataset, batch_size=args.batch_size, num_workers=0)
    seconds, _ = best_epoch(loader, to_float=True, repeats=args.repeats)
    rows.append(("store: item by item (StoreDataset + collate) + float", seconds))
    loader = create_store_loader(dataset, batch_size=args.batch_size)
    seconds, store_first = best_epoch(loader, to_float=True, repeats=args.repeats)
    rows.append(("store: whole batches (create_store_loader) + float", seconds))
    return rows, build, (naive_first - store_first).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(SHARED_DATA / "cxr3"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--channels",
        type=int,
        nargs="+",
        default=[1, 3],
        choices=(1, 3),
        help="1: gray, as medtune stores X-rays; 3: RGB, as ImageNet notebooks load them",
    )
    parser.add_argument("--build-workers", type=int, default=2, help="processes that build the store")
    parser.add_argument("--repeats", type=int, default=2, help="epochs per pipeline; the fastest is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads in the main process")
    parser.add_argument("--cache", default=None, help="store folder to reuse (default: a fresh temporary one)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many images, a seeded sample (0: all)")
    args = parse_args(parser, size=32, batch_size=16, channels=[1], build_workers=1, repeats=1, limit=48)
    console = Console(width=140)
    torch.set_num_threads(args.threads)

    table = read_table(args.data)
    if 0 < args.limit < len(table):
        table = table.with_frame(table.frame.sample(n=args.limit, random_state=0).sort_index())
    n = len(table)
    out = RichTable(title=f"one epoch of {n} images of {args.data} at {args.size} px, batch {args.batch_size}, "
                          f"{os.cpu_count()} CPU cores, best of {args.repeats}")  # fmt: skip
    for column in ("channels", "pipeline", "s / epoch", "images / s", "store speed-up"):
        out.add_column(column, justify="left" if column == "pipeline" else "right")
    notes = []
    with tempfile.TemporaryDirectory(prefix="medtune-bench-") as tmp:
        for channels in args.channels:
            rows, build, difference = measure(table, args, channels, args.cache or tmp)
            store_seconds = rows[-1][1]
            for name, seconds in rows:
                out.add_row(
                    str(channels), name, f"{seconds:.3f}", f"{n / seconds:,.0f}", f"{seconds / store_seconds:.1f}x"
                )
            notes.append(
                f"{channels} channel(s): store built once in {build:.2f} s ({args.build_workers} workers, "
                f"{n / build:,.0f} images/s); largest difference between first batches {difference:.2e}"
            )
    console.print(out)
    for note in notes:
        console.print(note)


if __name__ == "__main__":
    main()
