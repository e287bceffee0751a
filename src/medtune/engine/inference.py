"""Probabilities for rows of an image store, with the bare inference network (`medtune.models.inference`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medtune.data.loader import StoreDataset, create_store_loader
from medtune.data.store import ImageStore
from medtune.models.inference import InferenceModel, predict_batches


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
