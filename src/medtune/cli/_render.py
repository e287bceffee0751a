"""Rich tables for metrics (train and evaluate print the same one)."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table as RichTable

from medtune.cli._common import console


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def interval(value: Any, bounds: Any) -> str:
    """``0.972 [0.955, 0.985]``: a value with its interval; the value alone when there is no interval (or a bound
    is missing), ``-`` when there is no value."""
    if _missing(value):
        return "-"
    if not bounds or _missing(bounds[0]) or _missing(bounds[1]):
        return _num(float(value))
    return f"{float(value):.3f} [{float(bounds[0]):.3f}, {float(bounds[1]):.3f}]"


def render_metrics(metrics: dict[str, Any], title: str) -> None:
    """Print the headline metrics with their intervals, and the per-class table (per-label for multi-label)."""
    if metrics.get("multilabel"):
        render_findings(metrics, title)
        return
    from medtune.tasks import task_of_meta  # imports torch: not when the command line starts

    if not task_of_meta(metrics).labelled:  # a segmenter: Dice, IoU and HD95
        render_segmentation(metrics, title)
        return
    intervals = metrics.get("intervals", {})
    macro = metrics.get("macro", {})
    level = round(100 * metrics.get("confidence", 0.95))
    head = RichTable(title=f"{title} ({metrics.get('n')} images; {level}% bootstrap intervals)", title_justify="left")
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_row("ROC AUC (macro)", interval(macro.get("auc"), intervals.get("auc")))
    head.add_row("accuracy", interval(metrics.get("accuracy"), intervals.get("accuracy")))
    head.add_row("balanced accuracy", interval(metrics.get("balanced_accuracy"), intervals.get("balanced_accuracy")))
    head.add_row("F1 (macro)", interval(macro.get("f1"), intervals.get("f1")))
    head.add_row("log loss", _num(metrics.get("log_loss")))
    head.add_row("calibration error (ECE)", _num(metrics.get("ece")))
    for name, value, bounds in task_of_meta(metrics).more_headline(metrics):  # ordinal grades: kappa, grade error
        head.add_row(name, interval(value, bounds))
    console.print(head)
    per_class = RichTable(title="Per class", title_justify="left")
    for column in ("class", "precision", "recall", "F1", "AUC", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    class_intervals = intervals.get("per_class", {})
    for name, row in metrics.get("per_class", {}).items():
        bounds = class_intervals.get(name, {})
        per_class.add_row(
            name,
            _num(row.get("precision")),
            interval(row.get("recall"), bounds.get("recall")),
            interval(row.get("f1"), bounds.get("f1")),
            interval(row.get("auc"), bounds.get("auc")),
            str(row.get("support")),
        )
    console.print(per_class)
    matrix = metrics.get("confusion_matrix")
    if matrix:
        grid = RichTable(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
        grid.add_column("")
        for name in matrix["labels"]:
            grid.add_column(name, justify="right")
        for name, row in zip(matrix["labels"], matrix["matrix"], strict=True):
            grid.add_row(name, *(str(v) for v in row))
        console.print(grid)
    for warning in metrics.get("warnings", []):
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)


def render_findings(metrics: dict[str, Any], title: str) -> None:
    """Print a multi-label evaluation: macro and micro AUC, exact-match and balanced accuracy, then one row per
    label with its prevalence, AUC, threshold and the precision / recall / F1 it gives."""
    intervals = metrics.get("intervals", {})
    level = round(100 * metrics.get("confidence", 0.95))
    head = RichTable(title=f"{title} ({metrics.get('n')} images; {level}% bootstrap intervals)", title_justify="left")
    head.add_column("metric")
    head.add_column("value", justify="right")
    head.add_row("ROC AUC (macro over labels)", interval(metrics["macro"].get("auc"), intervals.get("auc")))
    head.add_row("ROC AUC (micro, pooled)", interval(metrics["micro"].get("auc"), intervals.get("micro_auc")))
    head.add_row("exact-match accuracy", interval(metrics.get("accuracy"), intervals.get("accuracy")))
    head.add_row("balanced accuracy (label mean)", interval(metrics.get("balanced_accuracy"),
                                                             intervals.get("balanced_accuracy")))  # fmt: skip
    head.add_row("F1 (macro, at thresholds)", interval(metrics["macro"].get("f1"), intervals.get("f1")))
    head.add_row("F1 (micro, at thresholds)", _num(metrics["micro"].get("f1")))
    console.print(head)
    method = metrics.get("threshold_method") or "0.5"
    table = RichTable(title=f"Per label (thresholds: {method})", title_justify="left")
    for column in ("label", "prevalence", "AUC", "threshold", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    bounds = intervals.get("per_class", {})
    for name, row in metrics.get("per_class", {}).items():
        table.add_row(
            name,
            _num(row.get("prevalence")),
            interval(row.get("auc"), bounds.get(name, {}).get("auc")),
            _num(row.get("threshold")),
            _num(row.get("precision")),
            _num(row.get("recall")),
            _num(row.get("f1")),
            str(row.get("support")),
        )
    console.print(table)
    for warning in metrics.get("warnings", []):
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)


def render_segmentation(metrics: dict[str, Any], title: str) -> None:
    """Print a segmentation evaluation: mean and median Dice, IoU and HD95 over the images, with intervals."""
    intervals = metrics.get("intervals", {})
    level = round(100 * metrics.get("confidence", 0.95))
    size = metrics.get("image_size")
    title = f"{title} ({metrics.get('n')} images at {size} px; {level}% bootstrap intervals of the mean)"
    head = RichTable(title=title, title_justify="left")
    for column in ("metric", "mean", "median"):
        head.add_column(column, justify="left" if column == "metric" else "right")
    names = {"dice": "Dice", "iou": "IoU (Jaccard)", "hd95": "Hausdorff 95% (px)"}
    for key, name in names.items():
        head.add_row(name, interval(metrics.get(key), intervals.get(key)), _num(metrics.get("median", {}).get(key)))
    console.print(head)
    for warning in metrics.get("warnings", []):
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)


def render_guard(metrics: dict[str, Any]) -> None:
    """The guard's verdict on evaluated images (``metrics["guard"]``): the share flagged, the metrics on the images
    it accepts and on those it flags, and how well it tells them from the run's own test images."""
    guard = metrics.get("guard")
    if not guard:
        return
    table = RichTable(
        title=f"Guard: {guard['flagged']} of {guard['images']} images ({guard['share_flagged']:.1%}) look unlike the "
        "training images",
        title_justify="left",
    )
    for column in ("images", "count", "AUC", "accuracy", "balanced accuracy"):
        table.add_column(column, justify="left" if column == "images" else "right")
    for name, key in (("accepted", "accepted"), ("flagged", "flagged_images")):
        part = guard.get(key, {})
        found = [part.get(m) or [None, None, None] for m in ("auc", "accuracy", "balanced_accuracy")]
        table.add_row(name, str(part.get("images", 0)), *(interval(value[0], value[1:]) for value in found))
    console.print(table)
    separation = guard.get("auroc_vs_test")
    if separation and separation.get("auroc") is not None:
        console.print(f"the guard tells these images from the run's own {separation['inside']} test images with "
                      f"AUROC {interval(separation['auroc'], separation['interval'])}", highlight=False)  # fmt: skip


def render_calibrated(found: dict[str, Any]) -> None:
    """Print ``evaluate --calibration``: the decisions before and after a prevalence or threshold calibration
    (accuracy, balanced accuracy, then per class or finding), or a conformal one's coverage."""
    if found["kind"] == "conformal":
        coverage = interval(found["coverage"], found["intervals"]["coverage"])
        console.print(f"conformal {found['name']!r}: coverage {coverage} (target {found['target']:.0%}), mean set size "
                      f"{found['mean_set_size']:.2f}", highlight=False)  # fmt: skip
        return
    before, after = found["before"], found["after"]
    table = RichTable(title=f"Calibration {found['name']!r} ({found['kind']}, {found['source']}): before -> after "
                      f"on {found['images']} images", title_justify="left")  # fmt: skip
    for column in ("", "before", "after"):
        table.add_column(column, justify="left" if not column else "right")
    rows = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"), ("log loss", "log_loss")]
    rows += [(k.replace("_", " "), k) for k in ("sensitivity", "specificity", "predicted_positive_rate") if k in before]
    for label, key in rows:
        if key in before:
            table.add_row(label, _num(before[key]), _num(after[key]))
    if "prevalence" in before:
        table.add_row(f"prevalence ({before['positive']})", _num(before["prevalence"]), _num(before["prevalence"]))
    for name, row in before["per_class"].items():
        share = "predicted_share" if "predicted_share" in row else "predicted_positive_rate"
        truth = row.get("true_share", row.get("prevalence"))
        table.add_row(f"{name}: predicted share (true {_num(truth)})", _num(row[share]),
                      _num(after["per_class"][name][share]))  # fmt: skip
    console.print(table)
