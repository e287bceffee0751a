"""medtune's default recipe on every MedMNIST file in ../shared/data, beside the published numbers, in one run.

    python benchmarks/medmnist.py [--limits 300,600] [--ensemble 2] [KEY=VALUE ...]

For each ``*/<name>mnist.npz`` under ../shared/data: ``medtune train FILE`` with the default configuration (plus
any KEY=VALUE given, to try a recipe) in a fresh run directory, timed from start to finish in a subprocess, then
the same on small subsets (``train_limit=``: a few hundred training images, validation and test whole). Prints
wall time, test AUC and accuracy with 95% bootstrap intervals, and the published MedMNIST v2 rows (Yang et al.,
Scientific Data 2023, Table 3) with the goals of issue 18: Google AutoML Vision on the full sets, ResNet-18 (28)
for the subsets. ``--ensemble N`` trains N seeds of each and adds the test scores of ``medtune ensemble`` of them
(wall time: the N trainings and the ensemble step).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: MedMNIST v2 test AUC / ACC (Yang et al. 2023, Table 3).
PUBLISHED = {
    "pneumoniamnist": {"ResNet-18 (28)": (0.944, 0.854), "ResNet-50 (224)": (0.962, 0.884),
                       "Google AutoML Vision": (0.991, 0.946)},
    "retinamnist": {"ResNet-18 (28)": (0.717, 0.524), "ResNet-50 (28)": (0.726, 0.528),
                    "Google AutoML Vision": (0.750, 0.531)},
}  # fmt: skip


def run(data: Path, keys: list[str], out: Path) -> dict:
    """``medtune train DATA KEYS --out OUT`` in a subprocess: wall seconds and the test metrics."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtune", "train", str(data), *keys, "report=false", "--out", str(out)],
                   check=True, cwd=REPO, capture_output=True)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": time.perf_counter() - started, "auc": (metrics["macro"]["auc"], *metrics["intervals"]["auc"]),
            "accuracy": (metrics["accuracy"], *metrics["intervals"]["accuracy"]), "n": metrics["n"]}  # fmt: skip


def run_ensemble(members: list[Path], out: Path) -> dict:
    """``medtune ensemble MEMBERS --out OUT``: wall seconds (the ensemble step alone) and the test metrics."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtune", "ensemble", *map(str, members), "--no-report", "--out", str(out)],
                   check=True, cwd=REPO, capture_output=True)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    return {"wall": time.perf_counter() - started, "auc": (metrics["macro"]["auc"], *metrics["intervals"]["auc"]),
            "accuracy": (metrics["accuracy"], *metrics["intervals"]["accuracy"]), "n": metrics["n"]}  # fmt: skip


def _fmt(value: tuple[float, float, float]) -> str:
    return f"{value[0]:.3f} [{value[1]:.3f}, {value[2]:.3f}]"


def _goal(goal: tuple[float, float] | None, name: str, found: dict) -> str:
    if not goal:
        return ""
    gaps = (found["auc"][0] - goal[0], found["accuracy"][0] - goal[1])
    distance = "met" if min(gaps) >= 0 else f"AUC {gaps[0]:+.3f}, acc {gaps[1]:+.3f}"
    return f"{name} {goal[0]:.3f}/{goal[1]:.3f}: {distance}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limits", default="300,600", help="training subset sizes to run too; empty for none")
    parser.add_argument("--ensemble", type=int, default=1, help="also train this many seeds and score their ensemble")
    parser.add_argument("keys", nargs="*", help="KEY=VALUE settings added to the default recipe")
    args = parser.parse_args()
    files = sorted(DATA.glob("*mnist/*mnist.npz"))
    if not files:
        raise SystemExit(f"no MedMNIST files under {DATA}: the benchmark needs ../shared/data beside the repository")
    table = RichTable(title=f"medtune default recipe {' '.join(args.keys)}, this machine", title_justify="left")
    for column in ("data", "recipe", "test images", "wall s", "test AUC [95% CI]", "test acc [95% CI]", "goal"):
        table.add_column(column, justify="left" if column in ("data", "recipe", "goal") else "right")
    limits = [int(n) for n in args.limits.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="medtune-medmnist-") as tmp:
        for data in files:
            name, published = data.stem, PUBLISHED.get(data.stem, {})
            for limit in [None, *limits]:
                keys = [*args.keys, *([f"train_limit={limit}"] if limit else [])]
                goal_name = "Google AutoML Vision" if limit is None else "ResNet-18 (28)"
                recipe = "default" + (f", train_limit={limit}" if limit else "")
                outs = [Path(tmp) / f"{name}-{limit or 'all'}-seed{seed}" for seed in range(args.ensemble)]
                found = [run(data, [*keys, f"seed={seed}"], out) for seed, out in enumerate(outs)]
                rows = [(recipe + (f", seed={seed}" if args.ensemble > 1 else ""), f) for seed, f in enumerate(found)]
                if args.ensemble > 1:
                    both = run_ensemble(outs, Path(tmp) / f"{name}-{limit or 'all'}-ensemble")
                    both["wall"] += sum(f["wall"] for f in found)
                    rows.append((f"{recipe}: ensemble of the {args.ensemble} seeds", both))
                for label, result in rows:
                    table.add_row(
                        name,
                        label,
                        str(result["n"]),
                        f"{result['wall']:.0f}",
                        _fmt(result["auc"]),
                        _fmt(result["accuracy"]),
                        _goal(published.get(goal_name), goal_name, result),
                    )
            for paper, (auc, acc) in published.items():
                table.add_row("", f"published: {paper}", "", "", f"{auc:.3f}", f"{acc:.3f}", "")
    Console(width=170).print(table)


if __name__ == "__main__":
    main()
