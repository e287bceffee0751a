"""The COVID write-up's "forgotten masks" question with numbers: a cxr3 classifier (covid / normal / pneumonia) with
lung masks predicted by a segmentation run, beside the same classifier without masks.

    python benchmarks/masked_cxr3.py [--segmenter runs/lungseg-unet-tf_efficientnet_lite0] [--size 128] [--epochs 12]
        [--keys "KEY=VALUE ..."] [--per-class N] [--workdir DIR] [--quick]

Without ``--segmenter`` it first trains one on lungseg (``medtune segment train``, same size and epochs).

cxr3's X-rays come without lung masks; `masks=SEG_RUN mask=multiply` has the segmenter mask every image (cached),
so the classifier sees the lungs alone. Both runs share the data, the patient-grouped split (seed 0), size and
epochs. For each, `medtune explain RUN TEST_IMAGES --masks SEG_RUN` measures how much of each Grad-CAM map lies
inside the lungs (the segmenter's masks), and `medtune report RUN --masks SEG_RUN` draws the same on the page.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import pandas as pd
from _common import SHARED_DATA, medtune, parse_args
from rich.console import Console
from rich.table import Table as RichTable

CXR3 = SHARED_DATA / "cxr3" / "labels.csv"
LUNGSEG = SHARED_DATA / "lungseg"


def segmenter_run(work: Path, size: int, epochs: int, keys: list[str]) -> Path:
    """A lung segmenter trained on lungseg into `work` (a finished one there is reused)."""
    run = work / "segmenter"
    if not (run / "metrics.json").is_file():
        medtune("segment", "train", LUNGSEG / "images", f"masks={LUNGSEG / 'masks'}", *keys, f"image_size={size}",
                f"epochs={epochs}", "report=false", "--out", run)  # fmt: skip
    return run


def subset_csv(per_class: int, work: Path) -> Path:
    """cxr3's labels.csv cut to a seeded sample of `per_class` images of each class (absolute paths): a smaller set
    for a quicker run (``limit=`` would still have the segmenter mask every image of cxr3 first)."""
    frame = pd.read_csv(CXR3)
    frame = frame.groupby("label").sample(n=per_class, random_state=0).sort_index()
    frame["path"] = [str(CXR3.parent / p) for p in frame["path"]]
    out = work / f"cxr3-{per_class}-per-class.csv"
    frame.to_csv(out, index=False)
    return out


def train_and_measure(name: str, data: Path, extra: list[str], segmenter: Path, work: Path, size: int,
                      epochs: int) -> dict:  # fmt: skip
    run = work / name
    if not (run / "metrics.json").is_file():  # a finished run in --workdir is measured again, not retrained
        medtune("train", data, "label=label", "group=patient_id", *extra, f"image_size={size}", f"epochs={epochs}",
                "--out", run)  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    test = pd.read_csv(run / "predictions.csv")
    explained = work / f"{name}-cams"
    medtune("explain", run, *test["path"], f"masks={segmenter}", "--out", explained)
    cams = pd.read_csv(explained / "explanations.csv")
    medtune("report", run, f"masks={segmenter}")
    history = pd.read_csv(run / "history.csv")
    return {
        "run": name,
        "auc": (metrics["macro"]["auc"], *metrics["intervals"]["auc"]),
        "accuracy": (metrics["accuracy"], *metrics["intervals"]["accuracy"]),
        "energy": cams["mask_energy"].mean(),
        "images": int(cams["mask_energy"].notna().sum()),
        "minutes": history["seconds"].sum() / 60,
        "report": run / "report.html",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segmenter", type=Path, help="a run of medtune segment train (lungs; default: train one)")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("--keys", default="", help="KEY=VALUE settings added to every training")
    parser.add_argument("--per-class", type=int, default=0, help="a seeded sample of N cxr3 images per class (0: all)")
    args = parse_args(parser, size=32, epochs=1, keys="limit=32 batch_size=16 workers=0 report=false", per_class=40)
    if not CXR3.is_file() or not (args.segmenter or LUNGSEG.is_dir()):
        raise SystemExit(f"{CXR3.parent.parent} is absent: put ../shared/data beside the repository")
    keys = args.keys.split()
    with tempfile.TemporaryDirectory(prefix="medtune-masked-") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        work.mkdir(parents=True, exist_ok=True)
        segmenter = (args.segmenter or segmenter_run(work, args.size, args.epochs, keys)).resolve()
        data = subset_csv(args.per_class, work) if args.per_class else CXR3
        masked = [*keys, f"masks={segmenter}", "mask=multiply"]
        rows = [
            train_and_measure("no-masks", data, keys, segmenter, work, args.size, args.epochs),
            train_and_measure("lung-masks", data, masked, segmenter, work, args.size, args.epochs),
        ]
        table = RichTable(title=f"cxr3 (covid / normal / pneumonia), {args.size} px, {args.epochs} epochs, test split; "
                          f"lungs segmented by {segmenter.name}", title_justify="left")  # fmt: skip
        for column in ("run", "test AUC (macro) [95% CI]", "test accuracy [95% CI]", "Grad-CAM energy in lungs",
                       "images", "train min"):  # fmt: skip
            table.add_column(column, justify="left" if column == "run" else "right")
        for row in rows:
            auc, acc = row["auc"], row["accuracy"]
            table.add_row(row["run"], f"{auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}]",
                          f"{acc[0]:.3f} [{acc[1]:.3f}, {acc[2]:.3f}]", f"{row['energy']:.3f}", str(row["images"]),
                          f"{row['minutes']:.1f}")  # fmt: skip
        Console(width=160).print(table)
        for row in rows:
            print(f"report: {row['report']}")


if __name__ == "__main__":
    main()
