"""The README's main job, end to end, beside the published PneumoniaMNIST numbers and a plain training loop.

    python benchmarks/pneumoniamnist.py [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz] [--skip-train]

1. Runs ``medtune train DATA`` with the default configuration in a fresh run directory (a subprocess, timed from
   start to finish: reading, store build, training, test evaluation) and reads its ``metrics.json``.
2. Prints test AUC and accuracy beside MedMNIST v2's published test numbers (Yang et al. 2023, Table 3).
3. Measures training throughput in this process, side by side, with the same network, optimizer, batch size and
   working size: medtune's loop (image store, uint8 batches, per-image augmentation, channels-last, Lightning)
   against the notebooks' loop (PNG files decoded and transformed by PIL every epoch, ``ToTensor`` and
   ``Normalize``, default memory layout, a DataLoader with 2 workers, a plain PyTorch loop).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table as RichTable
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
#: MedMNIST v2 (Yang et al., Scientific Data 2023), PneumoniaMNIST test AUC / ACC.
PUBLISHED = {
    "ResNet-18 (28)": (0.944, 0.854),
    "ResNet-18 (224)": (0.956, 0.864),
    "ResNet-50 (28)": (0.948, 0.854),
    "ResNet-50 (224)": (0.962, 0.884),
    "auto-sklearn": (0.942, 0.855),
    "AutoKeras": (0.947, 0.878),
    "Google AutoML Vision": (0.991, 0.946),
}


def run_default_training(data: Path, out: Path) -> tuple[float, dict, list[dict]]:
    """``medtune train DATA --out OUT`` with every default; returns wall seconds, metrics and history rows."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtune", "train", str(data), "--out", str(out)], check=True, cwd=REPO)
    seconds = time.perf_counter() - start
    metrics = json.loads((out / "metrics.json").read_text())
    import pandas as pd

    return seconds, metrics, pd.read_csv(out / "history.csv").to_dict("records")


class PngDataset(Dataset):
    """The notebook way: open the PNG, convert, resize and augment with PIL, ToTensor, Normalize, every epoch."""

    def __init__(self, paths: list[Path], targets: np.ndarray, size: int, mean: float, std: float) -> None:
        self.paths, self.targets = paths, targets
        self.transform = transforms.Compose([
            transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1)),
            transforms.RandomRotation(10),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(brightness=0.1, contrast=0.1),
            transforms.ToTensor(),
            transforms.Normalize([mean], [std]),
        ])  # fmt: skip

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("L")), int(self.targets[i])


def plain_loop_throughput(data: Path, size: int, batch_size: int, steps: int) -> float:
    """Training images per second of the notebooks' loop over PNG files (first batch excluded)."""
    from medtune.models import create_classifier, resolve_preprocessing

    arrays = np.load(data)
    images, targets = arrays["train_images"][: batch_size * (steps + 1)], arrays["train_labels"].reshape(-1)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, image in enumerate(images):
            paths.append(Path(tmp) / f"{i:05d}.png")
            Image.fromarray(image).save(paths[-1])
        prep = resolve_preprocessing("tf_efficientnet_lite0", 1)
        dataset = PngDataset(paths, targets, size, prep.mean[0], prep.std[0])
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=2, drop_last=True)
        model = create_classifier("tf_efficientnet_lite0", 2, in_chans=1)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        model.train()
        start, seen = None, 0
        for step, (x, y) in enumerate(loader):
            if step == 1:
                start, seen = time.perf_counter(), 0
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(x)
        return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a temporary folder)")
    parser.add_argument("--plain-steps", type=int, default=40, help="batches timed in the plain loop")
    args = parser.parse_args()
    if not args.data.is_file():
        sys.exit(f"{args.data} is absent: put ../shared/data beside the repository, or pass --data FILE")
    console = Console(width=120)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        seconds, metrics, history = run_default_training(args.data, out)
        config = json.loads(json.dumps(__import__("yaml").safe_load((out / "config.yaml").read_text())))
    train_images = 4708
    epoch_seconds = [row["seconds"] for row in history]
    ours = train_images / float(np.median(epoch_seconds))
    plain = plain_loop_throughput(args.data, config["image_size"], config["batch_size"], args.plain_steps)

    auc, acc = metrics["macro"]["auc"], metrics["accuracy"]
    (auc_lo, auc_hi), (acc_lo, acc_hi) = metrics["intervals"]["auc"], metrics["intervals"]["accuracy"]
    table = RichTable(title=f"PneumoniaMNIST test split (624 images), {os.cpu_count()} CPU cores", title_justify="left")
    for column in ("model", "test AUC", "test accuracy", "wall time"):
        table.add_column(column, justify="left" if column == "model" else "right")
    name = f"medtune defaults ({config['backbone']}, {config['image_size']} px, {len(history)} epochs)"
    table.add_row(name, f"{auc:.3f} [{auc_lo:.3f}, {auc_hi:.3f}]", f"{acc:.3f} [{acc_lo:.3f}, {acc_hi:.3f}]",
                  f"{seconds:.0f} s")  # fmt: skip
    for model, (p_auc, p_acc) in PUBLISHED.items():
        table.add_row(f"MedMNIST v2: {model}", f"{p_auc:.3f}", f"{p_acc:.3f}", "")
    console.print(table)
    speed = RichTable(title="Training throughput, same network and batch size (images/s)", title_justify="left")
    for column in ("loop", "images/s", "ratio"):
        speed.add_column(column, justify="left" if column == "loop" else "right")
    speed.add_row("plain loop: PNG + PIL transforms every epoch, NCHW, 2 workers", f"{plain:.0f}", "1.00x")
    speed.add_row("medtune: image store, uint8 batches, channels-last (epoch incl. validation)", f"{ours:.0f}",
                  f"{ours / plain:.2f}x")  # fmt: skip
    console.print(speed)


if __name__ == "__main__":
    main()
