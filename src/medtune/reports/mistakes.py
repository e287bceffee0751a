"""Report sections that look at images: the most confident mistakes with their class activation maps, and where
the model looks relative to a mask. Images come from the run's image store, exactly as the network saw them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune.errors import DataError
from medtune.reports.page import Section, create_plot, format_value, html_table, shorten
from medtune.reports.plots import Tile, plot_tiles
from medtune.reports.results import RunResults
from medtune.runs import Run


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
    section.plots.append(create_plot("mistakes", figure, "most confident mistakes with Grad-CAM overlays"))
    listing = wrong[["id", "label", "predicted", "confidence"]].assign(confidence=wrong["confidence"].round(3))
    section.tables.append(html_table(listing.rename(columns={"label": "true"})))
    return section


def predicted_class_cams(
    results: RunResults, rows: pd.DataFrame, method: str, layer: str | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """The prepared images of `rows` (predictions.csv rows) and their class activation maps for the predicted class,
    from the run's best checkpoint."""
    import torch

    from medtune.cams import compute_cams
    from medtune.config import Config
    from medtune.runs import load_trained

    trained = load_trained(results.run.path)
    # where the data lives comes from config.yaml, so that a moved dataset is found again by editing `data:` there
    images = load_prepared(Config(**results.config), rows["id"].tolist(), results.run)
    targets = [trained.classes.index(p) for p in rows["predicted"]]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return images, compute_cams(trained.cam_network, trained.preprocessing, batch, targets, method, layer)


def _mistake_tiles(results: RunResults, wrong: pd.DataFrame, method: str, layer: str | None) -> list[Tile]:
    from medtune.cams import create_overlay

    images, heat = predicted_class_cams(results, wrong, method, layer)
    tiles = []
    for image, cam, row in zip(images, heat, wrong.itertuples(index=False), strict=True):
        caption = f"{row.label} -> {row.predicted} {row.confidence:.2f}\n{shorten(str(row.id))}"
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
    from medtune.config import Config

    rows = _rows_with_masks(results.predictions, masks, sample, Config(**results.config))
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
        f" {len(rows)} image(s): mean share inside {format_value(float(np.nanmean(energy)))}, mean mask area "
        f"{format_value(float(area.mean()))}."
    )
    groups = [("all", rows), *((f"true {k}", g) for k, g in rows.groupby("label")),
              ("correct", rows[rows["correct"]]), ("wrong", rows[~rows["correct"]])]  # fmt: skip
    table = pd.DataFrame(
        [
            {
                "images": name,
                "count": len(g),
                "energy inside the mask": format_value(g["energy"].mean()),
                "mask area (even spread)": format_value(g["area"].mean()),
            }
            for name, g in groups
            if len(g)
        ]
    )
    section.tables.append(html_table(table))
    worst = np.argsort(np.nan_to_num(energy, nan=1.0))[:8]
    figure = plot_tiles([tiles[i] for i in worst], "least energy inside the mask (share inside / mask area)")
    section.plots.append(create_plot("attention", figure, "images whose map lies most outside their mask"))
    return section


def _rows_with_masks(predictions: pd.DataFrame | None, masks: Path, sample: int, config: Any) -> pd.DataFrame:
    """Up to `sample` evaluated rows with their mask: from a folder (same file name), or segmented by a run."""
    from medtune.data.masks import find_mask
    from medtune.runs.segmasks import is_segmentation_run, predicted_mask_files

    if predictions is None or "path" not in predictions:
        return pd.DataFrame()
    rows = predictions
    if len(rows) > sample:  # evenly spread over the split, so every class is represented as it occurs
        rows = rows.iloc[np.linspace(0, len(rows) - 1, sample).round().astype(int)]
    if is_segmentation_run(masks):
        from medtune.data.decode import Entry

        entries = [Entry(i, str(p)) for i, p in enumerate(rows["path"])]
        found, _ = predicted_mask_files(entries, masks, config, progress=False)
    else:
        found = [find_mask(masks, Path(str(p))) for p in rows["path"]]
    return rows.assign(mask=[str(f) if f else None for f in found]).dropna(subset=["mask"])


def _mask_energies(
    results: RunResults, rows: pd.DataFrame, method: str, layer: str | None
) -> tuple[np.ndarray, np.ndarray, list[Tile]]:
    from medtune.cams import compute_mask_energy, create_overlay
    from medtune.config import Config
    from medtune.data.masks import read_mask_plane
    from medtune.data.store import StoreSpec

    images, heat = predicted_class_cams(results, rows, method, layer)
    spec = StoreSpec.from_config(Config(**results.config))
    masks_read = [read_mask_plane(Path(m), spec) for m in rows["mask"]]
    energy = np.array([compute_mask_energy(h, m) for h, m in zip(heat, masks_read, strict=True)])
    area = np.array([(m > 0).mean() for m in masks_read])
    tiles = [
        Tile(image, f"{e:.2f} / {a:.2f} {row.predicted}\n{shorten(Path(str(row.path)).name)}", create_overlay(image, h))
        for image, h, e, a, row in zip(images, heat, energy, area, rows.itertuples(index=False), strict=True)
    ]
    return energy, area, tiles


def load_prepared(config: Any, ids: Sequence[str], run: Run | None = None) -> list[np.ndarray]:
    """The images of `ids` from the image store (``(size, size, channels)`` uint8, exactly as the network saw
    them), through the prepared dataset: with `run`, the rows of its split, so the store it trained on is read
    (built again only when the cache no longer holds it); without, every row of the data.

    Raises:
        DataError: the data is no longer where the run read it, or an id is not in it.
    """
    from medtune.runs import prepare_dataset

    if run is not None:
        return prepare_dataset(config, run, progress=False).images(ids)
    return prepare_dataset(config, assign_missing=False, progress=False).images(ids)
