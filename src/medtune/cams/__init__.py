"""Grad-CAM building blocks: methods, target layers, class activation maps, overlays and mask energy.

>>> from medtune.cams import compute_cams, create_overlay  # doctest: +SKIP
>>> heat = compute_cams(trained.model, trained.preprocessing, images, targets=[1, 0])  # doctest: +SKIP

Modules: `methods` (the ``pytorch_grad_cam`` methods by name), `layers` (the target layer of any timm backbone
and the reshape of token maps), `compute` (maps for batches of uint8 images), `maps` (overlays and the share of
heat inside a mask: pure numpy). The command that writes explanations is `medtune.apply.explain`, reached as the
function ``medtune.explain``.

The names below load on first use: they need
``pytorch_grad_cam``, whose import takes seconds (OpenCV, SciPy, matplotlib), and ``import medtune`` should not pay
for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medtune.cams.compute import compute_cams
    from medtune.cams.layers import TokenGrid, create_reshape_transform, find_target_layer
    from medtune.cams.maps import compute_mask_energy, create_overlay
    from medtune.cams.methods import METHODS, create_cam, list_methods

_EXPORTS = {
    "METHODS": "methods",
    "create_cam": "methods",
    "list_methods": "methods",
    "TokenGrid": "layers",
    "create_reshape_transform": "layers",
    "find_target_layer": "layers",
    "compute_cams": "compute",
    "compute_mask_energy": "maps",
    "create_overlay": "maps",
}

__all__ = [
    "METHODS",
    "TokenGrid",
    "compute_cams",
    "compute_mask_energy",
    "create_cam",
    "create_overlay",
    "create_reshape_transform",
    "find_target_layer",
    "list_methods",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
