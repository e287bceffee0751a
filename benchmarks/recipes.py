"""Choose a recipe by validation scores only: each recipe on each MedMNIST file and subset, side by side.

    python benchmarks/recipes.py -r "epochs=12" -r "epochs=6" [--data pneumoniamnist,retinamnist,cxr3,...]
        [--limits all,300] [--seeds 0] [--keys "KEY=VALUE ..."] [--jsonl results.jsonl] [--quick]

For each recipe (a set of KEY=VALUE settings added to the defaults), data file and training-set size
(``train_limit=``; validation whole), runs ``medtune train`` in a subprocess and reads the run's ``history.csv``:
the validation AUC, accuracy, loss and log loss of the epoch the run kept (``kept.json``; else the best ``val_auc``),
the lowest validation log loss and its epoch (where validation peaked), the number of epochs and the wall time.
Runs leave the test split unread (``read_test=false``): recipes are compared on validation, and the test numbers
are read once, for the chosen recipe, by ``benchmarks/medmnist.py``. ``--tta`` also scores the kept weights on the
validation split without and with horizontal-flip test-time augmentation (``medtune evaluate --split val``), and
with several seeds the averaged probabilities of the seeds' runs (what ``medtune ensemble`` makes of them).
``--jsonl`` appends one JSON line per run for later tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import SHARED_DATA, TINY_KEYS, parse_args
from rich.console import Console
from rich.table import Table as RichTable

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
#: Full-size sources (``--data`` takes these names beside the MedMNIST ones): the data and its reading keys.
SOURCES = {
    "cxr3": (DATA / "cxr3" / "labels.csv", ["label=label", "group=patient_id"]),
    "ham10000-subset": (DATA / "ham10000-subset" / "labels.csv", ["label=label", "group=lesion_id"]),
    "lc25000-lung": (DATA / "lc25000-lung", []),
}


#: The table's columns (two more with --tta).
COLUMNS = (
    "data",
    "train images",
    "recipe",
    "epochs (kept)",
    "wall s",
    "val AUC",
    "val acc",
    "val loss",
    "val log loss (kept; best, at epoch)",
)


def source(name: str) -> tuple[Path, list[str]]:
    """The data path and reading keys of a ``--data`` name."""
    return SOURCES.get(name) or (DATA / name / f"{name}.npz", [])


def kept_epoch(history: pd.DataFrame, monitor: str = "val_auc") -> pd.Series:
    """The row of the epoch whose checkpoint the run kept: the best monitored value, the first of equal ones
    (Lightning's ModelCheckpoint replaces its best only on a strict improvement)."""
    best = history[monitor].max()
    return history[history[monitor] == best].iloc[0]


def val_scores(out: Path, tta: bool) -> tuple[float, float]:
    """``medtune evaluate OUT --split val [tta=true]``: validation AUC and accuracy of the kept weights."""
    folder = out / ("val-tta" if tta else "val")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "medtune",
            "evaluate",
            str(out),
            "--split",
            "val",
            "tta=true" if tta else "tta=false",
            "--out",
            str(folder),
        ],
        check=True,
        cwd=REPO,
        capture_output=True,
    )
    metrics = json.loads((folder / "metrics.json").read_text())
    return metrics["macro"]["auc"], metrics["accuracy"]


def run_recipe(data: Path, keys: list[str], out: Path, tta: bool = False) -> dict:
    """``medtune train DATA KEYS`` in a subprocess; validation scores of the kept epoch, epochs and wall time."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "medtune", "train", str(data), *keys, "report=false", "guard=false", "read_test=false",
         "--out", str(out)],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"medtune train {data} {' '.join(keys)} failed:\n{done.stderr[-3000:]}")
    wall = time.perf_counter() - started
    history = pd.read_csv(out / "history.csv")
    kept = out / "kept.json"
    # kept.json and history.csv both count epochs from 1
    row = history[history["epoch"] == json.loads(kept.read_text())["epoch"]].iloc[0] if kept.is_file() else (
        kept_epoch(history))  # fmt: skip
    found = {"wall": round(wall, 1), "epochs": len(history), "kept": int(row["epoch"]),
            "val_auc": float(row["val_auc"]), "val_acc": float(row["val_acc"]), "val_loss": float(row["val_loss"]),
            "val_nll": float(row["val_nll"]), "peak_nll": int(history.loc[history["val_nll"].idxmin(), "epoch"]),
            "best_nll": float(history["val_nll"].min()),
            "train_seconds": round(float(history["seconds"].sum()), 1)}  # fmt: skip
    if tta:
        found["eval_auc"], found["eval_acc"] = val_scores(out, False)
        found["tta_auc"], found["tta_acc"] = val_scores(out, True)
    return found


def ensemble_scores(outs: list[Path]) -> tuple[float, float]:
    """Validation AUC and accuracy of the runs' averaged probabilities (their ``val/predictions.csv``)."""
    from medtune.metrics import compute_metrics

    frames = [pd.read_csv(out / "val" / "predictions.csv", dtype={"label": str}) for out in outs]
    columns = [c for c in frames[0].columns if c.startswith("prob_")]
    classes = [c.removeprefix("prob_") for c in columns]
    targets = frames[0]["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
    probs = sum(frame[columns].to_numpy() for frame in frames) / len(frames)
    metrics = compute_metrics(targets, probs, classes, n_bootstrap=0)
    return metrics["macro"]["auc"], metrics["accuracy"]


def _tta_cells(mean: dict) -> list[str]:
    return [f"{mean['eval_auc']:.3f} / {mean['eval_acc']:.3f}", f"{mean['tta_auc']:.3f} / {mean['tta_acc']:.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-r", "--recipe", action="append", default=[], help='KEY=VALUE settings, e.g. "epochs=6"')
    parser.add_argument("--data", default="pneumoniamnist,retinamnist", help="MedMNIST names under ../shared/data")
    parser.add_argument("--limits", default="all,300", help="training set sizes: all, or a train_limit")
    parser.add_argument("--seeds", default="0", help="seeds, comma-separated (scores are averaged)")
    parser.add_argument("--tta", action="store_true", help="also score the kept weights on val with and without TTA")
    parser.add_argument("--runs", type=Path, default=None, help="keep the run directories here (default: removed)")
    parser.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per run here")
    parser.add_argument("--keys", default="", help="KEY=VALUE settings added to every run (before the recipe's)")
    args = parse_args(parser, data="pneumoniamnist", limits="16", keys=TINY_KEYS)
    recipes = args.recipe or [""]
    table = RichTable(title="Validation scores of the kept epoch (test never read)", title_justify="left")
    for column in [*COLUMNS, *(["val AUC / acc", "with TTA"] if args.tta else [])]:
        table.add_column(column, justify="left" if column in ("data", "recipe") else "right")
    with tempfile.TemporaryDirectory(prefix="medtune-recipes-") as scratch:
        tmp = args.runs or scratch
        for name in args.data.split(","):
            data, reading = source(name)
            if not data.exists():
                raise SystemExit(f"{data} is absent: the benchmark needs ../shared/data beside the repository")
            for limit in args.limits.split(","):
                for recipe in recipes:
                    found, outs = [], []
                    for seed in args.seeds.split(","):
                        keys = [
                            *reading,
                            *args.keys.split(),
                            *recipe.split(),
                            f"seed={seed}",
                            *([] if limit == "all" else [f"train_limit={limit}"]),
                        ]
                        slug = "_".join(recipe.split()).replace("=", "-") or "defaults"
                        out = Path(tmp) / f"{name}-{limit}-{slug}-seed{seed}"
                        found.append(run_recipe(data, keys, out, args.tta))
                        outs.append(out)
                        if args.jsonl:
                            with args.jsonl.open("a") as handle:
                                record = {"data": name, "limit": limit, "recipe": recipe, "seed": seed, **found[-1]}
                                handle.write(json.dumps(record) + "\n")
                    mean = {k: statistics.fmean(f[k] for f in found) for k in found[0]}
                    if args.tta and len(found) > 1:
                        auc, acc = ensemble_scores(outs)
                        table.add_row(name, limit, f"{recipe or 'defaults'}: ensemble of the {len(found)} seeds", "",
                                      "", "", "", "", f"{auc:.3f} / {acc:.3f}", "")  # fmt: skip
                    table.add_row(name, limit, recipe or "defaults", f"{mean['epochs']:.0f} ({mean['kept']:.0f})",
                                  f"{mean['wall']:.0f}", f"{mean['val_auc']:.3f}", f"{mean['val_acc']:.3f}",
                                  f"{mean['val_loss']:.3f}",
                                  f"{mean['val_nll']:.3f} ({mean['best_nll']:.3f}, {mean['peak_nll']:.0f})",
                                  *(_tta_cells(mean) if args.tta else []))  # fmt: skip
    Console(width=150).print(table)


if __name__ == "__main__":
    main()
