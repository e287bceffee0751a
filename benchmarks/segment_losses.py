"""The course portfolio's table, as two commands: six segmentation losses (and U-Net against FPN) on lungseg.

    python benchmarks/segment_losses.py [--size 96] [--epochs 6] [--keys "KEY=VALUE ..."] [--losses dice,bce,...]
        [--workdir DIR] [--quick]

Queues two sweeps through the real command line, `medtune sweep segment IMAGES masks=MASKS loss=dice,jaccard,...`
and `... arch=unet,fpn`, runs them with one `medtune queue run` worker (one experiment after the other, so their
times compare), and prints the leaderboard: test Dice, IoU and HD95 with 95% bootstrap intervals over the test
images, the best validation Dice and the training minutes. Every run has the same split (seed 0), size, epochs,
optimizer and schedule; only the loss (or the architecture) differs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from _common import SHARED_DATA, medtune, parse_args
from rich.console import Console
from rich.table import Table as RichTable

LUNGSEG = SHARED_DATA / "lungseg"
LOSSES = ("dice", "jaccard", "bce", "focal", "lovasz", "tversky")


def run_sweeps(
    work: Path, size: int, epochs: int, keys: tuple[str, ...] = (), losses: str = ",".join(LOSSES)
) -> pd.DataFrame:
    storage = f"sqlite:///{work / 'queue.db'}"
    common = (LUNGSEG / "images", f"masks={LUNGSEG / 'masks'}", *keys, f"image_size={size}", f"epochs={epochs}",
              "report=false", "--storage", storage)  # fmt: skip
    medtune("sweep", "segment", *common, f"loss={losses}", "--study", "losses", cwd=work)
    medtune("sweep", "segment", *common, "loss=dice+bce", "arch=unet,fpn", "--study", "arch", cwd=work)
    medtune("queue", "run", "--storage", storage, cwd=work)
    csv = work / "board.csv"
    medtune("leaderboard", "--storage", storage, "--format", "csv", "--out", csv, "--no-speed", cwd=work)
    return pd.read_csv(csv)


def interval(row: pd.Series, name: str, digits: int = 3) -> str:
    value, low, high = row[f"test_{name}"], row[f"test_{name}_low"], row[f"test_{name}_high"]
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def print_table(board: pd.DataFrame, size: int, epochs: int) -> None:
    table = RichTable(title=f"lungseg, {size} px, {epochs} epochs, tf_efficientnet_lite0 encoder: test split "
                      "(mean [95% bootstrap interval])", title_justify="left")  # fmt: skip
    for column in ("study", "arch", "loss", "test Dice", "test IoU", "test HD95 (px)", "best val Dice", "minutes"):
        table.add_column(column, justify="left" if column in ("study", "arch", "loss") else "right")
    for _, row in board.sort_values(["study", "val_dice"], ascending=[False, False]).iterrows():
        arch = row.get("arch") if isinstance(row.get("arch"), str) else "unet"
        table.add_row(row["study"], arch, str(row.get("loss", "dice+bce")), interval(row, "dice"),
                      interval(row, "iou"), interval(row, "hd95", 2), f"{row['val_dice']:.4f}",
                      f"{row['wall_min']:.1f}")  # fmt: skip
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96, help="working size in pixels (a multiple of 32)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--keys", default="", help="KEY=VALUE settings added to every run")
    parser.add_argument("--losses", default=",".join(LOSSES), help="the losses of the first sweep")
    args = parse_args(parser, size=32, epochs=1, keys="limit=8 batch_size=4 workers=0")
    if not (LUNGSEG / "images").is_dir():
        raise SystemExit(f"{LUNGSEG} is absent: put ../shared/data beside the repository")
    with tempfile.TemporaryDirectory(prefix="medtune-seglosses-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        board = run_sweeps(work, args.size, args.epochs, tuple(args.keys.split()), args.losses)
        print_table(board, args.size, args.epochs)


if __name__ == "__main__":
    main()
