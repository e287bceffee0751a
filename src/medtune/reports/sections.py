"""The sections of a run's report page: training curves, ROC and precision-recall, confusion, calibration, the
per-class table, evaluations on other data, the data and the configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune.reports.page import Section, card_maker, create_plot, format_interval, format_value, html_table
from medtune.reports.plots import (
    plot_confusion,
    plot_history,
    plot_precision_recall,
    plot_reliability,
    plot_roc,
)
from medtune.reports.results import RunResults
from medtune.tasks import task_of_meta

#: Per-epoch curves drawn in a report: history.csv metric and its title.
CURVES: tuple[tuple[str, str], ...] = (
    ("loss", "Loss"),
    ("auc", "ROC AUC (macro)"),
    ("acc", "Accuracy"),
    ("balanced_acc", "Balanced accuracy"),
    ("dice", "Dice"),
    ("iou", "IoU (Jaccard)"),
)


def headline(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The headline numbers of a run: name, formatted value, and its interval (empty when there is none)."""
    intervals = metrics.get("intervals", {})
    card = card_maker(metrics)

    return [
        card("ROC AUC (macro)", metrics["macro"]["auc"], intervals.get("auc")),
        card("accuracy", metrics["accuracy"], intervals.get("accuracy")),
        card("balanced accuracy", metrics["balanced_accuracy"], intervals.get("balanced_accuracy")),
        card("F1 (macro)", metrics["macro"]["f1"], intervals.get("f1")),
        card("calibration error (ECE)", metrics.get("ece")),
        *(card(name, value, bounds) for name, value, bounds in task_of_meta(metrics).more_headline(metrics)),
        card("images evaluated", metrics["n"]),
    ]


def training_section(results: RunResults) -> Section:
    section = Section("training", "Training curves", "Train (dashed) and validation (solid) per epoch.")
    history = results.history
    if history.empty:
        section.notes.append("No epoch has finished yet, so there is no history.csv to draw.")
        return section
    best = results.best_epoch
    kept = results.run.read_kept()
    if kept:
        section.notes.append(f"Kept the weights of epoch {kept['epoch']} ({kept['kept']}): {kept['reason']}.")
    for metric, title in CURVES:
        if f"val_{metric}" in history and history[f"val_{metric}"].notna().any():
            figure = plot_history({results.name: history}, metric, title, best)
            section.plots.append(create_plot(f"curve_{metric}", figure, f"{title} per epoch, train and validation"))
    frozen = int(history["backbone_frozen"].astype(str).eq("True").sum()) if "backbone_frozen" in history else 0
    seconds = history["seconds"].sum() if "seconds" in history else float("nan")
    section.intro += (
        f" {len(history)} epoch(s) in {format_value(seconds / 60, 1)} min; the kept weights (monitor "
        f"{results.config.get('monitor', 'val_auc')}) are from epoch {best}."
    )
    if frozen:
        section.intro += f" The backbone was frozen for {frozen} epoch(s)."
    section.intro += _stages_note(results.config, history)
    return section


def _stages_note(config: dict[str, Any], history: pd.DataFrame) -> str:
    """What ``freeze=N``, ``lr_decay=`` and ``unfreeze=stages`` did: the stages held fixed and the share of
    parameters that learned."""
    freeze, decay = config.get("freeze", 0), config.get("lr_decay", 1.0)
    stepwise = config.get("unfreeze") == "stages"
    if not freeze and decay == 1.0 and not stepwise:
        return ""
    parts = []
    if stepwise:
        share = ", ".join(f"{100 * v:.0f}%" for v in history.get("trainable", pd.Series(dtype=float)).dropna())
        parts.append(f"unfreeze=stages unfroze one backbone stage per epoch after the head's epochs (share of "
                     f"parameters learning per epoch: {share})")  # fmt: skip
    if freeze:
        held = "the whole backbone" if freeze == "all" else f"the stem and the first {freeze} stage(s)"
        parts.append(f"freeze={freeze} held {held} fixed")
    if decay != 1.0:
        parts.append(f"lr_decay={decay} gave each earlier stage {decay} times the next one's learning rate")
    share = history["trainable"].dropna() if "trainable" in history else pd.Series(dtype=float)
    learned = f" ({format_value(100 * share.iloc[-1], 1)}% of the parameters learned)" if len(share) else ""
    return " Stages: " + "; ".join(parts) + learned + "."


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
    roc.plots.append(create_plot("roc", plot_roc(targets, probs, classes, metrics), "ROC curve per class"))
    pr = Section(
        "pr", "Precision-recall curves", "Average precision per class; the dotted line is its prevalence.", half=True
    )
    pr.plots.append(
        create_plot("pr", plot_precision_recall(targets, probs, classes), "precision-recall curve per class")
    )
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    confusion = Section("confusion", "Confusion matrix", "True classes in rows, predicted classes in columns.")
    confusion.plots.append(create_plot("confusion", plot_confusion(matrix, classes, False), "confusion matrix, counts"))
    confusion.plots.append(
        create_plot("confusion_normalised", plot_confusion(matrix, classes, True), "confusion matrix, row-normalised")
    )
    calibration = Section(
        "calibration",
        "Calibration",
        "How far the predicted confidence is from the observed accuracy. Bars under the diagonal are overconfident. "
        f"Log loss {format_value(metrics.get('log_loss'))}.",
        half=True,
    )
    calibration.plots.append(
        create_plot("reliability", plot_reliability(targets, probs, metrics.get("ece")), "reliability diagram")
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
            "precision": format_value(values["precision"]),
            "recall (sensitivity)": format_interval(values["recall"], interval.get("recall")),
            "F1": format_interval(values["f1"], interval.get("f1")),
            "ROC AUC": format_interval(values["auc"], interval.get("auc")),
        })  # fmt: skip
    intervals = metrics.get("intervals", {})
    for average in ("macro", "weighted"):
        values = metrics[average]
        rows.append({
            "class": f"{average} average",
            "images": metrics["n"],
            "precision": format_value(values["precision"]),
            "recall (sensitivity)": format_value(values["recall"]),
            "F1": format_interval(values["f1"], intervals.get("f1")) if average == "macro"
            else format_value(values["f1"]),
            "ROC AUC": format_interval(values.get("auc"), intervals.get("auc")) if average == "macro" else "",
        })  # fmt: skip
    section = Section("per-class", "Per-class results", "Brackets hold the bootstrap interval.")
    section.tables.append(html_table(pd.DataFrame(rows)))
    section.notes.extend(metrics.get("warnings", []))
    return section


def evaluations_section(results: RunResults) -> Section | None:
    """The run's evaluations on other data (``RUN/evaluations/*/metrics.json``, written by ``medtune evaluate RUN
    DATA``) beside its own test split: how well it carries to another hospital or device. None when there are
    none."""
    found = sorted(results.run.evaluations.glob("*/metrics.json"))
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
    intro = (
        "The same checkpoint on other labelled data (medtune evaluate RUN DATA, medtune crossdomain), labels matched "
        "by name or through the synonym table."
    )
    section = Section("evaluations", "Other data", intro, notes=notes)
    section.tables.append(html_table(pd.DataFrame(rows)))
    return section


def _evaluation_row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    if not task_of_meta(metrics).labelled:
        from medtune.reports.segment import segment_evaluation_row

        return segment_evaluation_row(name, metrics)
    intervals = metrics.get("intervals", {})
    return {
        "evaluation": name,
        "data": Path(str(metrics.get("data", ""))).name,
        "images": metrics["n"],
        "ROC AUC (macro)": format_interval(metrics["macro"]["auc"], intervals.get("auc")),
        "accuracy": format_interval(metrics["accuracy"], intervals.get("accuracy")),
        "balanced accuracy": format_interval(metrics["balanced_accuracy"], intervals.get("balanced_accuracy")),
        "ECE": format_value(metrics.get("ece")),
    }


def config_section(results: RunResults) -> Section:
    section = Section("config", "Configuration", f"The resolved configuration ({results.run.config_file.name}).")
    section.pairs = [(key, config_value(value)) for key, value in results.config.items()]
    return section


def config_value(value: Any) -> str:
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
    if not results.task.labelled:  # a segmenter, no labels: images per split
        per_split = split["split"].value_counts()
        order = [s for s in ("train", "val", "test") if s in per_split.index]
        section.tables.append(html_table(pd.DataFrame([{**{s: int(per_split[s]) for s in order},
                                                        "total": len(split)}])))  # fmt: skip
        section.intro += f" Masks: {config.get('masks')}."
        return section
    counts = pd.crosstab(split["label"], split["split"], margins=True, margins_name="total")
    order = [s for s in ("train", "val", "test", "total") if s in counts.columns]
    if results.multilabel:  # images per finding (an image may count for several), then images per split
        from medtune.reports.findings import finding_counts

        section.tables.append(html_table(finding_counts(split)))
    else:
        section.tables.append(
            html_table(counts[order].rename_axis(index=None, columns=None).rename_axis("class").reset_index())
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
