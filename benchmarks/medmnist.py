"""medtune's default recipe, and ``medtune tune`` with a time budget, on MedMNIST files, beside the published
numbers, in one run.

    python benchmarks/medmnist.py [--files A.npz,B.npz] [--limits 300,600] [--ensemble 2] [--tune 30m]
                                  [--workdir DIR] [--quick] [KEY=VALUE ...]

For each ``*/<name>mnist.npz`` under ../shared/data: ``medtune train FILE`` with the default configuration (plus
any KEY=VALUE given, to try a recipe) in a fresh run directory, timed from start to finish in a subprocess, then
the same on small subsets (``train_limit=``: a few hundred training images, validation and test whole). Prints
wall time, test AUC and accuracy with 95% bootstrap intervals, and the published MedMNIST v2 rows (Yang et al.,
Scientific Data 2023, Table 3) with the goals of issue 18: Google AutoML Vision on the full sets, ResNet-18 (28)
for the subsets. ``--ensemble N`` trains N seeds of each and adds the test scores of ``medtune ensemble`` of them
(wall time: the N trainings and the ensemble step). ``--tune 30m`` adds a row per file for ``medtune tune FILE
--budget 30m`` (wall time: the whole command, search and final step).

Any MedMNIST file works (``--files``): the 28 px ones in ../shared/data (the default) or the larger ones a user has
(``medmnist``'s ``size=64/128/224``: ``pneumoniamnist_64.npz``...); published rows are matched by the name before
``_``, with the MedMNIST+ row for that size (Doerrich et al. 2024: the best of their models, mean of 3 seeds).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, TINY_KEYS, parse_args
from rich.console import Console
from rich.table import Table as RichTable

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
#: MedMNIST v2 test AUC / ACC (Yang et al. 2023, Table 3).
PUBLISHED = {
    "pneumoniamnist": {"ResNet-18 (28)": (0.944, 0.854), "ResNet-50 (224)": (0.962, 0.884),
                       "Google AutoML Vision": (0.991, 0.946)},
    "retinamnist": {"ResNet-18 (28)": (0.717, 0.524), "ResNet-50 (28)": (0.726, 0.528),
                    "Google AutoML Vision": (0.750, 0.531)},
}  # fmt: skip
#: MedMNIST+ (Doerrich et al. 2024) best test AUC / ACC at each source size.
PLUS = {
    "pneumoniamnist": {28: (0.973, 0.866), 64: (0.987, 0.893), 128: (0.989, 0.903)},
    "retinamnist": {28: (0.754, 0.543), 64: (0.806, 0.574), 128: (0.853, 0.620)},
}


def published_rows(stem: str) -> dict[str, tuple[float, float]]:
    """The published rows for a MedMNIST file name (``retinamnist``, ``retinamnist_128``)."""
    name, _, size = stem.partition("_")
    side = int(size) if size.isdigit() else 28
    rows = dict(PUBLISHED.get(name, {}))
    if side in PLUS.get(name, {}):
        rows[f"MedMNIST+ best ({side})"] = PLUS[name][side]
    return rows


def run_tune(data: Path, budget: str, keys: list[str], work: Path) -> dict:
    """``medtune tune DATA --budget BUDGET`` in a subprocess in `work`: wall seconds and the result's test metrics."""
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    with (work / "tune.log").open("w") as log:
        subprocess.run([sys.executable, "-m", "medtune", "tune", str(data.resolve()), *keys, "--budget", budget,
                        "--storage", f"sqlite:///{work / 'queue.db'}"], check=True, cwd=work, stdout=log,
                       stderr=subprocess.STDOUT)  # fmt: skip
    result = next((work / "runs").glob("*/result"))
    summary = json.loads((result / "tune.json").read_text())
    return {**scores(result, started), "trials": len(summary["trials"]), "why": summary["chosen"]["why"]}


def scores(run_dir: Path, started: float) -> dict:
    """Wall seconds since `started` and the test AUC and accuracy (with intervals) of `run_dir`'s metrics.json."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"wall": time.perf_counter() - started, "auc": (metrics["macro"]["auc"], *metrics["intervals"]["auc"]),
            "accuracy": (metrics["accuracy"], *metrics["intervals"]["accuracy"]), "n": metrics["n"]}  # fmt: skip


def run(data: Path, keys: list[str], out: Path) -> dict:
    """``medtune train DATA KEYS --out OUT`` in a subprocess: wall seconds and the test metrics."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtune", "train", str(data), *keys, "report=false", "--out", str(out)],
                   check=True, cwd=REPO, capture_output=True)  # fmt: skip
    return scores(out, started)


def run_ensemble(members: list[Path], out: Path) -> dict:
    """``medtune ensemble MEMBERS --out OUT``: wall seconds (the ensemble step alone) and the test metrics."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtune", "ensemble", *map(str, members), "report=false", "--out", str(out)],
                   check=True, cwd=REPO, capture_output=True)  # fmt: skip
    return scores(out, started)


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
    parser.add_argument("--files", default="", help="MedMNIST .npz files, comma-separated (default: ../shared/data's)")
    parser.add_argument("--limits", default="300,600", help="training subset sizes to run too; empty for none")
    parser.add_argument("--ensemble", type=int, default=1, help="also train this many seeds and score their ensemble")
    parser.add_argument("--tune", default="", help="also run medtune tune with this budget (30m) on each file")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("keys", nargs="*", help="KEY=VALUE settings added to the default recipe")
    quick_file = DATA / "pneumoniamnist" / "pneumoniamnist.npz"
    args = parse_args(parser, files=str(quick_file), limits="16", keys=TINY_KEYS.split())
    files = [Path(f) for f in args.files.split(",") if f] or sorted(DATA.glob("*mnist/*mnist*.npz"))
    if not files:
        raise SystemExit(f"no MedMNIST files under {DATA}: the benchmark needs ../shared/data beside the repository")
    table = RichTable(title=f"medtune on MedMNIST {' '.join(args.keys)}, this machine", title_justify="left")
    for column in ("data", "recipe", "test images", "wall s", "test AUC [95% CI]", "test acc [95% CI]", "goal"):
        table.add_column(column, justify="left" if column in ("data", "recipe", "goal") else "right")
    with tempfile.TemporaryDirectory(prefix="medtune-medmnist-") as tmp:
        work = args.workdir or Path(tmp)
        for data in files:
            for label, result, goal_name in _rows(data, args, work):
                published = published_rows(data.stem)
                table.add_row(data.stem, label, str(result["n"]), f"{result['wall']:.0f}", _fmt(result["auc"]),
                              _fmt(result["accuracy"]), _goal(published.get(goal_name), goal_name, result))  # fmt: skip
            for paper, (auc, acc) in published_rows(data.stem).items():
                table.add_row("", f"published: {paper}", "", "", f"{auc:.3f}", f"{acc:.3f}", "")
            Console(width=170).print(table)  # after each file: a long run shows what it has so far


def _rows(data: Path, args: argparse.Namespace, work: Path) -> list[tuple[str, dict, str]]:
    """The default recipe (on the whole set and on subsets, each seed and their ensemble) and the tune row."""
    rows = []
    name = data.stem
    for limit in [None, *[int(n) for n in args.limits.split(",") if n]]:
        keys = [*args.keys, *([f"train_limit={limit}"] if limit else [])]
        goal_name = "Google AutoML Vision" if limit is None else "ResNet-18 (28)"
        recipe = "default" + (f", train_limit={limit}" if limit else "")
        outs = [work / f"{name}-{limit or 'all'}-seed{seed}" for seed in range(args.ensemble)]
        found = [run(data, [*keys, f"seed={seed}"], out) for seed, out in enumerate(outs)]
        rows += [
            (recipe + (f", seed={seed}" if args.ensemble > 1 else ""), f, goal_name) for seed, f in enumerate(found)
        ]
        if args.ensemble > 1:
            both = run_ensemble(outs, work / f"{name}-{limit or 'all'}-ensemble")
            both["wall"] += sum(f["wall"] for f in found)
            rows.append((f"{recipe}: ensemble of the {args.ensemble} seeds", both, goal_name))
    if args.tune:
        tuned = run_tune(data, args.tune, list(args.keys), work / f"{name}-tune")
        rows.append((f"medtune tune --budget {args.tune} ({tuned['trials']} trials; {tuned['why']})", tuned,
                     "Google AutoML Vision"))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
