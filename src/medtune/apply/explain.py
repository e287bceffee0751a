"""``medtune explain``: class activation maps (Grad-CAM and its variants) of a trained run for new images.

Inputs are read exactly as ``medtune predict`` reads them. Per image the output folder gets ``<stem>.png`` (the
prepared input beside its overlay, with a caption) and ``<stem>.npy`` (the raw float32 map at the working size);
``explanations.csv`` lists every input with its target, prediction, files and error. An unreadable image becomes
a row with its error; the others are still explained.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont
from torch.utils.data import DataLoader

from medtune._io import atomic_open
from medtune._progress import create_progress
from medtune._registry import suggest
from medtune.apply.predict import _collate, _ImageFiles, collect_inputs, input_masks
from medtune.config import Config
from medtune.data.masks import check_mask_folder, find_mask, read_mask_plane
from medtune.data.store import StoreSpec
from medtune.errors import ConfigError, ImageReadError
from medtune.models.inference import predict_batches
from medtune.runs import load_trained
from medtune.runs.segmasks import is_segmentation_run, predicted_mask_files

#: The table written beside the maps.
INDEX_FILE = "explanations.csv"
#: Shortest side of the pictures in the PNG files: small working sizes are enlarged (nearest) to be seen.
DISPLAY_SIZE = 192
COLUMNS = (
    "file", "target", "predicted", "probability", "target_probability", "method", "layer", "overlay", "heatmap",
)  # fmt: skip


def explain(
    run: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    method: str = "gradcam",
    target: str = "predicted",
    layer: str | None = None,
    masks: str | os.PathLike | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Explain every input image with a class activation map of a run's best checkpoint.

    Args:
        run: a run directory (or a ``.ckpt`` file).
        inputs: image files, folders (recursive), glob patterns and CSV/TSV files with a path column.
        out: folder for the maps and ``explanations.csv`` (created; files of the same name are replaced).
        method: ``gradcam``, ``gradcam++``, ``scorecam``, ``eigencam``, ``hirescam`` or ``layercam``.
        target: ``predicted`` (each image's top class) or one of the run's class names (any case).
        layer: dotted module name inside the backbone (``layer3``, ``blocks.10.norm1``); None chooses the last
            feature map, or an earlier stage when that is coarser than 4x4 at the run's working size
            (`medtune.explain.find_target_layer`).
        masks: a folder of masks (0 outside, > 0 inside) named like the images, or a segmentation run that
            segments them; adds ``mask`` and
            ``mask_energy``, the share of each map's energy inside its mask.
        batch_size: images per forward and backward pass (default: 4 on the CPU, 16 on a GPU).
        progress: a progress bar on a terminal.

    Returns:
        One row per input: ``file``, ``target``, ``predicted``, ``probability`` (of the predicted class),
        ``target_probability``, ``method``, ``layer``, ``overlay`` and ``heatmap`` (file names in `out`),
        ``mask`` and ``mask_energy`` (with `masks`), ``warning`` and ``error`` (None when explained).

    Raises:
        ConfigError: unknown method, target class or layer.
        DataError: no inputs, a run that cannot be loaded, or a `masks` folder that does not exist.

    >>> explain("runs/cxr3-tf_efficientnet_lite0", ["xrays/"], "cams/", target="pneumonia")  # doctest: +SKIP
    """
    from medtune.cams import METHODS, compute_cams, find_target_layer

    method = str(method).strip().lower()
    METHODS.get(method)  # an unknown name fails before anything is loaded
    trained = load_trained(run)
    config: Config = trained.config
    target_index = _target_index(target, trained.classes)
    layer_name, _ = find_target_layer(trained.cam_network.backbone, layer, config.image_size)
    mask_dir = check_mask_folder(masks)
    paths = collect_inputs(inputs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stems = _unique_stems(paths)
    energy_masks = _energy_masks(paths, mask_dir, config)
    mask_files, missing = input_masks(paths, trained, None if energy_masks is not None else masks)
    spec = trained.resolved.spec
    dataset = _ImageFiles(paths, spec, mask_files, missing)
    # Decoding in this process: the backward passes, not the PNG reads, take the time.
    loader = DataLoader(dataset, batch_size=max(16, batch_size or 0), num_workers=0, collate_fn=_collate)
    # channels-last like compute_cams, which turns the network so on its first batch
    model = trained.inference_model(tta=False, channels_last=True)
    rows: dict[int, dict] = {}
    with create_progress(progress) as bar:
        task = bar.add_task(f"explaining ({method})", total=len(paths))
        for indices, images, failed in loader:
            for i, error in failed.items():
                rows[i] = {"file": paths[i], "method": method, "layer": layer_name, "error": error}
            if images is not None:
                probs = predict_batches(model, [images])
                targets = probs.argmax(axis=1) if target_index is None else np.full(len(images), target_index)
                heat = compute_cams(
                    trained.cam_network, trained.preprocessing, images, targets, method, layer_name, batch_size
                )
                for j, i in enumerate(indices):
                    row = {"file": paths[i], "method": method, "layer": layer_name}
                    row.update(_describe(probs[j], int(targets[j]), trained.classes))
                    image = images[j][: int(config.channels)]  # the image without a mask channel
                    row.update(_write_maps(out, stems[i], image, heat[j], row))
                    if mask_dir is not None:
                        found = energy_masks[i] if energy_masks is not None else find_mask(mask_dir, Path(paths[i]))
                        row.update(_mask_energy(found, mask_dir, paths[i], heat[j], spec))
                    rows[i] = row
            bar.advance(task, len(indices) + len(failed))
    return _write_index(out, [rows[i] for i in range(len(paths))], masks=mask_dir is not None)


def _target_index(target: str, classes: tuple[str, ...]) -> int | None:
    """None for ``predicted``, else the index of the class named `target` (case-insensitive)."""
    name = str(target).strip()
    if name.lower() == "predicted":
        return None
    folded = [c.casefold() for c in classes]
    if name.casefold() in folded:
        return folded.index(name.casefold())
    raise ConfigError(
        f"unknown target class {target!r}.{suggest(name, list(classes))} The run's classes are "
        f"{', '.join(classes)}; give one of them, or 'predicted' for each image's top class"
    )


def _unique_stems(paths: list[str]) -> list[str]:
    """File stems for the outputs; a stem seen before (ignoring case) gets ``-2``, ``-3``..."""
    taken: set[str] = set()
    stems = []
    for path in paths:
        base = Path(path).stem or "image"
        stem, n = base, 1
        while stem.casefold() in taken:
            n += 1
            stem = f"{base}-{n}"
        taken.add(stem.casefold())
        stems.append(stem)
    return stems


def _describe(probs: np.ndarray, target: int, classes: tuple[str, ...]) -> dict:
    best = int(probs.argmax())
    return {
        "target": classes[target],
        "predicted": classes[best],
        "probability": round(float(probs[best]), 6),
        "target_probability": round(float(probs[target]), 6),
    }


def _write_maps(out: Path, stem: str, image: torch.Tensor, heat: np.ndarray, row: dict) -> dict:
    """``<stem>.png`` (input beside overlay, with a caption) and ``<stem>.npy`` (the raw map), atomically."""
    from medtune.cams import create_overlay

    picture = image.permute(1, 2, 0).cpu().numpy()
    rgb = np.repeat(picture, 3, axis=-1) if picture.shape[-1] == 1 else picture
    caption = (
        f"{row['method']} for {row['target']} ({row['target_probability']:.2f}); "
        f"predicted {row['predicted']} ({row['probability']:.2f})"
    )
    panel = _side_by_side(rgb, create_overlay(picture, heat), caption)
    overlay, heatmap = f"{stem}.png", f"{stem}.npy"
    with atomic_open(out / overlay, "wb") as f:
        Image.fromarray(panel).save(f, format="PNG")
    with atomic_open(out / heatmap, "wb") as f:
        np.save(f, heat.astype(np.float32))
    return {"overlay": overlay, "heatmap": heatmap}


def _side_by_side(image: np.ndarray, overlay: np.ndarray, caption: str) -> np.ndarray:
    """The two pictures enlarged to at least `DISPLAY_SIZE` (nearest: no invented detail), a caption below."""
    scale = max(1, math.ceil(DISPLAY_SIZE / min(image.shape[:2])))
    height, width = image.shape[0] * scale, image.shape[1] * scale
    gap, strip = 4, 18
    canvas = Image.new("RGB", (2 * width + gap, height + strip), "white")
    for k, picture in enumerate((image, overlay)):
        enlarged = Image.fromarray(picture).resize((width, height), Image.Resampling.NEAREST)
        canvas.paste(enlarged, (k * (width + gap), 0))
    ImageDraw.Draw(canvas).text((4, height + 3), caption, fill="black", font=ImageFont.load_default(size=11))
    return np.asarray(canvas)


def _energy_masks(paths: list[str], masks: Path | None, config: Config) -> list[str | None] | None:
    """With a segmentation run as ``--masks``: each input's mask, segmented by it (None: a folder, or no masks)."""
    if not is_segmentation_run(masks):
        return None
    from medtune.data.decode import Entry

    files, _ = predicted_mask_files([Entry(i, p) for i, p in enumerate(paths)], masks, config, progress=False)
    return files


def _mask_energy(mask_path: str | Path | None, mask_dir: Path, path: str, heat: np.ndarray, spec: StoreSpec) -> dict:
    """The share of `heat` inside the image's mask (`mask_path`), or a warning when there is none."""
    from medtune.cams import compute_mask_energy

    if mask_path is None:
        return {"mask": None, "mask_energy": None, "warning": f"no mask named {Path(path).name} in {mask_dir}"}
    try:
        mask = read_mask_plane(mask_path, spec)
    except (ImageReadError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, ImageReadError) else str(exc)
        return {"mask": str(mask_path), "mask_energy": None, "warning": f"mask unreadable: {reason}"}
    energy = compute_mask_energy(heat, mask)
    return {"mask": str(mask_path), "mask_energy": None if math.isnan(energy) else round(energy, 6)}


def _write_index(out: Path, rows: list[dict], masks: bool) -> pd.DataFrame:
    columns = [*COLUMNS, *(("mask", "mask_energy") if masks else ()), "warning", "error"]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    frame = frame.astype(object).where(frame.notna(), None)
    for column in ("probability", "target_probability", *(("mask_energy",) if masks else ())):
        frame[column] = pd.to_numeric(frame[column])
    with atomic_open(out / INDEX_FILE, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, index=False)
    return frame
