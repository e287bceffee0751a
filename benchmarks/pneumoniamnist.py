"""Time to accuracy on the README's main job: today's default, the previous one and a notebook loop, in one run.

    python benchmarks/pneumoniamnist.py [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz] [--seed-epochs 4]
        [--keys "KEY=VALUE ..."] [--seed-limit N] [--quick]

1. Runs ``medtune train DATA`` with the default configuration, and with the previous default (12 epochs, the
   best validation epoch kept: ``epochs=12 keep=best``), each in a fresh run directory (a subprocess, timed from
   start to finish: reading, store build, training, test evaluation), and reads their ``history.csv`` and
   ``metrics.json``.
2. Runs a seed-style loop (the notebooks' way: PNG files decoded and transformed by PIL every epoch,
   ``ToTensor`` and ``Normalize``, default memory layout, a DataLoader with 2 workers, AdamW at a constant
   learning rate) on the same network and working size, scoring the validation split after every epoch.
3. Prints validation AUC and accuracy against cumulative training time per epoch for all three, then the whole
   wall time and the test AUC and accuracy with intervals of the two medtune recipes (read once, after the
   recipes were chosen on validation: `benchmarks/recipes.py`) beside MedMNIST v2's published numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from _common import SHARED_DATA, TINY_KEYS, parse_args
from PIL import Image
from rich.console import Console
from rich.table import Table as RichTable
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz"
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


def run_training(data: Path, keys: list[str], out: Path) -> tuple[float, dict, pd.DataFrame]:
    """``medtune train DATA KEYS --out OUT``; returns wall seconds, the test metrics and the history."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtune", "train", str(data), *keys, "report=false", "--out", str(out)],
                   check=True, cwd=REPO, capture_output=True)  # fmt: skip
    seconds = time.perf_counter() - start
    return seconds, json.loads((out / "metrics.json").read_text()), pd.read_csv(out / "history.csv")


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


def _write_pngs(images: np.ndarray, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:05d}.png" for i in range(len(images))]
    for path, image in zip(paths, images, strict=True):
        Image.fromarray(image).save(path)
    return paths


def _png_loader(images: np.ndarray, labels: np.ndarray, folder: Path, size: int, batch_size: int) -> DataLoader:
    """The notebooks' training loader: `images` written as PNG files, read back through PIL every epoch."""
    from medtune.models import resolve_preprocessing

    prep = resolve_preprocessing("tf_efficientnet_lite0", 1)
    dataset = PngDataset(_write_pngs(images, folder), labels.reshape(-1), size, prep.mean[0], prep.std[0])
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=2, drop_last=True)


def _notebook_model() -> tuple[torch.nn.Module, Callable[[torch.Tensor, torch.Tensor], None]]:
    """The notebooks' network (EfficientNet-Lite0, one channel, two classes) and its training step: AdamW at a
    constant 2e-3, cross-entropy with label smoothing 0.1."""
    from medtune.models import create_classifier

    model = create_classifier("tf_efficientnet_lite0", 2, in_chans=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model, step


def seed_loop(data: Path, size: int, batch_size: int, epochs: int, limit: int = 0) -> pd.DataFrame:
    """The notebooks' loop over PNG files (the first `limit` images of each split, 0: all): per epoch, cumulative
    training seconds and validation AUC and accuracy."""
    from sklearn.metrics import roc_auc_score

    from medtune.models import resolve_preprocessing

    with np.load(data) as found:
        arrays = {key: found[key][:limit] if limit else found[key] for key in found.files}
    prep = resolve_preprocessing("tf_efficientnet_lite0", 1)
    val_transform = transforms.Compose([
        transforms.Resize((size, size), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(), transforms.Normalize([prep.mean[0]], [prep.std[0]]),
    ])  # fmt: skip
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        loader = _png_loader(arrays["train_images"], arrays["train_labels"], Path(tmp) / "train", size, batch_size)
        val_images = [val_transform(Image.fromarray(image)) for image in arrays["val_images"]]
        val_x, val_y = torch.stack(val_images), arrays["val_labels"].reshape(-1)
        model, step = _notebook_model()
        rows, elapsed = [], 0.0
        for epoch in range(epochs):
            start = time.perf_counter()
            model.train()
            for x, y in loader:
                step(x, y)
            model.eval()
            with torch.no_grad():
                probs = torch.cat([model(val_x[i : i + 256]).softmax(1) for i in range(0, len(val_x), 256)]).numpy()
            elapsed += time.perf_counter() - start
            rows.append({"epoch": epoch, "seconds": elapsed, "val_auc": roc_auc_score(val_y, probs[:, 1]),
                         "val_acc": float((probs.argmax(1) == val_y).mean())})  # fmt: skip
        return pd.DataFrame(rows)


def plain_loop_throughput(data: Path, size: int, batch_size: int, steps: int) -> float:
    """Training images per second of the notebooks' loop (PNG files through PIL every step, NCHW, AdamW), over
    `steps` steps after one warm-up step (`benchmarks/throughput.py`'s seed-style row)."""
    arrays = np.load(data)
    count = batch_size * (steps + 1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        loader = _png_loader(arrays["train_images"][:count], arrays["train_labels"][:count], Path(tmp), size,
                             batch_size)  # fmt: skip
        model, step = _notebook_model()
        model.train()
        started = time.perf_counter()
        for index, (x, y) in enumerate(loader):
            if index == 1:  # after the warm-up step (first-call allocations, worker start)
                started = time.perf_counter()
            step(x, y)
        return batch_size * steps / (time.perf_counter() - started)


#: The recipes compared: today's defaults and the previous default (before issue 18).
RECIPES = {"medtune default": [], "previous default (epochs=12 keep=best)": ["epochs=12", "keep=best"]}


def _interval(metrics: dict, key: str, value: float) -> str:
    low, high = metrics["intervals"][key]
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed-epochs", type=int, default=4, help="epochs of the seed-style loop")
    parser.add_argument("--seed-limit", type=int, default=0, help="images per split of the seed-style loop (0: all)")
    parser.add_argument("--keys", default="", help="KEY=VALUE settings added to both recipes (theirs are overridden)")
    args = parse_args(parser, seed_epochs=1, seed_limit=32, keys=TINY_KEYS)
    if not args.data.is_file():
        sys.exit(f"{args.data} is absent: put ../shared/data beside the repository, or pass --data FILE")
    console = Console(width=140)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, keys) in enumerate(RECIPES.items()):
            runs[name] = run_training(args.data, [*keys, *args.keys.split()], Path(tmp) / f"run{i}")
            config = yaml.safe_load((Path(tmp) / f"run{i}" / "config.yaml").read_text())
            kept = json.loads((Path(tmp) / f"run{i}" / "kept.json").read_text())["epoch"]
            runs[name] = (*runs[name], kept, config)
    size, batch = runs["medtune default"][4]["image_size"], runs["medtune default"][4]["batch_size"]
    seed = seed_loop(args.data, size, batch, args.seed_epochs, args.seed_limit)
    curves = RichTable(title="Validation AUC and accuracy against cumulative training seconds (train + validation "
                       "per epoch; * the kept epoch)", title_justify="left")  # fmt: skip
    for column in ("loop", "epoch", "seconds", "val AUC", "val acc"):
        curves.add_column(column, justify="left" if column == "loop" else "right")
    for name, (_, _, history, kept, _) in runs.items():
        for row, elapsed in zip(history.to_dict("records"), history["seconds"].cumsum(), strict=True):
            mark = "*" if row["epoch"] == kept else ""
            curves.add_row(name, f"{row['epoch']}{mark}", f"{elapsed:.0f}", f"{row['val_auc']:.4f}",
                           f"{row['val_acc']:.3f}")  # fmt: skip
    for row in seed.to_dict("records"):
        curves.add_row("seed-style loop (PNG + PIL, NCHW)", str(row["epoch"] + 1), f"{row['seconds']:.0f}",
                       f"{row['val_auc']:.4f}", f"{row['val_acc']:.3f}")  # fmt: skip
    console.print(curves)
    tested = runs["medtune default"][1]["n"]
    table = RichTable(
        title=f"PneumoniaMNIST test split ({tested} images), {os.cpu_count()} CPU cores", title_justify="left"
    )
    for column in ("model", "epochs", "wall time", "time ratio", "test AUC [95% CI]", "test accuracy [95% CI]"):
        table.add_column(column, justify="left" if column == "model" else "right")
    previous = runs["previous default (epochs=12 keep=best)"][0]
    for name, (seconds, metrics, history, _, config) in runs.items():
        table.add_row(f"{name} ({config['backbone']}, {config['image_size']} px)", str(len(history)),
                      f"{seconds:.0f} s", f"{seconds / previous:.2f}x",
                      _interval(metrics, "auc", metrics["macro"]["auc"]),
                      _interval(metrics, "accuracy", metrics["accuracy"]))  # fmt: skip
    for model, (p_auc, p_acc) in PUBLISHED.items():
        table.add_row(f"MedMNIST v2: {model}", "", "", "", f"{p_auc:.3f}", f"{p_acc:.3f}")
    console.print(table)


if __name__ == "__main__":
    main()
