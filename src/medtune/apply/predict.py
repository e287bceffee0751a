"""``medtune predict``: class predictions for new images from a trained run.

Inputs are files, folders (searched recursively), glob patterns or CSV/TSV files with a path column. Images are
decoded by loader worker processes while the network runs, in batches. An input that cannot be read becomes a row
with its error; the other images are still predicted.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from medtune._progress import create_progress
from medtune.apply.guard import guard_of
from medtune.apply.scoring import load_model
from medtune.data.images import is_image_file, read_image
from medtune.data.masks import find_mask, prepare_masked
from medtune.data.readers.manifest import PATH_NAMES, SUFFIXES, find_column, read_manifest_csv, resolve_paths
from medtune.data.store import StoreSpec
from medtune.data.table import LABEL_SEP
from medtune.errors import ConfigError, DataError, ImageReadError
from medtune.models.inference import predict_batches
from medtune.runs import Run, TrainedModel
from medtune.runs.segmasks import predicted_mask_files, segmenter_of

if TYPE_CHECKING:
    from medtune.runs.exported import ExportedModel

_GLOB_CHARS = frozenset("*?[")


def collect_inputs(
    inputs: Iterable[str | os.PathLike], path_column: str | None = None, outside_paths: bool = False
) -> list[str]:
    """Expand files, folders (recursive), glob patterns and CSV/TSV manifests into image paths, in order.

    A name that matches nothing is kept, so that its error is reported with the results. A manifest's relative
    paths that climb out of its folder with ``..`` are refused unless `outside_paths`.

    Raises:
        DataError: nothing was given, or the inputs hold no image at all.
    """
    found: list[str] = []
    for item in map(str, inputs):
        path = Path(item).expanduser()
        if any(c in item for c in _GLOB_CHARS) and not path.exists():
            found.extend(sorted(p for p in glob.glob(str(path), recursive=True) if Path(p).is_file()))
        elif path.is_dir():
            found.extend(sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_file(p)))
        elif path.suffix.lower() in SUFFIXES and path.is_file():
            found.extend(_manifest_paths(path, path_column, outside_paths))
        else:
            found.append(str(path))
    unique = list(dict.fromkeys(found))
    if not unique:
        given = ", ".join(map(str, inputs)) or "nothing"
        raise DataError(f"no images found in {given}; give image files, folders, glob patterns or a CSV of paths")
    return unique


def _manifest_paths(path: Path, column: str | None, outside: bool) -> list[str]:
    frame = read_manifest_csv(path)
    name = find_column(frame, column, PATH_NAMES, "path", "path", path)
    if name is None:
        raise DataError(
            f"{path} has no path column (looked for {', '.join(PATH_NAMES[:5])}...); columns are "
            f"{', '.join(frame.columns)}: set path=COLUMN"
        )
    return list(resolve_paths(frame[name].dropna(), path.parent, path, outside))


class _ImageFiles(Dataset):
    """Decoded, store-preprocessed images (with their masks when the run uses masks); an unreadable file or a
    missing mask yields its error instead."""

    def __init__(self, paths: list[str], spec: StoreSpec, masks: list[str | None] | None = None,
                 missing: str | None = None) -> None:  # fmt: skip
        self.paths, self.spec, self.masks, self.missing = paths, spec, masks, missing

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, str | None]:
        path = self.paths[i]
        if not Path(path).exists():
            return i, None, "file not found"
        mask = self.masks[i] if self.masks is not None else None
        if self.spec.mask != "none" and mask is None and self.missing is not None:
            return i, None, self.missing
        try:
            image = prepare_masked(read_image(path, self.spec.window, self.spec.frame), mask, self.spec)
        except ImageReadError as exc:
            return i, None, exc.reason if exc.path == str(path) else f"mask {exc.path}: {exc.reason}"
        except (OSError, ValueError) as exc:
            return i, None, f"{type(exc).__name__}: {exc}"
        return i, image, None


def input_masks(paths: list[str], model: Any, masks: str | os.PathLike | None) -> tuple[list | None, str | None]:
    """The mask file of each input (None where there is none) from a masks folder, or predicted by the segmentation
    run of a classifier trained with ``masks=SEG_RUN``, and the error an input without a mask gets (None when the
    run's ``mask_missing=whole`` uses the whole image instead).

    Raises:
        DataError: the run uses masks but no folder was given (unless ``mask_missing=whole``), or the folder does
            not exist.
    """
    config = model.config
    if config.mask == "none":
        return None, None
    segmenter = segmenter_of(model)
    if masks is None and segmenter is not None:  # trained with masks=SEG_RUN: segment the inputs
        from medtune.data.decode import Entry

        entries = [Entry(i, path) for i, path in enumerate(paths)]
        files, _ = predicted_mask_files(entries, segmenter, config, progress=False)
        return files, "the image cannot be segmented"
    missing = None if config.mask_missing == "whole" else "no mask for this image in the masks folder"
    if masks is None:
        if missing is None:
            return [None] * len(paths), None
        raise DataError(
            f"this run was trained with mask={config.mask}: give the inputs' masks with --masks FOLDER (masks named "
            "like the images), or train with mask_missing=whole to accept images without one"
        )
    folder = Path(masks).expanduser()
    if not folder.is_dir():
        raise DataError(f"masks folder {folder} does not exist; give the folder of masks named like the images")
    return [None if (m := find_mask(folder, p)) is None else str(m) for p in paths], missing


def _collate(items: list[tuple[int, np.ndarray | None, str | None]]) -> tuple[list[int], torch.Tensor | None, dict]:
    good = [(i, image) for i, image, _ in items if image is not None]
    errors = {i: error for i, _, error in items if error is not None}
    images = torch.from_numpy(np.stack([image for _, image in good])).permute(0, 3, 1, 2) if good else None
    return [i for i, _ in good], images, errors


def predict(
    run: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    tta: bool | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    path_column: str | None = None,
    progress: bool = True,
    masks: str | os.PathLike | None = None,
    engine: str = "auto",
    outside_paths: bool = False,
    calibration: str | None = None,
    reject: bool = False,
) -> pd.DataFrame:
    """Predict the class of every input image with a run's best checkpoint.

    Args:
        run: a run directory (or a ``.ckpt`` file), or an ONNX model written by ``medtune export`` (predicted on
            onnxruntime, its inputs prepared from its metadata).
        inputs: image files, folders, glob patterns and CSV/TSV files with a path column.
        tta: average with the horizontal mirror (default: the run's ``tta``).
        batch_size: images per forward pass.
        workers: decoding processes (default: the run's ``workers``).
        path_column: the path column of CSV inputs (auto-detected when None).
        progress: a progress bar on a terminal or in a notebook.
        masks: a folder of masks named like the images, for a run trained with ``mask=...``.
        engine: ``auto`` (onnxruntime when the run has an exported model, ``RUN/export/model.onnx``, from its
            current best checkpoint; else PyTorch), ``torch`` or ``onnx`` (the run's exported model).
        outside_paths: let CSV inputs name images outside their folder with ``..``.
        calibration: the name of a calibration kept in the run (``medtune calibrate``): a conformal one adds
            ``set``, the ``|``-joined classes of each image's prediction set; a prevalence one gives the probabilities
            re-weighted to the prevalence it estimated and their labels; a threshold one the labels at its
            thresholds (``attrs["calibration"]`` says which).
        reject: withhold the answer (``label`` empty) of images the run's guard flags (``medtune guard``).

    Returns:
        One row per input: ``file``, ``label`` (None when unreadable), ``confidence``, ``prob_<class>`` for every
        class and ``error`` (None when read). A multi-label run gives ``labels`` instead of ``label`` and
        ``confidence``: the findings whose probability reaches their threshold (``thresholds.json``), joined by
        ``|``, an empty string for none (None when unreadable); ``attrs["warnings"]`` says when the run has no
        thresholds yet and 0.5 was used.

    >>> predict("runs/pneumoniamnist-tf_efficientnet_lite0", ["xrays/"]).head()  # doctest: +SKIP
    """
    opened = open_model(run, engine, tta)
    paths = collect_inputs(inputs, path_column, outside_paths)
    return predict_files(opened, paths, batch_size, workers, masks, progress, calibration, reject)


@dataclass(frozen=True)
class OpenModel:
    """A model opened once for many predictions (`open_model`).

    Attributes:
        source: the run directory or ``.onnx`` file it was opened from (where its guard and calibrations live).
        model: the trained network or the exported model.
        forward: uint8 ``(B, C, H, W)`` batches to probabilities ``(B, K)`` (`create_predictor`).
        guard: the run's guard, None when it has none.
    """

    source: Path
    model: TrainedModel | ExportedModel
    forward: Callable[[torch.Tensor], np.ndarray]
    guard: Any


def open_model(run: str | os.PathLike, engine: str = "auto", tta: bool | None = None) -> OpenModel:
    """Open a run or an exported model for prediction under `engine` (`choose_engine`), with its guard."""
    trained = load_model(choose_engine(run, engine))
    return OpenModel(Path(run), trained, create_predictor(trained, tta), guard_of(run, trained))


def predict_files(
    opened: OpenModel, paths: list[str], batch_size: int = 64, workers: int | None = None,
    masks: str | os.PathLike | None = None, progress: bool = True, calibration: str | None = None,
    reject: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """`predict`'s rows for image files (already collected), decoded by `workers` loader processes."""
    model = opened.model
    mask_files, missing = input_masks(paths, model, masks)
    dataset = _ImageFiles(paths, model.resolved.spec, mask_files, missing)
    workers = model.config.workers if workers is None else workers
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=min(workers, len(paths)), collate_fn=_collate)
    scored = score_batches(opened, loader, len(paths), progress)
    return decide(opened, paths, scored, calibration, reject)


def prepare_image(image: np.ndarray, model: TrainedModel | ExportedModel) -> np.ndarray:
    """The store preprocessing of one decoded image (``(H, W)`` or ``(H, W, C)``, any precision), exactly as a file
    of those pixels gets it in `predict`: uint8 ``(size, size, C)``.

    Raises:
        DataError: the run was trained with masks (an image in memory has none) and does not accept images without
            one (``mask_missing=whole``).
    """
    spec = model.resolved.spec
    if spec.mask != "none" and model.config.mask_missing != "whole":
        raise DataError(
            f"this run was trained with mask={spec.mask} and needs each image's mask, which an image in memory does "
            "not have: predict the image files with masks=FOLDER, or train with mask_missing=whole"
        )
    return prepare_masked(image, None, spec)


#: What `score_batches` gives back: probabilities ``(N, K)``, guard scores ``(N,)`` and errors by input index.
Scored = tuple[np.ndarray, np.ndarray, dict[int, str]]


def score_batches(
    opened: OpenModel, batches: Iterable[tuple[list[int], torch.Tensor | None, dict[int, str]]], total: int,
    progress: bool = True,
) -> Scored:  # fmt: skip
    """Probabilities and guard scores of ``(indices, uint8 (B, C, H, W) images, errors)`` batches of `total`
    inputs (NaN rows for inputs that failed), with a progress bar."""
    probs = np.full((total, len(opened.model.classes)), np.nan, dtype=np.float32)
    scores = np.full(total, np.nan)
    errors: dict[int, str] = {}
    with create_progress(progress) as bar:
        task = bar.add_task("predicting", total=total)
        for indices, images, failed in batches:
            errors.update(failed)
            if images is not None:
                probs[indices] = opened.forward(images)
                scores[indices] = opened.guard.score(images) if opened.guard is not None else np.nan
            bar.advance(task, len(indices) + len(failed))
    return probs, scores, errors


def decide(opened: OpenModel, names: list[str], scored: Scored, calibration: str | None, reject: bool) -> pd.DataFrame:
    """`predict`'s rows from scored inputs: the task's labels, then the named calibration and the guard's verdict."""
    probs, scores, errors = scored
    results = results_frame(names, opened.model, probs, errors)
    if calibration is not None:
        results = _with_calibration(results, opened.source, opened.model, calibration, probs)
    if opened.guard is not None:
        _with_guard(results, scores, reject)
    return results


def _with_guard(results: pd.DataFrame, scores: np.ndarray, reject: bool) -> None:
    """Add ``in_distribution`` and ``guard_score``; with `reject`, withhold the flagged images' answers."""
    read = ~np.isnan(scores)
    results["guard_score"] = np.where(read, scores, np.nan).round(6)
    results["in_distribution"] = [bool(s <= 1.0) if ok else None for s, ok in zip(scores, read, strict=True)]
    flagged = read & (scores > 1.0)
    answer = "labels" if "labels" in results else "label"
    if reject:
        results.loc[flagged, answer] = None
    results.attrs["guard"] = {"flagged": int(flagged.sum()), "read": int(read.sum()), "rejected": reject}


def _with_calibration(
    results: pd.DataFrame, run: str | os.PathLike, model: Any, name: str, probs: np.ndarray
) -> pd.DataFrame:
    """`results` under the calibration `name` kept in the run (of an exported model, its run): conformal sets, or
    the labels (and probabilities) of a prevalence or threshold calibration (`medtune.apply.recalibrate`)."""
    from medtune.apply.calibrate import load_calibration
    from medtune.apply.prevalence import calibration_home
    from medtune.apply.recalibrate import load_shift, shifted_results, unknown_calibration

    shift = load_shift(run, name)
    if shift is not None:
        return shifted_results(results, model, shift, probs)
    conformal = load_calibration(calibration_home(run), name)
    if conformal is None:
        raise DataError(unknown_calibration(run, name))
    return _with_sets(results, conformal, probs)


def _with_sets(results: pd.DataFrame, calibration: Any, probs: np.ndarray) -> pd.DataFrame:
    """`results` with each readable image's conformal prediction set (``set``: classes joined by ``|``)."""
    from medtune.apply.calibrate import prediction_sets

    name = calibration.name
    read = ~np.isnan(probs).any(axis=1)
    sets = prediction_sets(calibration, np.nan_to_num(probs))
    names = np.array(calibration.classes)
    if calibration.multilabel:  # per finding: certainly present ({present}), uncertain (both, or neither)
        certain, uncertain = sets[:, :, 1] & ~sets[:, :, 0], sets[:, :, 1] == sets[:, :, 0]
        for column, flags in (("certain", certain), ("uncertain", uncertain)):
            results[column] = [LABEL_SEP.join(names[row]) if ok else None for row, ok in zip(flags, read, strict=True)]
    else:
        results["set"] = [LABEL_SEP.join(names[row]) if ok else None for row, ok in zip(sets, read, strict=True)]
    results.attrs["calibration"] = {"name": name, "kind": "conformal", "coverage": calibration.coverage}
    return results


def results_frame(
    paths: list[str], model: TrainedModel | ExportedModel, probs: np.ndarray, errors: dict[int, str]
) -> pd.DataFrame:
    """The rows `predict` returns, from probabilities ``(N, K)`` (NaN rows for the inputs in `errors`), as the
    run's task decodes them (`medtune.tasks.Task.results`)."""
    return model.task.results(paths, model.classes, probs, errors, model.thresholds)


#: Inference engines of `predict`.
ENGINES = ("auto", "torch", "onnx")


def choose_engine(run: str | os.PathLike, engine: str = "auto") -> Path:
    """The model `predict` opens for `run` under `engine`: the run itself (PyTorch) or its exported ONNX model.

    Raises:
        ConfigError: an unknown engine.
        DataError: ``onnx`` for a run that has no exported model.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    path = Path(run)
    if engine == "torch" or path.suffix.lower() == ".onnx" or not path.is_dir():
        return path
    exported = Run(path).export_file
    if engine == "onnx" and not exported.is_file():
        raise DataError(f"{path} has no exported model ({exported}); run `medtune export {path}` first")
    return exported if exported.is_file() and (engine == "onnx" or _current(exported, Run(path))) else path


def _current(exported: Path, run: Run) -> bool:
    """True when the exported model came from the run's best checkpoint as it is now (its recorded hash)."""
    import json

    from medtune._io import file_sha256
    from medtune.runs.exported import parity_file

    try:
        recorded = json.loads(parity_file(exported).read_text(encoding="utf-8"))["checkpoint_sha256"]
    except (OSError, ValueError, KeyError):
        return False
    return run.best_checkpoint.is_file() and recorded == file_sha256(run.best_checkpoint)


def create_predictor(model: TrainedModel | ExportedModel, tta: bool | None) -> Callable[[torch.Tensor], np.ndarray]:
    """A function from a uint8 ``(B, C, H, W)`` batch to probabilities ``(B, K)``: the bare PyTorch network, or
    the ONNX graph on onnxruntime (which takes the store's NHWC layout)."""
    use_tta = model.config.tta if tta is None else tta
    if isinstance(model, TrainedModel):
        network = model.inference_model(tta=use_tta)
        return lambda images: predict_batches(network, [images])
    return lambda images: model.predict(images.permute(0, 2, 3, 1).numpy(), tta=use_tta)


#: Output formats of `write_predictions`.
FORMATS = ("auto", "json", "csv", "submission")


def write_predictions(results: pd.DataFrame, out: str | os.PathLike, fmt: str = "auto", probs: bool = False) -> Path:
    """Write predictions as JSON, CSV or a competition submission (atomically).

    - ``json``: ``{"file": "label"}`` (the seeds' ``process.py`` format), an unreadable file mapping to
      ``{"error": "..."}``; with `probs`, a list of records with every class probability.
    - ``csv``: a row per image with ``file``, ``label``, ``confidence``, a column per class and ``error``.
    - ``submission``: ``id,label`` with the file name without its extension as ``id`` (Kaggle's layout); with
      `probs`, a probability column per class instead of the label.

    Multi-label results (a ``labels`` column) write each image's findings: a list in JSON (``[]`` for none),
    the ``|``-joined string in CSV and submission files (empty for none).

    Returns:
        The file written.
    """
    from medtune._io import atomic_open, write_json

    out = Path(out)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = "csv" if out.suffix.lower() in (".csv", ".tsv") else "json"
    if fmt == "json":
        sets = "set" in results or "certain" in results
        write_json(out, prediction_records(results) if probs or sets else _mapping(results))
        return out
    if fmt == "submission":
        frame = pd.DataFrame({"id": [Path(f).stem for f in results["file"]]})
        if probs:
            for column in (c for c in results.columns if c.startswith("prob_")):
                frame[column.removeprefix("prob_")] = results[column]
        elif "labels" in results:
            frame["labels"] = results["labels"]
        else:
            frame["label"] = results["label"]
    else:
        frame = results
    with atomic_open(out, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, index=False)
    return out


def _findings(value: Any) -> list[str] | None:
    """A ``|``-joined findings cell as a list (``[]`` for none, None when unreadable)."""
    from medtune.data.table import split_labels

    return split_labels(value) if isinstance(value, str) else None


def _mapping(results: pd.DataFrame) -> dict[str, Any]:
    if "labels" in results:
        return {
            row.file: {"error": row.error} if isinstance(row.error, str) else _findings(row.labels)
            for row in results[["file", "labels", "error"]].itertuples(index=False)
        }
    return {
        row.file: {"error": row.error} if isinstance(row.error, str) else row.label
        for row in results[["file", "label", "error"]].itertuples(index=False)
    }


def prediction_records(results: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON record per image, as ``medtune predict --probs`` writes them: file, label (multi-label: labels),
    confidence and every probability, or the error."""
    prob_columns = [c for c in results.columns if c.startswith("prob_")]
    records = []
    multilabel = "labels" in results
    for row in results.to_dict("records"):
        if multilabel:
            record: dict[str, Any] = {"file": row["file"], "labels": _findings(row["labels"])}
        else:
            record = {"file": row["file"], "label": row["label"] if isinstance(row["label"], str) else None}
        if not isinstance(row["error"], str):
            for column in ("set", "certain", "uncertain"):  # conformal sets (``predict --sets``; per finding)
                if isinstance(row.get(column), str):
                    record[column] = [name for name in row[column].split(LABEL_SEP) if name]
            if not multilabel:
                record["confidence"] = float(row["confidence"])
            record["probabilities"] = {c.removeprefix("prob_"): float(row[c]) for c in prob_columns}
        else:
            record["error"] = row["error"]
        records.append(record)
    return records
