"""Class activation maps for batches of uint8 images, computed with ``pytorch_grad_cam``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medtune.cams.layers import create_reshape_transform, find_target_layer
from medtune.cams.methods import create_cam
from medtune.errors import ConfigError, DataError
from medtune.models import Classifier, Preprocessing
from medtune.models.inference import Normalize


class _NormalizedNetwork(nn.Module):
    """0-1 float images in, logits out: the classifier behind the same normalisation it was trained with.

    Channels-last, as in training and prediction: the forward and backward passes take about half the time of the
    default layout on the CPU (`benchmarks/explain.py`), and the maps are the same.
    """

    def __init__(self, network: nn.Module, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.normalize = Normalize(preprocessing, channels_last=True)
        self.network = network.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        if torch.is_grad_enabled():
            # The weights are frozen while maps are computed, so the input carries the graph to the target layer.
            x.requires_grad_(True)
        return self.network(x)


def compute_cams(
    network: nn.Module,
    preprocessing: Preprocessing,
    images: torch.Tensor,
    targets: Sequence[int],
    method: str = "gradcam",
    layer: str | None = None,
    batch_size: int | None = None,
) -> np.ndarray:
    """Class activation maps of `images` for the classes `targets`.

    Args:
        network: a `medtune.models.Classifier` (its ``backbone`` holds the target layer) or a whole timm
            classifier; it ends in eval mode and channels-last, with its parameters' ``requires_grad`` as they were.
        preprocessing: the network's normalisation; images are normalised as for training and prediction.
        images: uint8 ``(N, C, H, W)``, as the image store and ``medtune predict`` produce them (0-1 floats work).
        targets: one class index per image.
        method: a name in `medtune.explain.METHODS` (``gradcam``, ``gradcam++``, ``scorecam``, ``eigencam``,
            ``hirescam``, ``layercam``).
        layer: dotted module name relative to the backbone; None chooses one for the images' size
            (`find_target_layer`).
        batch_size: images per forward and backward pass (ScoreCAM: masked images per forward pass); None takes
            `default_batch_size` for the network's device.

    Returns:
        float32 ``(N, H, W)`` in [0, 1], at the input size; each map scaled to its own maximum.

    Raises:
        ConfigError: unknown method or layer, or a target class the network does not have.
        DataError: `images` is not an ``(N, C, H, W)`` tensor with the preprocessing's channel count, or the
            number of targets differs from the number of images.

    >>> heat = compute_cams(trained.model, trained.preprocessing, images, [1] * len(images))  # doctest: +SKIP
    """
    images = _check_images(images, preprocessing)
    targets = _check_targets(targets, len(images))
    device = next(network.parameters()).device
    batch_size = default_batch_size(device) if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    backbone = network.backbone if isinstance(network, Classifier) else network
    _, target_layer = find_target_layer(backbone, layer, image_size=min(images.shape[-2:]))
    # Grad-CAM needs autograd; medtune predicts under inference_mode, which enable_grad alone cannot lift.
    with torch.inference_mode(False), torch.enable_grad():
        # built here, so that the channels-last copies of the weights are normal tensors, not inference tensors
        wrapper = _NormalizedNetwork(network, preprocessing).to(device)
        cam = create_cam(method, wrapper, target_layer, create_reshape_transform(backbone))  # hooks; eval mode
        cam.batch_size = batch_size  # read by ScoreCAM for its masked forward passes
        # Not `with cam:`: its __exit__ swallows IndexError (a target class the network lacks) and returns nothing.
        try:
            with _frozen_weights(network):
                maps = [
                    cam(
                        _as_float(images[i : i + batch_size]),
                        [ClassifierOutputTarget(t) for t in targets[i : i + batch_size]],
                    )
                    for i in range(0, len(images), batch_size)
                ]
        except IndexError:
            raise ConfigError(
                f"target classes {sorted(set(targets))} include one the network does not output; give class "
                "indices below its number of outputs"
            ) from None
        finally:
            cam.activations_and_grads.release()
    return np.clip(np.concatenate(maps), 0.0, 1.0).astype(np.float32)


def default_batch_size(device: torch.device) -> int:
    """Images per Grad-CAM pass: 16 on a GPU; 4 on the CPU, where larger batches run slower (EfficientNet-Lite0 at
    224 px on 2 cores: 46 images/s at 2-4, 29 at 16, 12 at 32; `benchmarks/explain.py`)."""
    return 16 if device.type == "cuda" else 4


@contextmanager
def _frozen_weights(network: nn.Module) -> Iterator[None]:
    """No gradient for the weights while maps are computed (the input carries the graph instead): faster, and no
    ``.grad`` is left on the network. Each parameter's ``requires_grad`` is restored afterwards."""
    flags = [p.requires_grad for p in network.parameters()]
    network.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(network.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)


def _check_images(images: torch.Tensor, preprocessing: Preprocessing) -> torch.Tensor:
    channels = len(preprocessing.mean)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != channels or not len(images):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(
            f"images of shape {shape} cannot be explained: expected a uint8 tensor (N, {channels}, H, W) with N >= 1, "
            "as the image store and predict produce (permute (N, H, W, C) arrays with .permute(0, 3, 1, 2))"
        )
    return images


def _check_targets(targets: Sequence[int], count: int) -> list[int]:
    values = [int(t) for t in np.asarray(targets).reshape(-1)]
    if len(values) != count:
        raise DataError(f"{len(values)} target classes for {count} images: give one class index per image")
    if any(v < 0 for v in values):
        raise ConfigError(f"target classes must be indices >= 0, got {sorted(set(values))}")
    return values


def _as_float(images: torch.Tensor) -> torch.Tensor:
    """0-1 floats: ScoreCAM multiplies the input by masks, which must not leave uint8 scaling behind."""
    return images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
