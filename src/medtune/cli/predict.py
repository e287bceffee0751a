"""``medtune predict``: labels (and probabilities) for new images from a trained run."""

from __future__ import annotations

import sys
from contextlib import nullcontext, redirect_stdout
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, TextIO

import typer

from medtune.cli._common import (
    ConfigOption,
    ModelArgument,
    PrintConfigOption,
    command_keys,
    console,
    print_config,
    split_arguments,
)
from medtune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd


#: The keys `medtune predict` reads (how its inputs are read and the network applied).
PREDICT_KEYS = ("tta", "batch_size", "path", "masks", "outside_paths")


def predict_command(
    run: ModelArgument,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT... [KEY=VALUE]...",
            help="Image files, folders (recursive), glob patterns or CSV files; then keys: tta=true, batch_size=64, "
            "path=COLUMN (of CSV inputs), masks=DIR (runs trained with masks), outside_paths=true.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="results.json or results.csv; - for standard output.")],
    fmt: Annotated[
        Literal["auto", "json", "csv", "submission"],
        typer.Option("--format", "-f", help="auto (from the suffix; json for -), json, csv, or submission (id,label)."),
    ] = "auto",
    probs: Annotated[bool, typer.Option("--probs", help="Write every class probability.")] = False,
    engine: Annotated[
        Literal["auto", "torch", "onnx"],
        typer.Option("--engine", help="auto (onnxruntime when the run has an export), torch or onnx."),
    ] = "auto",
    sets: Annotated[
        bool, typer.Option("--sets", help="Add each image's conformal prediction set (after medtune calibrate RUN).")
    ] = False,
    calibration: Annotated[
        str | None,
        typer.Option("--calibration", help="A calibration kept in the run: conformal (sets), prevalence or threshold."),
    ] = None,
    reject: Annotated[
        bool, typer.Option("--reject", help="Withhold the answers of images the run's guard flags (medtune guard).")
    ] = False,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Predict every input image (exit 3 when some could not be read).

    Unreadable files are reported in the output with their error; the others are predicted.
    """
    from medtune.apply.calibrate import DEFAULT_NAME
    from medtune.apply.predict import predict, write_predictions

    _, paths, settings = split_arguments(inputs)
    keys = command_keys(config_file, settings, PREDICT_KEYS, "medtune predict")
    if show_config:
        print_config(keys)
    if not paths:
        raise ConfigError("give the images to predict after RUN: files, folders, glob patterns or CSV files")
    name = calibration or (DEFAULT_NAME if sets else None)
    to_stdout, stdout = str(out) == "-", sys.stdout
    with redirect_stdout(sys.stderr) if to_stdout else nullcontext():  # the predictions alone on standard output
        results = predict(run, paths, tta=keys.get("tta"), batch_size=keys.get("batch_size", 64),
                          path_column=keys.get("path"), masks=keys.get("masks"), engine=engine,
                          outside_paths=keys.get("outside_paths", False), calibration=name, reject=reject)  # fmt: skip
        if to_stdout:
            written = _write_stdout(results, fmt, probs, stdout)
        else:
            written = write_predictions(results, out, fmt, probs)
        failed = _tell(results, written, name, reject)
    if len(failed):
        raise typer.Exit(1 if len(failed) == len(results) else 3)


def _write_stdout(results: pd.DataFrame, fmt: str, probs: bool, stdout: TextIO) -> str:
    """``--out -``: the predictions as JSON (or CSV with ``--format csv``) on standard output."""
    import tempfile

    from medtune.apply.predict import write_predictions

    with tempfile.TemporaryDirectory(prefix="medtune-predict-") as folder:
        suffix = ".csv" if fmt in ("csv", "submission") else ".json"
        text = write_predictions(results, Path(folder) / f"predictions{suffix}", fmt, probs).read_text("utf-8")
    stdout.write(text if text.endswith("\n") else text + "\n")
    stdout.flush()
    return "standard output"


def _tell(results: pd.DataFrame, written: object, name: str | None, reject: bool) -> pd.DataFrame:
    """Print what was predicted, the guard's and the calibration's words, warnings and unreadable files; returns
    the rows that failed."""
    failed = results[results["error"].notna()]
    summary = _summary(results)
    console.print(f"{len(results) - len(failed)} image(s) predicted ({summary}); written to {written}", highlight=False)
    guarded = results.attrs.get("guard")
    if guarded:
        flagged = results.loc[results["in_distribution"].eq(False), "file"].map(lambda f: Path(f).name).tolist()
        listed = ", ".join(flagged[:5]) + (", ..." if len(flagged) > 5 else "")
        console.print(f"{guarded['flagged']} of {guarded['read']} image(s) look unlike the training images"
                      + (f": {listed}" if flagged else "") + ("; their answers are withheld" if reject and flagged
                      else ""), highlight=False)  # fmt: skip
    if name is not None:
        console.print(_calibration_line(results), highlight=False)
    for warning in results.attrs.get("warnings", []):
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    for row in failed.itertuples(index=False):
        console.print(f"[yellow]unreadable[/]: {row.file}: {row.error}", highlight=False)
    return failed


def _summary(results: pd.DataFrame) -> str:
    """Images per predicted class; multi-label: images per finding and images with none."""
    if "labels" not in results:
        return ", ".join(f"{name} {n}" for name, n in results["label"].value_counts().items())
    read = results["labels"].dropna()
    counts = read[read != ""].str.split("|").explode().value_counts()
    return ", ".join([*(f"{name} {n}" for name, n in counts.items()), f"no finding {int((read == '').sum())}"])


def _calibration_line(results: pd.DataFrame) -> str:
    """What the calibration did: the sets' sizes, or the prevalence or thresholds the labels were decided at."""
    found = results.attrs["calibration"]
    if found["kind"] == "conformal" and "certain" in results:
        read = results["certain"].dropna()
        certain, unsure = (results[c].dropna().map(lambda v: len([n for n in v.split("|") if n])) for c in
                           ("certain", "uncertain"))  # fmt: skip
        return (f"per-finding sets ({found['coverage']:.0%} coverage each): {int(certain.sum())} finding(s) certainly "
                f"present and {int(unsure.sum())} uncertain over {len(read)} image(s)")  # fmt: skip
    if found["kind"] == "conformal":
        sizes = results["set"].dropna().str.split("|").map(len)
        return (f"prediction sets ({found['coverage']:.0%} coverage): mean size {sizes.mean():.2f}, "
                f"{int((sizes == 1).sum())} of {len(sizes)} hold one class")  # fmt: skip
    if found["kind"] == "prevalence":
        shares = ", ".join(f"{c} {v:.1%}" for c, v in found["prevalence"].items())
        return f"calibration {found['name']!r} (prevalence, {found['source']}): {found['note']} ({shares})"
    chosen = ", ".join(f"{c} {v:.3f}" for c, v in found["thresholds"].items())
    return f"calibration {found['name']!r} (thresholds): {found['note']} ({chosen})"
