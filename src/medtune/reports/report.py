"""``medtune report``: one self-contained HTML page per run, a comparison page for several runs, and a PNG per plot.

A page holds its plots as embedded PNG images and its style inline, with no script and no external file, so it
opens anywhere without a network and can be mailed as one file. The PNGs are also written beside the page
(``RUN/report/*.png``) for slides and papers.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune import __version__
from medtune._io import atomic_open, write_text
from medtune.errors import DataError
from medtune.reports.plots import (
    Tile,
    figure_png,
    plot_confusion,
    plot_history,
    plot_precision_recall,
    plot_reliability,
    plot_roc,
    plot_tiles,
)
from medtune.reports.results import RunResults, read_results

#: Per-epoch curves drawn in a report: history.csv metric and its title.
CURVES: tuple[tuple[str, str], ...] = (
    ("loss", "Loss"),
    ("auc", "ROC AUC (macro)"),
    ("acc", "Accuracy"),
    ("balanced_acc", "Balanced accuracy"),
)


@dataclass
class Plot:
    """One plot of a page: its file name (without ``.png``), PNG bytes and a text alternative."""

    name: str
    png: bytes
    alt: str

    @property
    def src(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    """One section of a page: a title, an optional introduction, plots, HTML tables and notes."""

    id: str
    title: str
    intro: str = ""
    plots: list[Plot] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    half: bool = False
    wide_plots: bool = False


def _plot(name: str, figure: Any, alt: str) -> Plot:
    return Plot(name, figure_png(figure), alt)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _with_interval(value: Any, interval: Sequence[Any] | None) -> str:
    if interval and None not in interval and value is not None:
        return f"{_fmt(value)} [{_fmt(interval[0])}, {_fmt(interval[1])}]"
    return _fmt(value)


def _table(frame: pd.DataFrame, index: bool = False) -> str:
    return frame.to_html(index=index, border=0, classes="data", na_rep="", escape=True)


# ---------------------------------------------------------------------------------------------------- sections


def headline(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The headline numbers of a run: name, formatted value, and its interval (empty when there is none)."""
    intervals = metrics.get("intervals", {})
    level = f"{round(100 * metrics.get('confidence', 0.95))}% CI"

    def card(name: str, value: Any, interval: Sequence[Any] | None = None) -> tuple[str, str, str]:
        shown = f"{level} {_fmt(interval[0])} to {_fmt(interval[1])}" if interval and None not in interval else ""
        return name, _fmt(value), shown

    return [
        card("ROC AUC (macro)", metrics["macro"]["auc"], intervals.get("auc")),
        card("accuracy", metrics["accuracy"], intervals.get("accuracy")),
        card("balanced accuracy", metrics["balanced_accuracy"], intervals.get("balanced_accuracy")),
        card("F1 (macro)", metrics["macro"]["f1"], intervals.get("f1")),
        card("calibration error (ECE)", metrics.get("ece")),
        card("images evaluated", metrics["n"]),
    ]


def training_section(results: RunResults) -> Section:
    section = Section("training", "Training curves", "Train (dashed) and validation (solid) per epoch.")
    history = results.history
    if history.empty:
        section.notes.append("No epoch has finished yet, so there is no history.csv to draw.")
        return section
    best = results.best_epoch
    for metric, title in CURVES:
        if f"val_{metric}" in history and history[f"val_{metric}"].notna().any():
            figure = plot_history({results.name: history}, metric, title, best)
            section.plots.append(_plot(f"curve_{metric}", figure, f"{title} per epoch, train and validation"))
    frozen = int(history["backbone_frozen"].astype(str).eq("True").sum()) if "backbone_frozen" in history else 0
    seconds = history["seconds"].sum() if "seconds" in history else float("nan")
    section.intro += (
        f" {len(history)} epoch(s) in {_fmt(seconds / 60, 1)} min; the best checkpoint (by "
        f"{results.config.get('monitor', 'val_auc')}) is from epoch {best}."
    )
    if frozen:
        section.intro += f" The backbone was frozen for {frozen} epoch(s)."
    return section


def evaluation_sections(results: RunResults, metrics: dict[str, Any]) -> list[Section]:
    """ROC, precision-recall, confusion matrices, reliability and the per-class table of the evaluated split."""
    targets, probs = results.scores()
    classes = results.classes
    split = ", ".join(metrics.get("split", ["test"]))
    confidence = round(100 * metrics.get("confidence", 0.95))
    roc = Section(
        "roc",
        "ROC curves",
        f"On the {split} split ({metrics['n']} images), one class against the rest; AUC with its {confidence}% "
        f"bootstrap interval ({metrics.get('n_bootstrap', 0)} resamples).",
        half=True,
    )
    roc.plots.append(_plot("roc", plot_roc(targets, probs, classes, metrics), "ROC curve per class"))
    pr = Section(
        "pr", "Precision-recall curves", "Average precision per class; the dotted line is its prevalence.", half=True
    )
    pr.plots.append(_plot("pr", plot_precision_recall(targets, probs, classes), "precision-recall curve per class"))
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    confusion = Section("confusion", "Confusion matrix", "True classes in rows, predicted classes in columns.")
    confusion.plots.append(_plot("confusion", plot_confusion(matrix, classes, False), "confusion matrix, counts"))
    confusion.plots.append(
        _plot("confusion_normalised", plot_confusion(matrix, classes, True), "confusion matrix, row-normalised")
    )
    calibration = Section(
        "calibration",
        "Calibration",
        "How far the predicted confidence is from the observed accuracy. Bars under the diagonal are overconfident. "
        f"Log loss {_fmt(metrics.get('log_loss'))}.",
        half=True,
    )
    calibration.plots.append(
        _plot("reliability", plot_reliability(targets, probs, metrics.get("ece")), "reliability diagram")
    )
    return [roc, pr, confusion, per_class_section(metrics), calibration]


def per_class_section(metrics: dict[str, Any]) -> Section:
    """Support, precision, recall, F1 and AUC per class, with intervals, then the macro and weighted rows."""
    per_class = metrics.get("intervals", {}).get("per_class", {})
    rows = []
    for name, values in metrics["per_class"].items():
        interval = per_class.get(name, {})
        rows.append({
            "class": name,
            "images": values["support"],
            "precision": _fmt(values["precision"]),
            "recall (sensitivity)": _with_interval(values["recall"], interval.get("recall")),
            "F1": _with_interval(values["f1"], interval.get("f1")),
            "ROC AUC": _with_interval(values["auc"], interval.get("auc")),
        })  # fmt: skip
    intervals = metrics.get("intervals", {})
    for average in ("macro", "weighted"):
        values = metrics[average]
        rows.append({
            "class": f"{average} average",
            "images": metrics["n"],
            "precision": _fmt(values["precision"]),
            "recall (sensitivity)": _fmt(values["recall"]),
            "F1": _with_interval(values["f1"], intervals.get("f1")) if average == "macro" else _fmt(values["f1"]),
            "ROC AUC": _with_interval(values.get("auc"), intervals.get("auc")) if average == "macro" else "",
        })  # fmt: skip
    section = Section("per-class", "Per-class results", "Brackets hold the bootstrap interval.")
    section.tables.append(_table(pd.DataFrame(rows)))
    section.notes.extend(metrics.get("warnings", []))
    return section


def evaluations_section(results: RunResults) -> Section | None:
    """The run's evaluations on other data (``RUN/evaluations/*/metrics.json``, written by ``medtune evaluate RUN
    DATA``) beside its own test split: how well it carries to another hospital or device. None when there are
    none."""
    found = sorted(results.run.path.glob("evaluations/*/metrics.json"))
    if not found:
        return None
    own = {**results.metrics, "data": results.config.get("data", "")} if results.metrics else None
    rows = [_evaluation_row("own test split", own)] if own else []
    notes = []
    for path in found:
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
            rows.append(_evaluation_row(path.parent.name, metrics))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            notes.append(f"{path} could not be read ({exc}); run `medtune evaluate` again to rewrite it")
        else:
            for label, count in (metrics.get("unmatched_labels") or {}).items():
                notes.append(
                    f"{path.parent.name}: {count} image(s) labelled {label!r} match no class and were left out"
                )
    intro = "The same checkpoint on other labelled data (medtune evaluate RUN DATA), labels matched by name."
    section = Section("evaluations", "Other data", intro, notes=notes)
    section.tables.append(_table(pd.DataFrame(rows)))
    return section


def _evaluation_row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    intervals = metrics.get("intervals", {})
    return {
        "evaluation": name,
        "data": Path(str(metrics.get("data", ""))).name,
        "images": metrics["n"],
        "ROC AUC (macro)": _with_interval(metrics["macro"]["auc"], intervals.get("auc")),
        "accuracy": _with_interval(metrics["accuracy"], intervals.get("accuracy")),
        "balanced accuracy": _with_interval(metrics["balanced_accuracy"], intervals.get("balanced_accuracy")),
        "ECE": _fmt(metrics.get("ece")),
    }


def config_section(results: RunResults) -> Section:
    section = Section("config", "Configuration", f"The resolved configuration ({results.run.config_file.name}).")
    section.pairs = [(key, _config_value(value)) for key, value in results.config.items()]
    return section


def _config_value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def data_section(results: RunResults) -> Section:
    """Images per class and split, groups (patients) per split, the source and the working size."""
    config = results.config
    section = Section(
        "data",
        "Data",
        half=True,
        intro=f"Source {config.get('data')} ({config.get('reader', 'auto')} reader); images were prepared at "
        f"{config.get('image_size')} px with {config.get('channels')} channel(s), resized by {config.get('resize')}.",
    )
    split = results.split
    if split is None:
        section.notes.append("No split.csv: the run has not started training yet.")
        return section
    counts = pd.crosstab(split["label"], split["split"], margins=True, margins_name="total")
    order = [s for s in ("train", "val", "test", "total") if s in counts.columns]
    if results.multilabel:  # images per finding (an image may count for several), then images per split
        from medtune.reports.findings import finding_counts

        section.tables.append(_table(finding_counts(split)))
    else:
        section.tables.append(
            _table(counts[order].rename_axis(index=None, columns=None).rename_axis("class").reset_index())
        )
    groups = split["group"].dropna() if "group" in split else pd.Series(dtype=str)
    if not groups.empty:
        per_split = split.dropna(subset=["group"]).groupby("split")["group"].nunique()
        section.intro += (
            " Split by group, no group in two splits ("
            + ", ".join(f"{s}: {per_split.get(s, 0)} groups" for s in order if s != "total")
            + ")."
        )
    return section


# ----------------------------------------------------------------------------------------------------- mistakes


def confident_mistakes(predictions: pd.DataFrame, classes: Sequence[str], count: int) -> pd.DataFrame:
    """The `count` wrong predictions with the highest predicted probability, most confident first."""
    wrong = predictions[predictions["label"].notna() & (predictions["label"] != predictions["predicted"])].copy()
    columns = [f"prob_{c}" for c in classes]
    wrong["confidence"] = wrong[columns].max(axis=1)
    return wrong.sort_values("confidence", ascending=False, kind="stable").head(count)


def mistakes_section(results: RunResults, count: int, method: str, layer: str | None = None) -> Section:
    """The most confident mistakes as thumbnails with Grad-CAM overlays for the predicted class."""
    section = Section(
        "mistakes",
        "Most confident mistakes",
        f"The {count} wrong predictions with the highest confidence, as the network saw them, each with its "
        f"{method} map for the predicted class (red: where the evidence for that class lies).",
        wide_plots=True,
    )
    if results.predictions is None:
        section.notes.append("No predictions.csv yet.")
        return section
    wrong = confident_mistakes(results.predictions, results.classes, count)
    if wrong.empty:
        section.notes.append("No mistakes on the evaluated split.")
        return section
    try:
        tiles = _mistake_tiles(results, wrong, method, layer)
    except (DataError, OSError) as exc:  # the data is unreadable; a bad --method or --layer is an error
        section.notes.append(
            f"The images could not be shown: {exc}. If the data has moved, set data: in "
            f"{results.run.config_file} to its new place and run `medtune report {results.run.path}` again."
        )
        return section
    figure = plot_tiles(tiles, f"{len(tiles)} most confident mistakes (true -> predicted, confidence)")
    section.plots.append(_plot("mistakes", figure, "most confident mistakes with Grad-CAM overlays"))
    listing = wrong[["id", "label", "predicted", "confidence"]].assign(confidence=wrong["confidence"].round(3))
    section.tables.append(_table(listing.rename(columns={"label": "true"})))
    return section


def predicted_class_cams(
    results: RunResults, rows: pd.DataFrame, method: str, layer: str | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """The prepared images of `rows` (predictions.csv rows) and their class activation maps for the predicted class,
    from the run's best checkpoint."""
    import torch

    from medtune.config import Config
    from medtune.engine.run import load_trained
    from medtune.explain import compute_cams

    trained = load_trained(results.run.path)
    # where the data lives comes from config.yaml, so that a moved dataset is found again by editing `data:` there
    images = load_prepared(Config(**results.config), rows["id"].tolist())
    targets = [trained.classes.index(p) for p in rows["predicted"]]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return images, compute_cams(trained.model, trained.preprocessing, batch, targets, method, layer)


def _mistake_tiles(results: RunResults, wrong: pd.DataFrame, method: str, layer: str | None) -> list[Tile]:
    from medtune.explain import create_overlay

    images, heat = predicted_class_cams(results, wrong, method, layer)
    tiles = []
    for image, cam, row in zip(images, heat, wrong.itertuples(index=False), strict=True):
        caption = f"{row.label} -> {row.predicted} {row.confidence:.2f}\n{_short(str(row.id))}"
        image = image[..., : int(results.config["channels"])]  # without a mask channel
        tiles.append(Tile(image, caption, create_overlay(image, cam)))
    return tiles


def attention_section(
    results: RunResults, masks: Path, method: str, layer: str | None = None, sample: int = 64
) -> Section:
    """How much of the class activation map lies inside each image's mask (the lungs, say), for up to `sample`
    evaluated images that have one: a check of whether the model looks at the organ or at text, markers and
    borders."""
    section = Section(
        "attention",
        "Where the model looks",
        f"Share of the {method} energy (predicted class) inside each image's mask from {masks}. A map spread "
        "evenly would score the mask's area; much less means the evidence lies outside the mask.",
        wide_plots=True,
    )
    rows = _rows_with_masks(results.predictions, masks, sample)
    if rows.empty:
        section.notes.append(f"No evaluated image has a mask of the same file name in {masks}.")
        return section
    try:
        energy, area, tiles = _mask_energies(results, rows, method, layer)
    except (DataError, OSError) as exc:  # the data is unreadable; a bad --method or --layer is an error
        section.notes.append(f"The maps could not be computed: {exc}")
        return section
    rows = rows.assign(energy=energy, area=area)
    section.intro += (
        f" {len(rows)} image(s): mean share inside {_fmt(float(np.nanmean(energy)))}, mean mask area "
        f"{_fmt(float(area.mean()))}."
    )
    groups = [("all", rows), *((f"true {k}", g) for k, g in rows.groupby("label")),
              ("correct", rows[rows["correct"]]), ("wrong", rows[~rows["correct"]])]  # fmt: skip
    table = pd.DataFrame(
        [
            {
                "images": name,
                "count": len(g),
                "energy inside the mask": _fmt(g["energy"].mean()),
                "mask area (even spread)": _fmt(g["area"].mean()),
            }
            for name, g in groups
            if len(g)
        ]
    )
    section.tables.append(_table(table))
    worst = np.argsort(np.nan_to_num(energy, nan=1.0))[:8]
    figure = plot_tiles([tiles[i] for i in worst], "least energy inside the mask (share inside / mask area)")
    section.plots.append(_plot("attention", figure, "images whose map lies most outside their mask"))
    return section


def _rows_with_masks(predictions: pd.DataFrame | None, masks: Path, sample: int) -> pd.DataFrame:
    from medtune.data.masks import find_mask

    if predictions is None or "path" not in predictions:
        return pd.DataFrame()
    found = [find_mask(masks, Path(str(p))) for p in predictions["path"]]
    rows = predictions.assign(mask=[str(f) if f else None for f in found]).dropna(subset=["mask"])
    if len(rows) > sample:  # evenly spread over the split, so every class is represented as it occurs
        rows = rows.iloc[np.linspace(0, len(rows) - 1, sample).round().astype(int)]
    return rows


def _mask_energies(
    results: RunResults, rows: pd.DataFrame, method: str, layer: str | None
) -> tuple[np.ndarray, np.ndarray, list[Tile]]:
    from medtune.config import Config
    from medtune.engine.explain import read_mask
    from medtune.explain import compute_mask_energy, create_overlay

    images, heat = predicted_class_cams(results, rows, method, layer)
    config = Config(**results.config)
    masks_read = [read_mask(Path(m), config) for m in rows["mask"]]
    energy = np.array([compute_mask_energy(h, m) for h, m in zip(heat, masks_read, strict=True)])
    area = np.array([(m > 0).mean() for m in masks_read])
    tiles = [
        Tile(image, f"{e:.2f} / {a:.2f} {row.predicted}\n{_short(Path(str(row.path)).name)}", create_overlay(image, h))
        for image, h, e, a, row in zip(images, heat, energy, area, rows.itertuples(index=False), strict=True)
    ]
    return energy, area, tiles


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def load_prepared(config: Any, ids: Sequence[str]) -> list[np.ndarray]:
    """The images of `ids` from the run's data, decoded and prepared exactly as the store holds them
    (``(size, size, channels)`` uint8).

    Raises:
        DataError: the data is no longer where the run read it, or an id is not in it.
    """
    from medtune.data import read_table
    from medtune.data._decode import decode_entries, table_entries
    from medtune.data.masks import attach_masks, prepare_masked
    from medtune.data.store import StoreSpec

    spec = StoreSpec.from_config(config)
    table = attach_masks(read_table(config.data, config), config)
    position = {str(v): i for i, v in enumerate(table.frame["id"])}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DataError(f"{len(missing)} image(s) of the run, e.g. {missing[0]!r}, are no longer in {config.data}")
    part = table.with_frame(table.frame.iloc[[position[i] for i in ids]])
    entries = table_entries(part)
    decoded = dict((entry.position, image) for entry, image in decode_entries(entries, spec.window, spec.frame))
    out = []
    for n in range(len(ids)):
        image = decoded[n]
        if isinstance(image, Exception):
            raise DataError(f"cannot read {ids[n]}: {image}")
        out.append(prepare_masked(image, entries[n].mask, spec))
    return out


# ---------------------------------------------------------------------------------------------------- pages


def _template(name: str) -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("medtune.reports", "templates"), autoescape=select_autoescape())
    return environment.get_template(name)


def _write_page(out: Path, template: str, sections: list[Section], **context: Any) -> Path:
    """Render the page into `out` and each plot into ``<out stem>/<plot>.png`` beside it (atomically)."""
    folder = out.with_suffix("")
    for section in sections:
        for plot in section.plots:
            with atomic_open(folder / f"{plot.name}.png", "wb") as f:
                f.write(plot.png)
    created = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    html = _template(template).render(sections=sections, version=__version__, created=created, **context)
    write_text(out, html)
    return out


def create_report(run: str | os.PathLike, out: str | os.PathLike | None = None, mistakes: int = 12,
                  method: str = "gradcam", masks: str | os.PathLike | None = None,
                  layer: str | None = None) -> Path:  # fmt: skip
    """Write a run's report page (``RUN/report.html`` by default) and its plots (``RUN/report/*.png``).

    Args:
        run: the run directory.
        out: the page to write.
        mistakes: how many of the most confident mistakes to show (0: none).
        method: the class activation map of the mistakes (see ``medtune explain``).
        masks: a folder of masks named like the images (``lungseg/masks``): adds the share of each map inside its
            mask, for up to 64 evaluated images.
        layer: the backbone layer of the maps (default: chosen as ``medtune explain`` chooses it).

    Returns:
        The page written.

    Raises:
        DataError: `run` is not a run directory or its files are unreadable.

    >>> create_report("runs/pneumoniamnist-tf_efficientnet_lite0")  # doctest: +SKIP
    PosixPath('runs/pneumoniamnist-tf_efficientnet_lite0/report.html')
    """
    from medtune.engine.explain import check_mask_folder

    mask_folder = check_mask_folder(masks)  # a missing folder or a misspelt method fails before any work
    if mistakes > 0 or mask_folder is not None:
        from medtune.explain import METHODS

        METHODS.get(method)
    results = read_results(run)
    sections = [training_section(results)]
    if results.metrics is not None and results.multilabel:
        from medtune.reports.findings import findings_sections

        sections += findings_sections(results, results.metrics, mistakes, method, layer, mask_folder)
    elif results.metrics is not None:
        evaluation = evaluation_sections(results, results.metrics)
        if mistakes > 0:
            evaluation.insert(-1, mistakes_section(results, mistakes, method, layer))
        if mask_folder is not None:
            evaluation.insert(-1, attention_section(results, mask_folder, method, layer))
        sections += evaluation
    else:
        sections.append(Section("evaluation", "Evaluation", notes=[
            f"Not evaluated yet: finish training, or run `medtune evaluate {results.run.path}`."]))  # fmt: skip
    sections += [s for s in (evaluations_section(results), data_section(results), config_section(results)) if s]
    target = Path(out) if out else results.run.path / "report.html"
    cards = _cards(results)
    return _write_page(target, "report.html", sections, title=f"{results.name}", results=results, cards=cards)


def _cards(results: RunResults) -> list[tuple[str, str, str]]:
    if not results.metrics:
        return []
    if results.multilabel:
        from medtune.reports.findings import findings_headline

        return findings_headline(results.metrics)
    return headline(results.metrics)


def comparison_table(runs: Sequence[RunResults]) -> pd.DataFrame:
    """One row per run: the configuration keys that differ between runs, then its scores and time."""
    from medtune.engine.run import RUNTIME_KEYS

    keys = sorted({k for r in runs for k in r.config} - RUNTIME_KEYS - {"name"})
    differing = [k for k in keys if len({_config_value(r.config.get(k)) for r in runs}) > 1]
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run": _label(r, runs)}
        row.update({k: _config_value(r.config.get(k)) for k in differing})
        if "data" in row:  # the last two parts of the path say which data; the whole path is in each run's page
            row["data"] = "/".join(Path(row["data"]).parts[-2:])
        history, metrics = r.history, r.metrics or {}
        best = history["val_auc"].max() if "val_auc" in history and not history.empty else None
        intervals = metrics.get("intervals", {})
        row.update({
            "epochs": len(history),
            "best val AUC": _fmt(best),
            "test AUC": _with_interval(metrics["macro"]["auc"], intervals.get("auc")) if metrics else "n/a",
            "test accuracy": _with_interval(metrics.get("accuracy"), intervals.get("accuracy")) if metrics else "n/a",
            "balanced accuracy": _fmt(metrics.get("balanced_accuracy")),
            "F1 (macro)": _fmt(metrics["macro"]["f1"]) if metrics else "n/a",
            "ECE": _fmt(metrics.get("ece")),
            "minutes": _fmt(history["seconds"].sum() / 60, 1) if "seconds" in history else "n/a",
        })  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def create_comparison(runs: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> Path:
    """Write a page comparing runs: their curves overlaid and a table of differing keys and scores.

    Args:
        runs: two or more run directories.
        out: the page (default ``comparison.html`` in the runs' common folder).

    Returns:
        The page written.
    """
    results = [read_results(r) for r in runs]
    if len(results) < 2:
        raise DataError("a comparison needs two or more runs; for one run, `medtune report RUN` writes its page")
    names = [_label(r, results) for r in results]
    histories = {_label(r, results): r.history for r in results if not r.history.empty}
    curves = Section("curves", "Training curves", "Train (dashed) and validation (solid) per epoch, a colour per run.")
    for metric, title in CURVES:
        if any(f"val_{metric}" in h for h in histories.values()):
            curves.plots.append(_plot(f"curve_{metric}", plot_history(histories, metric, title), f"{title}, all runs"))
    table = Section("comparison", "Runs side by side", "Keys that differ between the runs, then the scores on each "
                    "run's evaluated split with bootstrap intervals.")  # fmt: skip
    table.tables.append(_table(comparison_table(results)))
    common = Path(os.path.commonpath([str(r.run.path.resolve()) for r in results]))
    target = Path(out) if out else common / "comparison.html"
    title = "comparison of " + ", ".join(names)
    return _write_page(target, "report.html", [table, curves], title=title, results=None, cards=[])


def _label(run: RunResults, runs: Sequence[RunResults]) -> str:
    same = [r for r in runs if r.name == run.name]
    return run.name if len(same) == 1 else f"{run.run.path.parent.name}/{run.name}"
