"""Probabilities for rows of an image store, from the bare PyTorch network or an exported ONNX model, and the one
way commands open a model for inference (`load_model`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

from medtune.data.loader import StoreDataset, create_store_loader
from medtune.data.store import ImageStore
from medtune.models import Preprocessing
from medtune.models.inference import InferenceModel, predict_batches
from medtune.runs import TrainedModel, load_trained
from medtune.runs.segmasks import is_segmentation_run

if TYPE_CHECKING:
    from medtune.config import Config
    from medtune.runs.exported import ExportedModel


def load_model(source: str | os.PathLike) -> TrainedModel | ExportedModel:
    """A run directory (or ``.ckpt``) as its trained network, or a ``.onnx`` file from ``medtune export`` on
    onnxruntime: both answer the same questions (classes, thresholds, the configuration and store spec of their
    inputs)."""
    if Path(source).suffix.lower() == ".onnx":
        from medtune.runs.exported import load_exported

        return load_exported(source)
    return load_trained(source)


def predict_store(
    model: InferenceModel,
    store: ImageStore,
    rows: np.ndarray,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Probabilities ``(len(rows), K)`` for rows of an image store, read a whole batch at a time."""
    loader = create_store_loader(StoreDataset(store, rows), batch_size)
    return predict_batches(model, (images for images, _ in loader), on_batch=on_batch)


def store_probabilities(
    network: nn.Module | Any,
    preprocessing: Preprocessing,
    store: ImageStore,
    rows: np.ndarray,
    config: Config,
    tta: bool = False,
    activation: str = "softmax",
) -> np.ndarray:
    """Probabilities ``(len(rows), K)`` for store rows from a PyTorch network (with its normalisation) or from an
    `medtune.runs.exported.ExportedModel` (whose graph holds it), in batches of ``max(64, batch_size)``."""
    batch = max(64, config.batch_size)
    if isinstance(network, nn.Module):
        model = InferenceModel(
            network, preprocessing, tta=tta, channels_last=config.channels_last, activation=activation
        )
        return predict_store(model, store, rows, batch_size=batch)
    rows = np.asarray(rows)
    parts = [network.predict(store.images[rows[i : i + batch]], tta=tta) for i in range(0, len(rows), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def data_keys(config: Config) -> dict[str, Any]:
    """Reading keys that carry over from the run to other data (none of the column names do, nor a masks folder:
    other data gives its own with ``masks=FOLDER``; a segmentation run ``masks=SEG_RUN`` does carry over)."""
    keys = ("no_finding", "window", "frame", "mask", "mask_margin", "mask_missing", "mask_source", "postprocess",
            "harmonise")  # fmt: skip
    carried = {key: getattr(config, key) for key in keys}
    if is_segmentation_run(config.masks):  # trained with masks=SEG_RUN: the same segmenter masks the other data
        carried["masks"] = config.masks
    return carried
