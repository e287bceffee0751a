"""Training throughput against this machine's limit, side by side in one run, on the default network and working
size (PneumoniaMNIST, Lite0, 64 px, batch 32, channels-last):

    python benchmarks/throughput.py [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz] [--limit 1500]
        [--steps 40] [--size 64] [--batch 32] [--settings default,passive,busy,passive-busy] [--quick]

(a) the bare training step: forward, backward and AdamW on one batch already in memory, in a loop (the practical
    limit of this machine with these thread settings);
(b) medtune's training epoch: `medtune.train` on ``limit`` images (image store, augmentation, metrics, Lightning),
    timed from the epoch's start to its validation (a callback), with every core pinned (``threads=N``, how
    medtune trained before) and with the default ``threads=0`` (the cores other processes leave);
(c) medtune's validation pass of the same epoch;
(d) the seed-style loop: PNG files decoded and transformed by PIL per item, NCHW, a DataLoader with 2 workers.

Each runs in its own process, under the default OpenMP settings and again with ``OMP_WAIT_POLICY=PASSIVE`` (idle
OpenMP threads sleep instead of spinning), and with a busy neighbour process (another bare-step loop) to show how
each degrades when the cores are shared. Prints images/s, the share of (a) that (b) reaches, and the user and
system CPU seconds per 1000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, parse_args

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz"
SIZE, BATCH = 64, 32


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + children.ru_utime, usage.ru_stime + children.ru_stime


def bare(steps: int, variant: str = "", size: int = SIZE, batch: int = BATCH) -> dict:
    """Forward, backward and AdamW on a fixed in-memory batch: images/s and CPU seconds; `variant` ``bf16`` runs
    the forward pass under CPU bf16 autocast, ``compile`` through `torch.compile`."""
    import contextlib

    import torch

    from medtune.models import create_classifier

    model = create_classifier("tf_efficientnet_lite0", 2, in_chans=1).to(memory_format=torch.channels_last)
    network = torch.compile(model) if variant == "compile" else model
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if variant == "bf16" else contextlib.nullcontext
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    images = torch.randn(batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 2, (batch,))
    model.train()
    for step in range(steps + 3):
        if step == 3:  # warm-up steps left out (compilation among them)
            started, cpu = time.perf_counter(), _cpu()
        with autocast():
            loss = loss_fn(network(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _result(steps * batch, started, cpu)


def _result(images: int, started: float, cpu: tuple[float, float], ended: float | None = None,
            cpu_end: tuple[float, float] | None = None) -> dict:  # fmt: skip
    seconds = (ended or time.perf_counter()) - started
    user, system = (now - before for now, before in zip(cpu_end or _cpu(), cpu, strict=True))
    return {"images_per_s": images / seconds, "user_ms": 1e3 * user / images, "system_ms": 1e3 * system / images}


def epoch(data: Path, limit: int, threads: int = 0, size: int = SIZE, batch: int = BATCH) -> dict:
    """One epoch of `medtune.train` with every default but its length; (b) training and (c) validation (neither
    the guard nor the test split, which come after, is measured: both are left out)."""
    import lightning as L
    import pandas as pd

    from medtune import train
    from medtune.config import load_config

    marks: dict[str, tuple] = {}

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            marks["train"] = (time.perf_counter(), _cpu())

        def on_validation_epoch_start(self, trainer, module) -> None:
            marks["val"] = (time.perf_counter(), _cpu())

        def on_validation_epoch_end(self, trainer, module) -> None:
            marks["end"] = (time.perf_counter(), _cpu())

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(data=str(data), limit=limit, epochs=1, report=False, image_size=size, batch_size=batch,
                             threads=threads, guard=False, read_test=False)  # fmt: skip
        result = train(config, out=Path(tmp) / "run", progress=False, callbacks=[Timer()])
        split = pd.read_csv(result.run.split_file)
    train_rows = int((split["split"] == "train").sum())
    n_train, n_val = train_rows - train_rows % config.batch_size, int((split["split"] == "val").sum())  # drop_last
    return {"train": _result(n_train, *marks["train"], *marks["val"]),
            "val": _result(n_val, *marks["val"], *marks["end"]), "n_train": n_train}  # fmt: skip


def seed_loop(data: Path, steps: int, size: int = SIZE, batch: int = BATCH) -> dict:
    """(d): the notebooks' loop over PNG files (`benchmarks/pneumoniamnist.py`), with its CPU time."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from pneumoniamnist import plain_loop_throughput

    started, cpu = time.perf_counter(), _cpu()
    rate = plain_loop_throughput(data, size, batch, steps)
    spent = _result(int(rate * (time.perf_counter() - started)), started, cpu)
    return {**spent, "images_per_s": rate}


def _measure(args: argparse.Namespace) -> dict:
    if args.mode.startswith("bare"):
        return bare(args.steps, args.mode[5:], args.size, args.batch)
    if args.mode.startswith("epoch"):
        return epoch(args.data, args.limit, int(args.mode[5:] or 0), args.size, args.batch)
    return seed_loop(args.data, args.steps, args.size, args.batch)


def _child(args: argparse.Namespace, mode: str, env: dict[str, str], neighbour: bool) -> dict:
    """Run one measurement in a fresh process (OpenMP reads its settings at start), optionally beside a busy
    neighbour process running the bare step."""
    command = [sys.executable, __file__, "--mode", mode, "--data", str(args.data), "--limit", str(args.limit),
               "--steps", str(args.steps), "--size", str(args.size), "--batch", str(args.batch)]  # fmt: skip
    busy = None
    if neighbour:  # another job using every core (the bare step, default threads)
        busy = subprocess.Popen([*command[:3], "bare", "--steps", "100000"], env={**os.environ, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(8)  # its model built and stepping
    try:
        out = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


#: The settings each path runs under: OpenMP's default or PASSIVE wait policy, alone or beside a busy neighbour.
SETTINGS = {
    "default": ("default OpenMP", {}, False),
    "passive": ("OMP_WAIT_POLICY=PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}, False),
    "busy": ("default, busy neighbour", {}, True),
    "passive-busy": ("PASSIVE, busy neighbour", {"OMP_WAIT_POLICY": "PASSIVE"}, True),
}


def report(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    settings = [SETTINGS[name] for name in args.settings.split(",")]
    cores = os.cpu_count() or 1
    table = RichTable(title=f"training throughput, Lite0 at {args.size} px, batch {args.batch}, {cores} CPU threads",
                      title_justify="left")  # fmt: skip
    for column in ("setting", "path", "images/s", "share of bare step", "user ms / image", "system ms / image"):
        table.add_column(column, justify="left" if column in ("setting", "path") else "right")
    for name, env, neighbour in settings:
        limit = _child(args, "bare", env, neighbour)
        pinned = _child(args, f"epoch{cores}", env, neighbour)  # every core, as medtune trained before threads=0
        rows = [("(a) bare step", limit), (f"(b) medtune epoch, threads={cores}", pinned["train"])]
        if not env:  # medtune's default: the cores other processes leave (`SharedCores`)
            whole = _child(args, "epoch", env, neighbour)
            rows.append(("(b) medtune epoch, default threads=0", whole["train"]))
        rows.append(("(c) medtune validation", pinned["val"]))
        if not neighbour:
            rows.append(("(d) seed-style loop", _child(args, "seed", env, neighbour)))
        for n, (path, row) in enumerate(rows):
            share = f"{row['images_per_s'] / limit['images_per_s']:.0%}" if path[1] in "bd" else ""
            table.add_row(name if n == 0 else "", path, f"{row['images_per_s']:.1f}", share, f"{row['user_ms']:.1f}",
                          f"{row['system_ms']:.1f}")  # fmt: skip
    Console(width=150).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=1500)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--size", type=int, default=SIZE, help="working size in pixels")
    parser.add_argument("--batch", type=int, default=BATCH, help="images per training step")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="which settings to run, comma-separated")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parse_args(parser, limit=64, steps=2, size=32, batch=16, settings="default")
    if args.mode:
        print(json.dumps(_measure(args)))
        return
    report(args)


if __name__ == "__main__":
    main()
