"""CPU inference throughput, side by side in one run: medtune's PyTorch predict path, onnxruntime fp32 and
onnxruntime int8 on the graph ``medtune export`` writes.

    python benchmarks/inference.py [--sizes 224 64] [--batches 1 64] [--seconds 1.0] [--quick]

The network is EfficientNet-Lite0 with its packaged ImageNet weights, one input channel and a two-class head; the
int8 model is calibrated on real chest X-rays (``../shared/data/cxr3``) exactly as ``--quantize int8`` does. Every
row feeds the same uint8 images and reports the best of three rounds of at least ``--seconds``. FLOPs are counted
with ``torch.utils.flop_counter`` (a multiply-add is 2 FLOPs); the machine's peak is estimated as cores x clock
(``cpu MHz`` of /proc/cpuinfo) x FLOPs per cycle per core: 64 with AVX-512 (two 16-lane fp32 FMA units), 32 with
AVX2 (two 8-lane FMA units). That peak is fp32; the int8 rows' share of it only compares with the others.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import SHARED_DATA, parse_args
from rich.console import Console
from rich.table import Table as RichTable
from torch.utils.flop_counter import FlopCounterMode

from medtune.data.images import prepare, read_image
from medtune.deploy.export import export_graph
from medtune.deploy.quantize import quantize_file
from medtune.models import create_classifier, resolve_preprocessing
from medtune.models.inference import InferenceModel
from medtune.runs.exported import INPUT_NAME, OUTPUT_NAME, create_session

BACKBONE = "tf_efficientnet_lite0"


def _peak_gflops() -> tuple[float, str]:
    text = Path("/proc/cpuinfo").read_text()
    mhz = float(next(line.split(":")[1] for line in text.splitlines() if line.startswith("cpu MHz")))
    avx512 = "avx512f" in text
    per_cycle = 64 if avx512 else 32
    cores = os.cpu_count() or 1
    flags = "AVX-512" if avx512 else "AVX2" if "avx2" in text else "no AVX2"
    return cores * mhz / 1000 * per_cycle, f"{cores} cores, {mhz:.0f} MHz, {flags}, {per_cycle} FLOP/cycle/core"


def _images(size: int, count: int) -> np.ndarray:
    paths = sorted((SHARED_DATA / "cxr3").rglob("*.png"))[:count]
    if not paths:
        raise SystemExit("../shared/data/cxr3 is absent: put ../shared/data beside the repository")
    return np.stack([prepare(read_image(p), size, 1) for p in paths])


def _rate(run, batch: np.ndarray, seconds: float) -> float:
    run(batch)  # warm-up
    best = 0.0
    for _ in range(3):
        done, started = 0, time.perf_counter()
        while done < 2 * len(batch) or time.perf_counter() - started < seconds:
            run(batch)
            done += len(batch)
        best = max(best, done / (time.perf_counter() - started))
    return best


def _models(size: int, calibration: np.ndarray, folder: Path) -> dict:
    network = create_classifier(BACKBONE, 2, in_chans=1).eval()
    preprocessing = resolve_preprocessing(BACKBONE, 1)
    torch_model = InferenceModel(network, preprocessing, channels_last=True).eval()
    fp32, int8 = folder / f"{size}.onnx", folder / f"{size}.int8.onnx"
    graph = export_graph(InferenceModel(network, preprocessing, channels_last=False), size, 1)
    fp32.write_bytes(graph.SerializeToString())
    quantize_file(fp32, int8, calibration)  # what `medtune export --quantize int8` runs
    sessions = {name: create_session(path) for name, path in (("fp32", fp32), ("int8", int8))}

    def pytorch(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch_model(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()

    runners = {"PyTorch (predict path)": pytorch}
    for name, session in sessions.items():
        runners[f"onnxruntime {name}"] = lambda b, s=session: s.run([OUTPUT_NAME], {INPUT_NAME: b})[0]
    with FlopCounterMode(display=False) as counter:
        torch_model(torch.zeros(1, 1, size, size, dtype=torch.uint8))
    return {"runners": runners, "flops": counter.get_total_flops()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parse_args(parser, sizes=[32], batches=[1, 8], seconds=0.05)
    peak, machine = _peak_gflops()
    table = RichTable(title=f"{BACKBONE}, 1 channel, images per second ({machine}; fp32 peak {peak:.0f} GFLOP/s)")
    for column in ("size", "batch", "engine", "images/s", "x PyTorch", "GFLOP/s", "share of peak"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            images = _images(size, max([*args.batches, 64]))
            models = _models(size, images[:64], Path(tmp))
            for batch in args.batches:
                base = None
                for name, run in models["runners"].items():
                    rate = _rate(run, np.ascontiguousarray(images[:batch]), args.seconds)
                    base = base or rate
                    gflops = rate * models["flops"] / 1e9
                    table.add_row(str(size), str(batch), name, f"{rate:.0f}", f"{rate / base:.2f}", f"{gflops:.1f}",
                                  f"{gflops / peak:.1%}")  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
