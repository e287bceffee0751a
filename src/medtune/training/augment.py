"""Augmentation presets built from torchvision ``transforms.v2``, applied to uint8 ``(C, H, W)`` store images.

A preset gives default values to the per-transform keys (``hflip``, ``rotate``...); a key set in the
configuration overrides its preset's value, so ``augment=flip rotate=5`` adds a small rotation to flipping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import torch
from torchvision.transforms import v2

from medtune._registry import Registry

if TYPE_CHECKING:
    from medtune.config.schema import Augmentation


@dataclass(frozen=True)
class AugmentSpec:
    """Strength of each random transform; 0 (or 1 for `crop_scale`) switches it off.

    Args:
        hflip: probability of a horizontal flip.
        vflip: probability of a vertical flip.
        rotate: largest rotation in degrees, either way.
        crop_scale: a random resized crop keeps between this share and all of the image's area.
        brightness: brightness factor drawn from ``[1 - b, 1 + b]``.
        contrast: contrast factor drawn from ``[1 - c, 1 + c]``.
    """

    hflip: float = 0.0
    vflip: float = 0.0
    rotate: float = 0.0
    crop_scale: float = 1.0
    brightness: float = 0.0
    contrast: float = 0.0


#: Named starting points for `AugmentSpec`.
AUGMENT_PRESETS: Registry[AugmentSpec] = Registry("augmentation preset")
AUGMENT_PRESETS.register("none")(AugmentSpec())
AUGMENT_PRESETS.register("flip")(AugmentSpec(hflip=0.5))
AUGMENT_PRESETS.register("medical")(AugmentSpec(hflip=0.5, rotate=10.0, crop_scale=0.8, brightness=0.1, contrast=0.1))


def scale_augment(spec: AugmentSpec, strength: float) -> AugmentSpec:
    """`spec` with its rotation, jitter and crop (the share of area it may drop) times `strength`; flips unchanged.

    >>> strong = scale_augment(AUGMENT_PRESETS.get("medical"), 2.0)
    >>> strong.rotate, strong.crop_scale
    (20.0, 0.6)
    """
    if strength == 1.0:
        return spec
    return replace(
        spec,
        rotate=min(180.0, spec.rotate * strength),
        crop_scale=round(max(0.05, 1.0 - (1.0 - spec.crop_scale) * strength), 6),
        brightness=min(1.0, spec.brightness * strength),
        contrast=min(1.0, spec.contrast * strength),
    )


def create_mixup(config: Augmentation, num_classes: int, multi_label: bool) -> Callable | None:
    """timm's batch mixup / cutmix (``mixup=``, ``cutmix=``: the Beta distributions' alpha; with both, each batch
    takes one of them at random), or None when both are off. It is called as ``images, soft_targets =
    mix(images, targets)`` on an even batch; the loss then takes the mixed (soft) targets.
    """
    if not (config.mixup or config.cutmix):
        return None
    from timm.data.mixup import Mixup

    return Mixup(mixup_alpha=config.mixup, cutmix_alpha=config.cutmix, label_smoothing=0.0,
                 num_classes=num_classes, multi_label=multi_label)  # fmt: skip


def resolve_augment(config: Augmentation) -> AugmentSpec:
    """The preset named by ``augment=`` (its magnitudes times ``augment_strength``) with every per-transform key
    the augmentation section sets.

    >>> from medtune.config import load_config
    >>> resolve_augment(load_config(augment="flip", rotate=5).sections.augmentation).rotate
    5.0
    """
    preset = scale_augment(AUGMENT_PRESETS.get(config.augment), config.augment_strength)
    overrides = {key: getattr(config, key) for key in asdict(preset) if getattr(config, key) is not None}
    return replace(preset, **{key: float(value) for key, value in overrides.items()})


def create_train_transform(
    spec: AugmentSpec, size: int, mask: str = "none"
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A transform of one uint8 ``(C, size, size)`` image, drawing new random parameters per image; None when
    the spec changes nothing.

    Geometry comes first (crop, rotation, flips, all of which keep the size), then intensity, so the output is
    still uint8 of the same shape and normalisation stays on the accelerator. Masks follow the geometry: with
    ``mask="channel"`` the last channel is the mask, moved with the image, kept 0 or 255, and left out of the
    intensity changes; with ``mask="multiply"`` pixels that are 0 after the geometry (outside the mask, or
    rotated in) stay 0 after the intensity changes, which would otherwise lift them towards the mean.
    """
    geometry: list[torch.nn.Module] = []
    if spec.crop_scale < 1.0:
        geometry.append(v2.RandomResizedCrop(size, scale=(spec.crop_scale, 1.0), ratio=(0.9, 1.1), antialias=True))
    if spec.rotate > 0:
        geometry.append(v2.RandomRotation(spec.rotate, interpolation=v2.InterpolationMode.BILINEAR))
    if spec.hflip > 0:
        geometry.append(v2.RandomHorizontalFlip(spec.hflip))
    if spec.vflip > 0:
        geometry.append(v2.RandomVerticalFlip(spec.vflip))
    intensity = None
    if spec.brightness > 0 or spec.contrast > 0:
        intensity = v2.ColorJitter(brightness=spec.brightness or None, contrast=spec.contrast or None)
    if not geometry and intensity is None:
        return None
    if mask in ("channel", "multiply"):
        return MaskedTransform(v2.Compose(geometry) if geometry else None, intensity, mask)
    return v2.Compose([*geometry, *([intensity] if intensity is not None else [])])


class MaskedTransform(torch.nn.Module):
    """Geometry on every channel, then intensity on the image alone (see `create_train_transform`)."""

    def __init__(self, geometry: torch.nn.Module | None, intensity: torch.nn.Module | None, mask: str) -> None:
        super().__init__()
        self.geometry, self.intensity, self.mask = geometry, intensity, mask

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.geometry is not None:
            image = self.geometry(image)
        if self.mask == "channel":
            pixels, plane = image[:-1], image[-1:]
            if self.intensity is not None:
                pixels = self.intensity(pixels)
            return torch.cat([pixels, (plane > 127).to(torch.uint8) * 255])
        if self.intensity is None:
            return image
        return self.intensity(image) * (image > 0).any(dim=0, keepdim=True)
