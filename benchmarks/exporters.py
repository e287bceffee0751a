"""``medtune export`` with each of PyTorch's ONNX exporters, side by side in one run: wall time of the whole export
(graph, checker, parity on the test images, the guard's graph and its parity), and how close each graph is.

    python benchmarks/exporters.py [--run RUN] [--size 64] [--quantize] [--rounds 2] [--no-guard] [--quick]

Without ``--run`` it trains a small PneumoniaMNIST run first (EfficientNet-Lite0, 96 images per split at
``--size`` px, two epochs, with its guard) in a temporary folder. Each exporter writes its own file; the TorchScript
one is timed first and second alternately over ``--rounds`` rounds, and the fastest round of each is shown.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, parse_args
from rich.console import Console
from rich.table import Table as RichTable

DATA = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz"


def small_run(folder: Path, size: int, limit: int = 96, epochs: int = 2, guard: bool = True) -> Path:
    """A PneumoniaMNIST run trained through the CLI, scaled down."""
    out = folder / "run"
    keys = [f"limit={limit}", f"image_size={size}", f"epochs={epochs}", "batch_size=16", "workers=0", "report=false",
            f"guard={str(guard).lower()}"]  # fmt: skip
    subprocess.run([sys.executable, "-m", "medtune", "train", str(DATA), *keys, "--out", str(out)], check=True,
                   capture_output=True)  # fmt: skip
    return out


def timed_export(run: Path, out: Path, exporter: str, quantize: bool) -> tuple[float, dict]:
    from medtune.deploy.export import export

    started = time.perf_counter()
    result = export(run, out, exporter=exporter, quantize="int8" if quantize else None, force=True)
    return time.perf_counter() - started, result.parity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=None, help="a run directory (default: train a small one)")
    parser.add_argument("--size", type=int, default=64, help="working size of the small run")
    parser.add_argument("--quantize", action="store_true", help="also write and judge the int8 model")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both exporters, their order alternating")
    parser.add_argument("--limit", type=int, default=96, help="images per split of the small run")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the small run")
    parser.add_argument("--guard", action=argparse.BooleanOptionalAction, default=True,
                        help="the small run fits its guard (exported too: the slowest graph)")  # fmt: skip
    args = parse_args(parser, size=32, rounds=1, limit=32, epochs=1, guard=False)
    with tempfile.TemporaryDirectory(prefix="medtune-exporters-") as tmp:
        run = args.run or small_run(Path(tmp), args.size, args.limit, args.epochs, args.guard)
        best: dict[str, tuple[float, dict]] = {}
        for round_ in range(args.rounds):
            for exporter in ("torchscript", "dynamo")[:: 1 if round_ % 2 == 0 else -1]:
                seconds, parity = timed_export(run, Path(tmp) / exporter / "model.onnx", exporter, args.quantize)
                if exporter not in best or seconds < best[exporter][0]:
                    best[exporter] = (seconds, parity)
    table = RichTable(title=f"medtune export of {run.name}, best of {args.rounds} round(s)", title_justify="left")
    for column in ("exporter", "seconds", "x dynamo's time", "max prob diff", "guard score diff", "int8 test AUC"):
        table.add_column(column, justify="left" if column == "exporter" else "right")
    for exporter, (seconds, parity) in best.items():
        guard = parity.get("guard", {}).get("max_abs_diff")
        int8 = parity.get("int8", {}).get("int8", {}).get("auc")
        table.add_row(exporter, f"{seconds:.1f}", f"{seconds / best['dynamo'][0]:.2f}", f"{parity['max_abs_diff']:.1e}",
                      "" if guard is None else f"{guard:.1e}", "" if int8 is None else f"{int8:.3f}")  # fmt: skip
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
