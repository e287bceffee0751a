"""Inference with the bare network: probabilities for store rows or for a stream of decoded images.

No Lightning here: prediction needs only the plain module, its preprocessing and a device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from medtune.data.store import ImageStore, StoreDataset, create_store_loader
from medtune.engine.module import Normalize, to_probabilities
from medtune.models import Preprocessing


class InferenceModel(nn.Module):
    """Normalisation and network in one module: uint8 ``(B, C, H, W)`` images in, class probabilities out.

    Args:
        model: the trained network.
        preprocessing: its normalisation.
        tta: average the probabilities of each image and its horizontal mirror.
        channels_last: run in channels-last layout.
        multilabel: an independent sigmoid per label instead of a softmax over classes.
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: Preprocessing,
        tta: bool = False,
        channels_last: bool = True,
        multilabel: bool = False,
    ):
        super().__init__()
        self.normalize = Normalize(preprocessing, channels_last)
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.tta = tta
        self.multilabel = multilabel

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        probs = to_probabilities(self.model(x), self.multilabel)
        if self.tta:
            probs = (probs + to_probabilities(self.model(x.flip(-1)), self.multilabel)) / 2
        return probs


def inference_device() -> torch.device:
    """The first GPU when there is one, else the CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


@torch.inference_mode()
def predict_batches(
    model: InferenceModel,
    batches: Iterable[torch.Tensor],
    device: torch.device | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Probabilities ``(N, K)`` for a stream of uint8 image batches.

    Args:
        model: the network with its normalisation.
        batches: uint8 ``(B, C, H, W)`` tensors.
        device: where to run (`inference_device` when None).
        on_batch: called with the size of each finished batch (progress).
    """
    device = device or inference_device()
    model = model.to(device).eval()
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    out = []
    for images in batches:
        with autocast:
            out.append(model(images.to(device, non_blocking=True)).float().cpu())
        if on_batch:
            on_batch(len(images))
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


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
