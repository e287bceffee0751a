"""The bare inference network: a trained `Classifier` with its normalisation, memory layout and probability
function around it, as one plain ``nn.Module``. uint8 images in, class probabilities out.

Prediction, evaluation, Grad-CAM, the leaderboard's speed and export use this module and nothing of the trainer:
no Lightning is imported on these paths. The LightningModule wraps the same `Normalize` and network for training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medtune._registry import Registry
from medtune.models.preprocessing import Preprocessing


@dataclass(frozen=True)
class Activation:
    """How a network's outputs become class probabilities, and back.

    Attributes:
        probabilities: outputs ``(B, O)`` to class probabilities ``(B, K)``.
        log_probabilities: outputs to log class probabilities.
        from_log_probabilities: log class probabilities to outputs with exactly those probabilities (an ensemble
            averages its members' probabilities and answers in their own output space).
    """

    probabilities: Callable[[torch.Tensor], torch.Tensor]
    log_probabilities: Callable[[torch.Tensor], torch.Tensor]
    from_log_probabilities: Callable[[torch.Tensor], torch.Tensor]


#: Activations by the name a task gives (`medtune.tasks.Task.activation`); a task may register its own.
ACTIVATIONS: Registry[Activation] = Registry("activation")
ACTIVATIONS.register("softmax")(Activation(lambda z: z.softmax(dim=1), lambda z: z.log_softmax(dim=1), lambda lp: lp))
ACTIVATIONS.register("sigmoid")(
    Activation(torch.sigmoid, nn.functional.logsigmoid, lambda lp: lp - torch.log1p(-lp.exp().clamp(max=1 - 1e-7)))
)


def to_probabilities(logits: torch.Tensor, activation: str = "softmax") -> torch.Tensor:
    """Class probabilities from logits: a softmax over classes, or an independent sigmoid per label
    (``activation="sigmoid"``: multi-label), or what a registered activation says.

    >>> logits = torch.tensor([[0.0, 0.0]])
    >>> to_probabilities(logits).tolist(), to_probabilities(logits, "sigmoid").tolist()
    ([[0.5, 0.5]], [[0.5, 0.5]])
    """
    return ACTIVATIONS.get(activation).probabilities(logits.float())


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as floats in 0-1; float images (already 0-1) as they are, in float32."""
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


class Normalize(nn.Module):
    """uint8 (or 0-1 float) images to the backbone's normalised float input, channels-last when asked."""

    def __init__(self, preprocessing: Preprocessing, channels_last: bool = True) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, -1, 1, 1), persistent=False)
        self.channels_last = channels_last

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (to_unit(images) - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


class InferenceModel(nn.Module):
    """Normalisation and network in one module: uint8 ``(B, C, H, W)`` images in, class probabilities out.

    Args:
        model: the trained network.
        preprocessing: its normalisation.
        tta: average the probabilities of each image and its horizontal mirror.
        channels_last: run in channels-last layout.
        activation: how outputs become probabilities (`ACTIVATIONS`: the run's task says which).

    >>> from medtune.models import create_classifier, resolve_preprocessing
    >>> net = create_classifier("tf_efficientnet_lite0", 2, in_chans=1, pretrained=False)
    >>> model = InferenceModel(net, resolve_preprocessing("tf_efficientnet_lite0", 1)).eval()
    >>> model(torch.zeros(1, 1, 64, 64, dtype=torch.uint8)).shape
    torch.Size([1, 2])
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: Preprocessing,
        tta: bool = False,
        channels_last: bool = True,
        activation: str = "softmax",
    ):
        super().__init__()
        self.normalize = Normalize(preprocessing, channels_last)
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.tta = tta
        self.activation = activation

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        probs = to_probabilities(self.model(x), self.activation)
        if self.tta:
            probs = (probs + to_probabilities(self.model(x.flip(-1)), self.activation)) / 2
        return probs


class SegmenterInference(nn.Module):
    """Normalisation and segmentation network in one module: uint8 ``(B, C, H, W)`` images in, ``(B, H, W)``
    probabilities of "inside the mask" out (with `tta`, averaged with the mirrored image's, mirrored back)."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, tta: bool = False, channels_last: bool = True):
        super().__init__()
        self.normalize = Normalize(preprocessing, channels_last)
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.tta = tta

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.normalize(images)
        probs = torch.sigmoid(self.model(x)[:, 0])
        if self.tta:
            probs = (probs + torch.sigmoid(self.model(x.flip(-1))[:, 0]).flip(-1)) / 2
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
    """Probabilities ``(N, K)`` (a segmenter's: ``(N, H, W)``) for a stream of uint8 image batches.

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
