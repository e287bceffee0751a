"""Grad-CAM building blocks: methods, target layers, class activation maps, overlays and mask energy.

>>> from medtune.explain import compute_cams, create_overlay  # doctest: +SKIP
>>> heat = compute_cams(trained.model, trained.preprocessing, images, targets=[1, 0])  # doctest: +SKIP

``medtune.explain`` itself is the command-level function (`medtune.engine.explain.explain`), so import what lives
here by name (``from medtune.explain import compute_cams``). The names below load on first use: they need
``pytorch_grad_cam``, whose import takes seconds (OpenCV, SciPy, matplotlib), and ``import medtune`` should not pay
for it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medtune.explain.cam import compute_cams
    from medtune.explain.layers import TokenGrid, create_reshape_transform, find_target_layer
    from medtune.explain.maps import compute_mask_energy, create_overlay
    from medtune.explain.methods import METHODS, create_cam, list_methods

_EXPORTS = {
    "METHODS": "methods",
    "create_cam": "methods",
    "list_methods": "methods",
    "TokenGrid": "layers",
    "create_reshape_transform": "layers",
    "find_target_layer": "layers",
    "compute_cams": "cam",
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
