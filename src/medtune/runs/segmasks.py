"""Masks predicted by a segmentation run, for a classifier trained with ``masks=SEG_RUN``.

Images without a mask (or every image with ``mask_source=model``) are segmented by the run's best checkpoint, at
their own resolution, and the masks are cached as 0/255 PNGs in ``<cache>/masks/<segmenter>/``: the folder is
keyed by the checkpoint's sha256 and the clean-up, each file by the image's path, archive row, size and
modification time (as the image store keys its rows), so a changed image or a retrained segmenter gives new
masks and nothing is segmented twice. From there the masks go the way of any mask (`medtune.data.masks`): the
store applies them, and the run's ``config.yaml`` records the segmenter (``masks:``). `predict`, `evaluate`,
`explain`, the report and `serve` segment new images with the same run, so nobody has to supply their masks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from medtune._io import file_sha256
from medtune._locks import building
from medtune._paths import cache_dir as default_cache_dir
from medtune._progress import create_progress
from medtune.config import Config
from medtune.data.decode import Entry, decode_entries, table_entries
from medtune.data.mask_files import POSTPROCESS, clean_lungs, restore_plane, write_mask
from medtune.data.masks import attach_masks, prepare_masked
from medtune.data.table import Table
from medtune.errors import ConfigError, DataError, ImageReadError
from medtune.models.inference import inference_device
from medtune.models.segmenters import MASK_THRESHOLD
from medtune.runs.trained import TrainedSegmenter, load_segmenter
from medtune.tasks import get_task

_BATCH = 16
_LISTED = 5


def is_segmentation_run(path: str | os.PathLike | None) -> bool:
    """True when `path` is a run directory of ``medtune segment train`` (its config says ``task: segment``), or
    such a run's ``.onnx`` export."""
    if path is None:
        return False
    if Path(path).suffix.lower() == ".onnx" and Path(path).is_file():
        from medtune.runs.exported import load_exported

        try:
            return not load_exported(path).task.labelled
        except DataError:
            return False
    config_file = Path(path).expanduser() / "config.yaml"
    if not config_file.is_file():
        return False
    try:
        task = (yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}).get("task") or "classify"
        return not get_task(str(task)).labelled
    except (OSError, yaml.YAMLError, AttributeError, ConfigError):
        return False


def segmenter_of(model: Any) -> str | None:
    """Where the masks of a classifier trained with ``masks=SEG_RUN`` come from: the segmenter exported beside an
    exported classifier, else the segmentation run its configuration names (None: its masks are files)."""
    beside = getattr(model, "segmenter", None)
    if beside is not None:
        return str(beside)
    return model.config.masks if is_segmentation_run(model.config.masks) else None


@torch.inference_mode()
def segment_arrays(
    segmenter: TrainedSegmenter, images: Sequence[np.ndarray], tta: bool | None = None, postprocess: str = "none"
) -> list[np.ndarray]:
    """Bool masks of decoded images, each at its image's own resolution (one forward pass for all of them)."""
    if postprocess not in POSTPROCESS:
        raise ConfigError(f"postprocess={postprocess} is unknown; expected one of {', '.join(POSTPROCESS)}")
    if not images:
        return []
    spec = replace(segmenter.resolved.spec, mask="none")
    device = inference_device()
    model = segmenter.inference_model(tta).to(device).eval()
    batch = torch.from_numpy(np.stack([prepare_masked(image, None, spec) for image in images])).permute(0, 3, 1, 2)
    planes = model(batch.to(device)).float().cpu().numpy()
    masks = []
    for image, plane in zip(images, planes, strict=True):
        mask = restore_plane(plane, image.shape[:2], segmenter.config.resize) >= MASK_THRESHOLD
        masks.append(clean_lungs(mask) if postprocess == "lungs" else mask)
    return masks


def _mask_file(folder: Path, entry: Entry) -> Path:
    try:
        stat = os.stat(entry.path)
        state = f"{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        state = "missing"
    key = json.dumps([str(Path(entry.path).resolve()), entry.array, entry.index, state])
    return folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.png"


def predicted_mask_files(
    entries: Sequence[Entry], seg_run: str | os.PathLike, config: Config, progress: bool = True
) -> tuple[list[str | None], dict[str, str]]:
    """The cached predicted mask of each entry, segmenting those not cached yet.

    Returns:
        One mask file per entry (None where the image cannot be read), and each unreadable image's error.
    """
    segmenter = load_segmenter(seg_run)
    root = Path(config.cache_dir) / "masks" if config.cache_dir else default_cache_dir("masks")
    folder = root / f"{file_sha256(segmenter.checkpoint)[:16]}-{config.postprocess}"
    files = [_mask_file(folder, entry) for entry in entries]
    todo = [entry for entry, file in zip(entries, files, strict=True) if not file.is_file()]
    if not todo:
        return [str(f) for f in files], {}
    with building(folder, f"masks with {Path(seg_run).name}"):  # one process segments an image; others wait
        return _segment_missing(entries, files, segmenter, seg_run, config, progress)


def _segment_missing(
    entries: Sequence[Entry], files: list[Path], segmenter: Any, seg_run: str | os.PathLike, config: Config,
    progress: bool,
) -> tuple[list[str | None], dict[str, str]]:  # fmt: skip
    todo = [entry for entry, file in zip(entries, files, strict=True) if not file.is_file()]
    errors: dict[str, str] = {}
    with create_progress(progress and bool(todo)) as bar:
        task = bar.add_task(f"segmenting {len(todo)} image(s) with {Path(seg_run).name}", total=len(todo))
        for start in range(0, len(todo), _BATCH):
            decoded = list(decode_entries(todo[start : start + _BATCH], config.window, config.frame))
            good = [(entry, image) for entry, image in decoded if not isinstance(image, ImageReadError)]
            errors.update({entry.describe(): image.reason for entry, image in decoded if isinstance(image, Exception)})
            masks = segment_arrays(segmenter, [image for _, image in good], postprocess=config.postprocess)
            for (entry, _), mask in zip(good, masks, strict=True):
                write_mask(files[entry.position], mask)
            bar.advance(task, len(decoded))
    return [str(f) if f.is_file() else None for f in files], errors


def attach_predicted_masks(table: Table, config: Config, progress: bool = True) -> Table:
    """`table` with masks from the segmentation run ``config.masks`` for its images without one (every image with
    ``mask_source=model``), then checked and noted as `medtune.data.masks.attach_masks` does.

    Raises:
        ConfigError: ``mask=none`` (masks given but not used).
        DataError: images that cannot be read (listed), or the run is not a finished segmentation run.
    """
    if config.mask == "none":
        raise ConfigError(f"masks={config.masks} is given but mask=none; choose how to use them: mask=multiply, crop "
                          "or channel")  # fmt: skip
    frame = table.frame.copy()
    given = frame["mask"].map(lambda m: isinstance(m, str) and bool(m))
    if config.mask_source == "model":
        given[:] = False
    entries = [e for e, has in zip(table_entries(table), given, strict=True) if not has]
    entries = [replace(e, position=i) for i, e in enumerate(entries)]
    files, errors = predicted_mask_files(entries, config.masks, config, progress)
    if errors:
        listed = "; ".join(f"{path}: {reason}" for path, reason in list(errors.items())[:_LISTED])
        raise DataError(f"{len(errors)} image(s) cannot be read, so they cannot be segmented: {listed}; remove or "
                        "replace them")  # fmt: skip
    frame.loc[~given, "mask"] = files
    note = f"masks of {len(files)} image(s) predicted by the segmentation run {config.masks}"
    attached = attach_masks(table.with_frame(frame), config.sections.data.model_copy(update={"masks": None}))
    return replace(attached, notes=(*attached.notes, note))
