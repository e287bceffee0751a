"""What an image store holds its images in: size, channels, resizing, DICOM windowing and how masks are used.

Kept apart from the store itself so that `medtune.data.masks` can take a spec without importing the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medtune.data.images import INTERPOLATIONS, RESIZE_MODES
from medtune.errors import ConfigError

#: How a classifier uses a row's mask (see `medtune.data.masks`).
MASK_MODES = ("none", "multiply", "crop", "channel")


@dataclass(frozen=True)
class StoreSpec:
    """The preprocessing a store holds its images in.

    Attributes:
        size: side of the square images in pixels.
        channels: 1 (gray) or 3 (colour).
        resize: ``squash``, ``pad`` or ``crop`` (see `medtune.data.images.resize`).
        interpolation: resampling filter: ``nearest``, ``bilinear``, ``bicubic``, ``lanczos`` or ``box``.
        window: DICOM windowing (``auto``, ``none`` or ``"CENTRE,WIDTH"``).
        frame: the frame of multi-frame DICOM files (None refuses them).
        mask: how each row's mask is used: ``none``, ``multiply``, ``crop`` or ``channel`` (see `medtune.data.masks`).
        mask_margin: ``crop``: the margin around the mask's box, as a share of the box's size.
    """

    size: int
    channels: int = 1
    resize: str = "squash"
    interpolation: str = "bicubic"
    window: str = "auto"
    frame: int | str | None = None
    mask: str = "none"
    mask_margin: float = 0.1

    @classmethod
    def from_config(cls, config: Any) -> StoreSpec:
        """The spec a resolved `medtune.config.Config` asks for (size, channels, resizing, DICOM and mask keys)."""
        return cls(
            int(config.image_size), int(config.channels), config.resize, config.interpolation, config.window,
            config.frame, config.mask, config.mask_margin,
        )  # fmt: skip

    @property
    def stored_channels(self) -> int:
        """Channels of a stored image: the image's, plus one for the mask with ``mask="channel"``."""
        return self.channels + (self.mask == "channel")

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 1:
            raise ConfigError(f"store size must be a positive number of pixels, got {self.size!r}")
        if self.channels not in (1, 3):
            raise ConfigError(f"store channels must be 1 (gray) or 3 (colour), got {self.channels!r}")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize mode {self.resize!r} is unknown; expected one of {', '.join(RESIZE_MODES)}")
        if self.interpolation not in INTERPOLATIONS:
            raise ConfigError(
                f"interpolation {self.interpolation!r} is unknown; expected one of {', '.join(INTERPOLATIONS)}"
            )
        if self.mask not in MASK_MODES:
            raise ConfigError(f"mask mode {self.mask!r} is unknown; expected one of {', '.join(MASK_MODES)}")
