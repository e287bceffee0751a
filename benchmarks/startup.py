"""Start-up of a one-image ``medtune predict``: the bare inference network against the same call with Lightning
imported, as every prediction paid before the inference path lost its Lightning import. And the start-up of the
commands that need no network (``medtune keys lr``, ``--help``, shell completion): the command line without torch
against the same command with torch imported first, as every command paid before the CLI stopped importing
``medtune.tasks`` (and with it torch) on start.

    python benchmarks/startup.py [--run RUN] [--image IMAGE] [--rounds 5] [--quick]

Both rows run the real command line in a fresh Python process on the same run and image, alternating, and report
the median wall time of `--rounds` rounds; the second row imports ``lightning`` first and then runs the very same
command (``runpy``), which is what ``medtune predict`` cost when `InferenceModel` lived beside the LightningModule.
Without ``--run``, a tiny PneumoniaMNIST run (32 px, one epoch) is trained first, in a temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, parse_args
from rich.console import Console
from rich.table import Table as RichTable

CHECK = "import sys; print('lightning' in sys.modules)"


def _tiny_run(folder: Path) -> Path:
    data = SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz"
    if not data.is_file():
        raise SystemExit(f"{data} is absent: put ../shared/data beside the repository or pass --run")
    run = folder / "tiny"
    settings = ["limit=96", "image_size=32", "epochs=1", "workers=0", "report=false"]
    subprocess.run([sys.executable, "-m", "medtune", "train", str(data), *settings, "--out", str(run)], check=True,
                   capture_output=True)  # fmt: skip
    return run


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="a run directory (default: train a tiny one)")
    parser.add_argument("--image", type=Path, default=SHARED_DATA / "cxr3" / "normal")
    parser.add_argument("--rounds", type=int, default=5)
    args = parse_args(parser, rounds=1)
    image = args.image if args.image.is_file() else sorted(args.image.glob("*.png"))[0]
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or _tiny_run(Path(tmp))
        predict = ["-m", "medtune", "predict", str(run), str(image), "--out", str(Path(tmp) / "out.json")]
        bare = [sys.executable, *predict]
        argv = repr(["medtune", *predict[2:]])
        with_lightning = [sys.executable, "-c", f"import lightning, runpy, sys; sys.argv = {argv}; "
                          "runpy.run_module('medtune', run_name='__main__')"]  # fmt: skip
        code = f"import medtune; medtune.predict({str(run)!r}, [{str(image)!r}], progress=False); {CHECK}"
        probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        times: dict[str, list[float]] = {"bare": [], "lightning": []}
        _seconds(bare)  # warm the page cache for both
        for _ in range(args.rounds):
            times["bare"].append(_seconds(bare))
            times["lightning"].append(_seconds(with_lightning))
    bare_s, old_s = statistics.median(times["bare"]), statistics.median(times["lightning"])
    table = RichTable(title=f"medtune predict, one image, median of {args.rounds} fresh processes")
    for column in ("path", "seconds", "ratio"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row("bare inference network (now)", f"{bare_s:.2f}", "1.00")
    table.add_row("with Lightning imported (before)", f"{old_s:.2f}", f"{old_s / bare_s:.2f}")
    console = Console()
    console.print(table)
    console.print(f"`medtune.predict` leaves lightning out of sys.modules: {probe.stdout.strip() == 'False'}")
    console.print(_cli_table(args.rounds))


def _cli_table(rounds: int) -> RichTable:
    """``medtune keys lr`` in a fresh process, as it starts now and with torch imported first (as before)."""
    bare = [sys.executable, "-m", "medtune", "keys", "lr"]
    with_torch = [sys.executable, "-c", "import torch, runpy, sys; sys.argv = ['medtune', 'keys', 'lr']; "
                  "runpy.run_module('medtune', run_name='__main__')"]  # fmt: skip
    check = [sys.executable, "-c", "import sys, medtune.cli.main; print('torch' in sys.modules)"]
    without = subprocess.run(check, capture_output=True, text=True).stdout.strip() == "False"
    times: dict[str, list[float]] = {"bare": [], "torch": []}
    _seconds(bare)
    for _ in range(rounds):
        times["bare"].append(_seconds(bare))
        times["torch"].append(_seconds(with_torch))
    bare_s, old_s = statistics.median(times["bare"]), statistics.median(times["torch"])
    table = RichTable(title=f"medtune keys lr (no network needed), median of {rounds} fresh processes; "
                      f"the command line starts without torch: {without}")  # fmt: skip
    for column in ("path", "seconds", "ratio"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row("command line without torch (now)", f"{bare_s:.2f}", "1.00")
    table.add_row("with torch imported (before)", f"{old_s:.2f}", f"{old_s / bare_s:.2f}")
    return table


if __name__ == "__main__":
    main()
