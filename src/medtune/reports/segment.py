"""The report sections of a segmentation run: headline Dice, IoU and HD95, the per-image Dice distribution, and the
worst images with the predicted (red) and true (green) contours drawn over them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medtune.reports.page import Section, card_maker, create_plot, format_interval, format_value, html_table
from medtune.reports.plots import PLOT_SIZE
from medtune.reports.results import RunResults

_NAMES = {"dice": "Dice", "iou": "IoU (Jaccard)", "hd95": "Hausdorff 95% (px)"}


def segment_headline(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Cards: mean Dice, IoU and HD95 with their intervals, and the number of images."""
    intervals = metrics.get("intervals", {})
    card = card_maker(metrics)
    return [*(card(name, metrics.get(key), intervals.get(key)) for key, name in _NAMES.items()),
            card("images evaluated", metrics["n"])]  # fmt: skip


def segment_sections(results: RunResults, metrics: dict[str, Any], worst: int = 8) -> list[Section]:
    """The evaluation of a segmentation run: the scores, their distribution and the worst images."""
    intervals = metrics.get("intervals", {})
    summary = pd.DataFrame([
        {"metric": name, "mean [95% CI]": format_interval(metrics.get(key), intervals.get(key)),
         "median": format_value((metrics.get("median") or {}).get(key))}
        for key, name in _NAMES.items()
    ])  # fmt: skip
    split = ", ".join(metrics.get("split", [])) or "test"
    intro = (
        f"{metrics['n']} {split} images at {metrics.get('image_size')} px; a pixel is inside where the probability "
        f"reaches {metrics.get('threshold', 0.5)}. Means with percentile bootstrap intervals over the images."
    )
    scores = Section("evaluation", "Evaluation", intro, notes=list(metrics.get("warnings", [])))
    scores.tables.append(html_table(summary))
    sections = [scores]
    if results.predictions is not None and "dice" in results.predictions:
        scores.plots.append(create_plot("dice_distribution", plot_dice_distribution(results.predictions["dice"]),
                                        "Per-image Dice of the evaluated images"))  # fmt: skip
        if worst > 0:
            sections.append(worst_section(results, results.predictions, worst))
    return sections


def plot_dice_distribution(dice: pd.Series) -> Figure:
    """A histogram of the per-image Dice, with its mean and median marked."""
    figure = Figure(figsize=PLOT_SIZE, layout="constrained")
    axes = figure.subplots()
    values = dice.dropna().to_numpy(dtype=float)
    low = min(0.8, float(values.min())) if len(values) else 0.0
    axes.hist(values, bins=np.linspace(low, 1.0, 31), color="C0", alpha=0.8)
    if len(values):
        axes.axvline(values.mean(), color="C3", label=f"mean {values.mean():.3f}")
        axes.axvline(np.median(values), color="grey", linestyle=":", label=f"median {np.median(values):.3f}")
        axes.legend(fontsize="small")
    axes.set(xlabel="Dice", ylabel="images", title="Per-image Dice")
    axes.grid(alpha=0.3)
    return figure


def worst_section(results: RunResults, predictions: pd.DataFrame, count: int) -> Section:
    """The `count` images with the lowest Dice, with the predicted (red) and true (green) contours."""
    from medtune.config import Config
    from medtune.models.segmenters import MASK_THRESHOLD
    from medtune.reports.mistakes import load_prepared
    from medtune.runs.trained import load_segmenter

    section = Section("worst", "Worst images", "The evaluated images with the lowest Dice: the true mask's contour "
                      "in green, the predicted one in red, at the working size.")  # fmt: skip
    worst = predictions.sort_values("dice").head(count)
    images = load_prepared(Config(**results.config), [str(i) for i in worst["id"]], results.run)
    segmenter = load_segmenter(results.run.path)
    batch = np.stack([image[..., :-1] for image in images])
    import torch

    with torch.inference_mode():
        planes = segmenter.inference_model()(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()
    figure = plot_contours(
        [image[..., :-1] for image in images], [image[..., -1] > 127 for image in images], planes >= MASK_THRESHOLD,
        [f"{row.id}: Dice {row.dice:.3f}" for row in worst.itertuples()],
    )  # fmt: skip
    section.plots.append(create_plot("worst", figure, "Lowest-Dice images with true and predicted contours"))
    return section


def plot_contours(images: list[np.ndarray], truth: list[np.ndarray], predicted: np.ndarray, captions: list[str],
                  columns: int = 4) -> Figure:  # fmt: skip
    """A grid of images with the contour of the true mask (green) and of the predicted one (red)."""
    rows = max(1, -(-len(images) // columns))
    figure = Figure(figsize=(columns * 2.2, rows * 2.4 + 0.3), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.set_axis_off()
    for n, (image, true, mask, caption) in enumerate(zip(images, truth, predicted, captions, strict=True)):
        axes = grid.flat[n]
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        axes.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255)
        if true.any():
            axes.contour(true.astype(float), levels=[0.5], colors="limegreen", linewidths=1.0)
        if mask.any():
            axes.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=1.0)
        axes.set_title(caption[:44], fontsize=7, loc="left")
    return figure


def segment_evaluation_row(name: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """One row of the "other data" table of a segmentation run."""
    intervals = metrics.get("intervals", {})
    row = {"evaluation": name, "images": metrics["n"]}
    row.update({label: format_interval(metrics.get(key), intervals.get(key)) for key, label in _NAMES.items()})
    return row
