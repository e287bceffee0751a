"""A PneumoniaMNIST run's decisions under prevalence shift, before and after ``medtune calibrate RUN DATA``.

    python benchmarks/prevalence_shift.py [RUN] [--work DIR] [--labelled 40] [--per-site N] [--keys "K=V ..."] [--quick]

RUN is a PneumoniaMNIST run (``medtune train ../shared/data/pneumoniamnist/pneumoniamnist.npz``; without RUN that
command runs first, into ``--work``, with ``--keys`` added). Each site is a
set of labelled images written as PNGs with a CSV, cut at random (seeded) into a calibration quarter and an
evaluation rest: the run's official test split resampled to about 10% and 90% pneumonia, its validation split
resampled the same way (a control with nothing but the class mix changed; the scaling before EM was fitted on those
validation images, so it is in-sample there), and the NIH normal /
pneumonia images of cxr3 (another hospital, adults; 50% and resampled to 10% pneumonia). On each site the
calibration quarter fits (a) the prevalence by EM without its labels and (b) the threshold on `--labelled` of its
labelled images (Youden's J, the run's rule), and ``evaluate --calibration`` scores the evaluation rest before and
after. The table gives the true pneumonia share of the evaluation rest, EM's estimate, and accuracy, balanced
accuracy and the predicted-positive rate before and after each.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from _common import SHARED_DATA, TINY_KEYS, medtune, parse_args
from PIL import Image
from rich.console import Console
from rich.table import Table as RichTable

from medtune.apply.evaluate import evaluate
from medtune.apply.recalibrate import calibrate_shift


def write_site(folder: Path, images: list[np.ndarray | Path], labels: list[str], seed: int) -> tuple[Path, Path]:
    """PNGs (or copies of image files) with ``calibrate.csv`` (a random quarter) and ``evaluate.csv`` (the rest)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = folder / f"{i:05d}.png"
        if isinstance(image, Path):
            shutil.copyfile(image, path)
        else:
            Image.fromarray(image).save(path)
        paths.append(path.name)
    frame = pd.DataFrame({"path": paths, "label": labels}).sample(frac=1.0, random_state=seed)
    cut = len(frame) // 4
    frame.iloc[:cut].to_csv(folder / "calibrate.csv", index=False)
    frame.iloc[cut:].to_csv(folder / "evaluate.csv", index=False)
    return folder / "calibrate.csv", folder / "evaluate.csv"


def resample(labels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Indices keeping every image of the scarcer side and as many of the other as give `share` positives."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    if share * len(neg) / (1 - share) <= len(pos):
        pos = rng.choice(pos, round(share * len(neg) / (1 - share)), replace=False)
    else:
        neg = rng.choice(neg, round((1 - share) * len(pos) / share), replace=False)
    return np.sort(np.r_[pos, neg])


def sites(work: Path, seed: int, count: int = 0) -> dict[str, tuple[Path, Path]]:
    """The sites, each drawn from at most `count` images of its source (a seeded sample; 0: all of them)."""
    rng = np.random.default_rng(seed)
    npz = np.load(SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz")
    names = np.array(["normal", "pneumonia"])
    found = {}
    for split in ("test", "val"):
        images, labels = npz[f"{split}_images"], npz[f"{split}_labels"][:, 0]
        if 0 < count < len(labels):
            kept = np.sort(rng.choice(len(labels), count, replace=False))
            images, labels = images[kept], labels[kept]
        for share in (0.1, 0.9):
            keep = resample(labels, share, rng)
            found[f"PneumoniaMNIST {split}, {share:.0%} pneumonia"] = write_site(
                work / f"mnist-{split}-{round(share * 100)}", list(images[keep]), list(names[labels[keep]]), seed
            )
    cxr = pd.read_csv(SHARED_DATA / "cxr3" / "labels.csv")
    cxr = cxr[cxr["label"].isin(["normal", "pneumonia"])].reset_index(drop=True)
    if 0 < count < len(cxr):
        cxr = cxr.groupby("label").sample(n=count // 2, random_state=seed).reset_index(drop=True)
    truth = (cxr["label"] == "pneumonia").to_numpy().astype(int)
    for share in (None, 0.1):
        keep = np.arange(len(cxr)) if share is None else resample(truth, share, rng)
        files = [SHARED_DATA / "cxr3" / p for p in cxr["path"].iloc[keep]]
        label = "50%" if share is None else f"{share:.0%}"
        found[f"cxr3 NIH, {label} pneumonia"] = write_site(
            work / f"cxr3-{label.rstrip('%')}", files, list(cxr["label"].iloc[keep]), seed
        )
    return found


def measure(run: Path, calibrate_csv: Path, evaluate_csv: Path, labelled: int) -> dict[str, float]:
    em = calibrate_shift(run, calibrate_csv, unlabelled=True, name="bench-em", progress=False)
    chosen = calibrate_shift(run, calibrate_csv, labelled=min(labelled, em.images), name="bench-threshold",
                             progress=False)  # fmt: skip
    out = evaluate_csv.parent / "evaluation"
    after_em = evaluate(run, evaluate_csv, calibration="bench-em", out=out, progress=False).metrics["calibrated"]
    after_t = evaluate(run, evaluate_csv, calibration="bench-threshold", out=out, progress=False).metrics["calibrated"]
    before = after_em["before"]
    return {
        "images (cal / eval)": f"{em.images} / {after_em['images']}",
        "true share": before["prevalence"],
        "EM estimate": em.estimate[1],
        "acc before": before["accuracy"],
        "acc EM": after_em["after"]["accuracy"],
        f"acc thr{labelled}": after_t["after"]["accuracy"],
        "bal.acc before": before["balanced_accuracy"],
        "bal.acc EM": after_em["after"]["balanced_accuracy"],
        f"bal.acc thr{labelled}": after_t["after"]["balanced_accuracy"],
        "pos.rate before": before["predicted_positive_rate"],
        "pos.rate EM": after_em["after"]["predicted_positive_rate"],
        f"pos.rate thr{labelled}": after_t["after"]["predicted_positive_rate"],
        "log loss before": before["log_loss"],
        "log loss EM": after_em["after"]["log_loss"],
        "threshold": chosen.thresholds[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", help="a PneumoniaMNIST run (default: train one into --work)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/medtune-prevalence-shift"), help="sites and run")
    parser.add_argument("--labelled", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-site", type=int, default=0, help="draw each site from N images of its source (0: all)")
    parser.add_argument("--keys", default="", help="KEY=VALUE settings of the run trained without RUN")
    args = parse_args(parser, work=None, per_site=120, labelled=20, keys=f"{TINY_KEYS} report=false")
    with tempfile.TemporaryDirectory(prefix="medtune-prevalence-") as tmp:  # --quick: a fresh folder, removed
        work = args.work or Path(tmp)
        run = args.run or trained_run(work / "run", args.keys.split())
        rows = {
            name: measure(run, *pair, args.labelled) for name, pair in sites(work, args.seed, args.per_site).items()
        }
    table = RichTable(title=f"{run.name} under prevalence shift: each site's evaluation rest", title_justify="left")
    table.add_column("")
    for name in rows:
        table.add_column(name, justify="right")
    for metric in next(iter(rows.values())):
        table.add_row(metric, *(_cell(row[metric]) for row in rows.values()))
    Console(width=250).print(table)


def trained_run(out: Path, keys: list[str]) -> Path:
    """``medtune train pneumoniamnist.npz KEYS --out OUT``, unless OUT holds a finished run."""
    if not (out / "metrics.json").is_file():
        medtune("train", SHARED_DATA / "pneumoniamnist" / "pneumoniamnist.npz", *keys, "--out", out)
    return out


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
