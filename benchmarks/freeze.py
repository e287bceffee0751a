"""A frozen backbone trained two ways, side by side in one run: the head on features computed once (medtune's path
for ``strategy=freeze augment=none``) against the frozen backbone run over every image in every epoch
(``cache_features=false``, what a Keras or fastai loop with a frozen base does).

    python benchmarks/freeze.py [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz] [--epochs 5] [--sizes 64,128]
        [--limit N] [--quick]

Both runs share one configuration, seed and split, in fresh run directories with a fresh cache folder (so the
image store and the features are built here, and their one-off costs are printed). Prints seconds per epoch
(median over epochs, training and validation), the one-off feature pass, total wall time and test AUC and
accuracy with their 95% bootstrap intervals, and the per-epoch speed-up, for each working size: the backbone's
cost grows with the pixels, the head's does not (a cached-feature epoch is mostly Lightning's per-step overhead).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import SHARED_DATA, parse_args
from rich.console import Console
from rich.table import Table as RichTable

DEFAULT_DATA = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz"


def _train(data: Path, out: Path, keys: dict) -> dict:
    from medtune import train
    from medtune.config import load_config

    started = time.perf_counter()
    result = train(load_config(data=str(data), report=False, **keys), out=out, progress=False)
    wall = time.perf_counter() - started
    history = pd.read_csv(out / "history.csv")
    metrics = result.metrics
    return {
        "wall": wall,
        "epoch": statistics.median(history["seconds"]),
        "auc": (metrics["macro"]["auc"], *metrics["intervals"]["auc"]),
        "accuracy": (metrics["accuracy"], *metrics["intervals"]["accuracy"]),
    }


def _feature_pass(data: Path, keys: dict) -> float:
    """Time the one feature pass over every image (the cache the fast path then reads)."""
    from medtune import embed

    started = time.perf_counter()
    embed(data, backbone="tf_efficientnet_lite0", **keys)
    return time.perf_counter() - started


def _compare(data: Path, size: int, epochs: int, tmp: Path) -> tuple[dict, dict, float]:
    """Both paths at one working size: (backbone every epoch, cached features, one-off feature pass seconds)."""
    keys = {"strategy": "freeze", "augment": "none", "epochs": epochs, "image_size": size}
    slow = _train(data, tmp / f"every-epoch-{size}", {**keys, "cache_features": False})
    features = _feature_pass(data, {"image_size": size})
    cached = len(list((tmp / "cache" / "features").iterdir()))
    fast = _train(data, tmp / f"cached-{size}", keys)
    if len(list((tmp / "cache" / "features").iterdir())) != cached:
        raise SystemExit("the fast path computed its own features instead of reusing the cache: a key mismatch")
    return slow, fast, features


def subset_npz(data: Path, count: int, folder: Path) -> Path:
    """The first `count` images of each split of a MedMNIST file, as a file of its own (`embed` reads every image
    of its data, so a smaller run needs smaller data rather than ``limit=``)."""
    with np.load(data) as arrays:
        kept = {key: arrays[key][:count] for key in arrays.files}
    out = folder / f"{data.stem}-{count}.npz"
    np.savez(out, **kept)
    return out


def _fmt(value: tuple[float, float, float]) -> str:
    return f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--limit", type=int, default=0, help="the first N images of each split only (0: all)")
    args = parse_args(parser, epochs=1, sizes="32", limit=32)
    if not args.data.exists():
        raise SystemExit(f"{args.data} is missing: the benchmark needs ../shared/data beside the repository")
    table = RichTable(title=f"{args.data.name}, tf_efficientnet_lite0 frozen, {args.epochs} epochs, "
                      f"{os.cpu_count()} CPU threads", title_justify="left")  # fmt: skip
    for column in ("size", "path", "s / epoch", "speed-up", "one-off feature pass s", "wall s", "test AUC [95% CI]",
                   "test acc [95% CI]"):  # fmt: skip
        table.add_column(column, justify="left" if column == "path" else "right")
    with tempfile.TemporaryDirectory(prefix="medtune-freeze-") as tmp:
        os.environ["MEDTUNE_CACHE"] = str(Path(tmp) / "cache")
        data = subset_npz(args.data, args.limit, Path(tmp)) if args.limit else args.data
        for size in (int(s) for s in args.sizes.split(",")):
            slow, fast, features = _compare(data, size, args.epochs, Path(tmp))
            table.add_row(f"{size} px", "backbone every epoch", f"{slow['epoch']:.2f}", "1x", "-",
                          f"{slow['wall']:.1f}", _fmt(slow["auc"]), _fmt(slow["accuracy"]))  # fmt: skip
            table.add_row("", "cached features (medtune)", f"{fast['epoch']:.2f}",
                          f"{slow['epoch'] / fast['epoch']:.0f}x", f"{features:.1f}", f"{fast['wall']:.1f}",
                          _fmt(fast["auc"]), _fmt(fast["accuracy"]))  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
