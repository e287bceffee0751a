"""The report's plots: one function per plot, each returning a matplotlib `Figure` drawn from plain arrays.

Figures are built with matplotlib's object API (no pyplot), so nothing here touches global plotting state or needs
a display. `figure_png` turns a figure into PNG bytes for the page and for the files beside it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import auc as area_under
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from medtune.metrics import compute_reliability

#: Width and height of a single plot in inches, and its resolution: 640 x 420 px, two side by side on a laptop.
PLOT_SIZE = (6.4, 4.2)
DPI = 100
_TRAIN_STYLE = {"linestyle": "--", "alpha": 0.8}


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _figure(size: tuple[float, float] = PLOT_SIZE) -> tuple[Figure, object]:
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.add_subplot()


def _classes_to_plot(classes: Sequence[str]) -> list[int]:
    """One-vs-rest curves of every class; with two classes only the second (positive) one, since both agree."""
    return [1] if len(classes) == 2 else list(range(len(classes)))


def _interval_text(value: float | None, interval: Sequence[float | None] | None) -> str:
    if value is None:
        return "n/a"
    if interval and None not in interval:
        return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"
    return f"{value:.3f}"


def plot_history(
    histories: Mapping[str, pd.DataFrame], metric: str, title: str, best_epoch: int | None = None
) -> Figure:
    """Train (dashed) and validation (solid) curves of `metric` per epoch, one colour per run.

    Args:
        histories: run name to its ``history.csv`` frame.
        metric: the name without prefix: ``loss``, ``acc``, ``balanced_acc``, ``f1`` or ``auc``.
        title: the plot title.
        best_epoch: marks the epoch whose weights the run kept (single-run reports).

    Epochs are numbered from 1, as the training log prints them and ``history.csv`` holds them.
    """
    figure, axes = _figure()
    for i, (name, history) in enumerate(histories.items()):
        colour = f"C{i}"
        label = "" if len(histories) == 1 else f"{name} "
        for split, style in (("train", _TRAIN_STYLE), ("val", {})):
            column = f"{split}_{metric}"
            if column in history and history[column].notna().any():
                axes.plot(history["epoch"], history[column], color=colour, marker="o", markersize=3,
                          label=f"{label}{split}", **style)  # fmt: skip
    if best_epoch is not None:
        axes.axvline(best_epoch, color="grey", linewidth=1, linestyle=":", label=f"kept weights (epoch {best_epoch})")
    axes.set(xlabel="epoch", ylabel=metric.replace("_", " "), title=title)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def plot_roc(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str], metrics: Mapping | None = None) -> Figure:
    """One-vs-rest ROC curve per class, the legend giving its AUC with the bootstrap interval from `metrics`."""
    figure, axes = _figure()
    for c in _classes_to_plot(classes):
        positive = targets == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, c])
        auc = metrics["per_class"][classes[c]]["auc"] if metrics else area_under(fpr, tpr)
        interval = (metrics or {}).get("intervals", {}).get("per_class", {}).get(classes[c], {}).get("auc")
        axes.plot(fpr, tpr, color=f"C{c}", label=f"{classes[c]}: AUC {_interval_text(auc, interval)}")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle=":", label="chance")
    axes.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
             title="ROC curves (one class against the rest)", xlim=(0, 1), ylim=(0, 1.01), aspect="equal")  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    return figure


def plot_precision_recall(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> Figure:
    """Precision-recall curve per class with its average precision; the dotted line is the class's prevalence."""
    figure, axes = _figure()
    for c in _classes_to_plot(classes):
        positive = targets == c
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, probs[:, c])
        ap = average_precision_score(positive, probs[:, c])
        axes.plot(recall, precision, color=f"C{c}", label=f"{classes[c]}: AP {ap:.3f}")
        axes.axhline(positive.mean(), color=f"C{c}", linewidth=1, linestyle=":")
    axes.set(xlabel="recall (sensitivity)", ylabel="precision (positive predictive value)",
             title="Precision-recall curves", xlim=(0, 1), ylim=(0, 1.01))  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower left")
    return figure


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], normalize: bool) -> Figure:
    """The confusion matrix, true classes in rows; `normalize` divides each row by its total (recall on the
    diagonal)."""
    matrix = np.asarray(matrix, dtype=float)
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalize else matrix
    side = max(3.6, 1.0 + 0.9 * len(classes))
    figure, axes = _figure((side + 1.2, side))
    image = axes.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    figure.colorbar(image, ax=axes, shrink=0.8)
    ticks = range(len(classes))
    title = "Confusion matrix, normalised by true class" if normalize else "Confusion matrix (images)"
    axes.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true", title=title)
    axes.set_xticklabels(classes, rotation=30 if len(classes) > 3 else 0, ha="right" if len(classes) > 3 else "center")
    axes.set_yticklabels(classes)
    threshold = shown.max() / 2
    for (i, j), value in np.ndenumerate(shown):
        text = f"{value:.2f}" if normalize else f"{int(value)}"
        axes.text(j, i, text, ha="center", va="center", color="white" if value > threshold else "black")
    return figure


def plot_reliability(targets: np.ndarray, probs: np.ndarray, ece: float | None, n_bins: int = 15) -> Figure:
    """Reliability diagram of the top-label confidence: accuracy against mean confidence per bin (bars), with the
    diagonal of perfect calibration and the share of images per bin below."""
    counts, confidence, accuracy = compute_reliability(targets, probs, n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / n_bins
    figure = Figure(figsize=PLOT_SIZE, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    filled = counts > 0
    top.bar(centres[filled], accuracy[filled], width=width, edgecolor="black", color="C0", label="accuracy")
    top.bar(centres[filled], (confidence - accuracy)[filled], bottom=accuracy[filled], width=width,
            color="C3", alpha=0.35, edgecolor="C3", label="gap to confidence")  # fmt: skip
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
    ece_text = "n/a" if ece is None else f"{ece:.3f}"
    top.set(ylabel="accuracy", title=f"Reliability (ECE {ece_text}, {n_bins} bins)", xlim=(0, 1), ylim=(0, 1))
    top.legend(fontsize="small", loc="upper left")
    top.grid(alpha=0.3)
    bottom.bar(centres, counts / max(counts.sum(), 1), width=width, color="grey", edgecolor="black")
    bottom.set(xlabel="confidence (largest probability)", ylabel="share")
    return figure


@dataclass(frozen=True)
class Tile:
    """One image of a thumbnail grid: the prepared image, an optional overlay beside it, and its caption."""

    image: np.ndarray
    caption: str
    overlay: np.ndarray | None = None


def plot_tiles(tiles: Sequence[Tile], title: str, columns: int = 4) -> Figure:
    """A grid of thumbnails, each with its Grad-CAM overlay beside it when there is one."""
    per_tile = 2 if any(t.overlay is not None for t in tiles) else 1
    rows = max(1, -(-len(tiles) // columns))
    figure = Figure(figsize=(columns * per_tile * 1.6, rows * 2.0 + 0.4), layout="constrained")
    grid = figure.subplots(rows, columns * per_tile, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for n, tile in enumerate(tiles):
        row, column = divmod(n, columns)
        left = grid[row, column * per_tile]
        image = tile.image[..., 0] if tile.image.ndim == 3 and tile.image.shape[-1] == 1 else tile.image
        left.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        left.set_title(tile.caption, fontsize=8, loc="left")
        if tile.overlay is not None:
            grid[row, column * per_tile + 1].imshow(tile.overlay)
    figure.suptitle(title, fontsize=10)
    return figure


def top_findings(targets: np.ndarray, count: int = 8) -> list[int]:
    """Indices of the `count` labels with the most positive images among those with positives and negatives
    (multi-hot `targets`), most frequent first: the labels a ROC curve can be drawn for.

    >>> top_findings(np.array([[1, 1, 0], [0, 1, 0], [1, 0, 0]]), 2)
    [0, 1]
    """
    positives = targets.sum(axis=0)
    drawable = [c for c in np.argsort(-positives, kind="stable") if 0 < positives[c] < len(targets)]
    return [int(c) for c in drawable[:count]]


def plot_findings_roc(
    targets: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    labels: Sequence[int],
    metrics: Mapping | None = None,
) -> Figure:
    """Multi-label ROC curves of the `labels` (indices), each finding against its absence, the legend giving its AUC
    with the bootstrap interval from `metrics`."""
    figure, axes = _figure()
    intervals = (metrics or {}).get("intervals", {}).get("per_class", {})
    for n, c in enumerate(labels):
        fpr, tpr, _ = roc_curve(targets[:, c], probs[:, c])
        auc = metrics["per_class"][classes[c]]["auc"] if metrics else area_under(fpr, tpr)
        text = _interval_text(auc, intervals.get(classes[c], {}).get("auc"))
        axes.plot(fpr, tpr, color=f"C{n}", label=f"{classes[c]}: AUC {text}")
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle=":", label="chance")
    axes.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
             title="ROC curves (each finding against its absence)", xlim=(0, 1), ylim=(0, 1.01),
             aspect="equal")  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize="x-small", loc="lower right")
    return figure


def plot_findings_pr(targets: np.ndarray, probs: np.ndarray, classes: Sequence[str], labels: Sequence[int]) -> Figure:
    """Multi-label precision-recall curves of the `labels` (indices) with their average precision; dotted lines
    are their prevalences."""
    figure, axes = _figure()
    for n, c in enumerate(labels):
        precision, recall, _ = precision_recall_curve(targets[:, c], probs[:, c])
        ap = average_precision_score(targets[:, c], probs[:, c])
        axes.plot(recall, precision, color=f"C{n}", label=f"{classes[c]}: AP {ap:.3f}")
        axes.axhline(targets[:, c].mean(), color=f"C{n}", linewidth=1, linestyle=":")
    axes.set(xlabel="recall (sensitivity)", ylabel="precision (positive predictive value)",
             title="Precision-recall curves per finding", xlim=(0, 1), ylim=(0, 1.01))  # fmt: skip
    axes.grid(alpha=0.3)
    axes.legend(fontsize="x-small", loc="upper right")
    return figure
