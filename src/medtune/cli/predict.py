"""``medtune predict``: labels (and probabilities) for new images from a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medtune.cli._common import InputsArgument, ModelArgument, console

if TYPE_CHECKING:
    import pandas as pd


def predict_command(
    run: ModelArgument,
    inputs: InputsArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="results.json or results.csv.")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="auto (from the suffix), json, csv, or submission (id,label).")
    ] = "auto",
    probs: Annotated[bool, typer.Option("--probs", help="Write every class probability.")] = False,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="Average with the mirrored image.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")] = 64,
    path_column: Annotated[str | None, typer.Option("--path-column", help="Path column of CSV inputs.")] = None,
    outside_paths: Annotated[
        bool, typer.Option("--outside-paths", help="Let CSV inputs name images outside their folder with '..'.")
    ] = False,
    engine: Annotated[
        str, typer.Option("--engine", help="auto (onnxruntime when the run has an export), torch or onnx.")
    ] = "auto",
    masks: Annotated[
        Path | None, typer.Option("--masks", help="Folder of masks named like the images (runs trained with mask=).")
    ] = None,
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
) -> None:
    """Predict every input image; unreadable files are reported in the output with their error."""
    from medtune.apply.calibrate import DEFAULT_NAME
    from medtune.apply.predict import predict, write_predictions

    name = calibration or (DEFAULT_NAME if sets else None)
    results = predict(run, inputs, tta=tta, batch_size=batch_size, path_column=path_column, masks=masks, engine=engine,
                      outside_paths=outside_paths, calibration=name, reject=reject)  # fmt: skip
    written = write_predictions(results, out, fmt, probs)
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
    if len(failed) == len(results):
        raise typer.Exit(1)


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
