"""The class activation map methods of ``pytorch_grad_cam``, by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM
from pytorch_grad_cam.base_cam import BaseCAM
from torch import nn

from medtune._registry import Registry

#: Method name -> ``pytorch_grad_cam`` class.
METHODS: Registry[type[BaseCAM]] = Registry("Grad-CAM method")
METHODS.register("gradcam")(GradCAM)  # channel weights: the gradient averaged over the map
METHODS.register("gradcam++")(GradCAMPlusPlus)  # second-order weights; several objects of one class
METHODS.register("scorecam")(ScoreCAM)  # no gradients: one masked forward pass per channel (slow)
METHODS.register("eigencam")(EigenCAM)  # no gradients, no class: first principal component of the activations
METHODS.register("hirescam")(HiResCAM)  # gradient times activation per position, then summed over channels
METHODS.register("layercam")(LayerCAM)  # positive gradient times activation per position


def list_methods() -> list[str]:
    """Names of the class activation map methods.

    >>> list_methods()
    ['gradcam', 'gradcam++', 'scorecam', 'eigencam', 'hirescam', 'layercam']
    """
    return METHODS.names()


def create_cam(
    method: str,
    model: nn.Module,
    layer: nn.Module,
    reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> BaseCAM:
    """Build a ``pytorch_grad_cam`` object for `method` on one target `layer` of `model`.

    The object registers hooks on `layer`; release them with ``cam.activations_and_grads.release()``.

    Raises:
        ConfigError: unknown `method`; the message lists the valid names.
    """
    cam_class = METHODS.get(str(method).strip().lower())
    return cam_class(model=model, target_layers=[layer], reshape_transform=reshape_transform)
