"""One resolution of a configuration against its data, used by every command.

``auto`` and unset keys are filled in here and nowhere else: the channel count (from the images), the working size
(the backbone's pretrained size, capped by the images' own size), the interpolation (the backbone's), the network's
input channels (one more for ``mask=channel``) and the normalisation of the backbone for those channels. The names
of registered components (reader, head, optimizer, schedule, loss, augmentation preset) are checked against their
registries here too, so a newly registered component needs no change to the configuration schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtune._registry import Registry
from medtune.config import Config
from medtune.data.decode import decode_entries, table_entries
from medtune.data.images import INTERPOLATIONS
from medtune.data.store import StoreSpec, detect_channels
from medtune.data.table import Table
from medtune.errors import ConfigError
from medtune.models import Preprocessing, resolve_preprocessing
from medtune.models.custom import NetworkSource
from medtune.tasks import get_task

#: The smallest working size chosen automatically: EfficientNet-sized networks lose too much below it.
MIN_AUTO_SIZE = 64
#: ``epochs`` unset: train until about this many training images have been seen, in `AUTO_EPOCHS` epochs.
AUTO_IMAGES_SEEN = 25_000
AUTO_EPOCHS = (4, 20)


@dataclass(frozen=True)
class Resolved:
    """A configuration with nothing left to choose, and the preprocessing of its network.

    Attributes:
        config: the configuration with ``data`` and ``masks`` absolute, ``channels``, ``image_size`` and
            ``interpolation`` set.
        preprocessing: the backbone's normalisation for `in_chans` input channels.
    """

    config: Config
    preprocessing: Preprocessing

    @property
    def image_size(self) -> int:
        """The working size in pixels (the side of every stored image)."""
        return int(self.config.image_size)

    @property
    def channels(self) -> int:
        """The image channels: 1 (gray) or 3 (colour)."""
        return int(self.config.channels)

    @property
    def in_chans(self) -> int:
        """Input channels of the network: the image's, plus one for ``mask=channel``."""
        return network_channels(self.config)

    @property
    def spec(self) -> StoreSpec:
        """How the image store keeps the images for this configuration."""
        return StoreSpec.from_config(self.config)


def network_channels(config: Config) -> int:
    """Input channels of the network of a resolved `config`: the image's, plus one for a classifier's
    ``mask=channel`` (a segmenter's mask channel is its target, not an input)."""
    if config.channels == "auto":
        raise ConfigError("channels=auto has not been resolved against the data yet; call resolve_config first")
    return _input_channels(config, int(config.channels))


def _input_channels(config: Config, channels: int) -> int:
    return channels + (config.mask == "channel" and not get_task(config.task).mask_is_target)


def registries(task: str = "classify") -> dict[str, Registry]:
    """The configuration keys that name a registered component, each with its registry, for `task`
    (segmentation has its own losses and an architecture, and no head)."""
    from medtune.data.readers import READERS
    from medtune.training.augment import AUGMENT_PRESETS
    from medtune.training.optim import OPTIMIZERS, SCHEDULERS

    found: dict[str, Registry] = {"reader": READERS, "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS,
                                  "augment": AUGMENT_PRESETS}  # fmt: skip
    return {**found, **get_task(task).registries()}


def check_name(key: str, value: object, task: str = "classify") -> None:
    """Check one configuration value against its key's registry (keys without one, and ``reader=auto``, pass);
    a segmentation loss may be a sum such as ``dice+bce``.

    Raises:
        ConfigError: an unknown name, with the closest registered names and the full list.

    >>> check_name("head", "pool-bn-dropout")
    """
    if get_task(task).check_name(key, value):
        return
    registry = registries(task).get(key)
    if registry is not None and not (key == "reader" and value == "auto"):
        registry.get(str(value))


def check_names(config: Config) -> None:
    """Check every key that names a registered component against its registry (`check_name`).

    Raises:
        ConfigError: an unknown name, with the closest registered names and the full list.
    """
    for key in registries(config.task):
        check_name(key, getattr(config, key), config.task)


def resolve_config(config: Config, table: Table | None = None, network: NetworkSource | None = None) -> Resolved:
    """Fill in what ``auto`` leaves open, the same way for every command.

    The automatic size is the backbone's pretrained size, but never more than the images' own median size
    (rounded up to a multiple of 32, at least 64 px): upscaling 28 px MedMNIST images to 224 px adds no detail and
    costs 12 times the compute. Channels are 3 when any of the first 32 images is in colour.

    Args:
        config: the configuration, as given or as saved by a run (already resolved: then `table` is not needed).
        table: the data, for the channels and the size when they are ``auto``.
        network: your own network's code as a run recorded it (else `config.backbone` is read as it is now).

    Raises:
        ConfigError: an unknown component name, or ``auto`` keys without a table to resolve them on.

    >>> from medtune.config import load_config
    >>> resolved = resolve_config(load_config(channels=1, image_size=64))
    >>> resolved.in_chans, resolved.preprocessing.mean
    (1, (0.5,))
    """
    check_names(config)
    if table is None and (config.channels == "auto" or config.image_size is None):
        raise ConfigError("channels=auto or an unset image_size needs the data to be resolved; give the table")
    channels = config.channels
    if channels == "auto":
        channels = detect_channels(table, window=config.window, frame=config.frame)
    preprocessing = resolve_preprocessing(config.backbone, _input_channels(config, int(channels)), network)
    size = config.image_size or auto_size(table, preprocessing.input_size[-1])
    size = get_task(config.task).working_size(size, bool(config.image_size))
    interpolation = config.interpolation or preprocessing.interpolation
    if interpolation not in INTERPOLATIONS:
        interpolation = "bicubic"
    values = config.model_dump()
    values.update(channels=channels, image_size=size, interpolation=interpolation)
    if config.epochs is None and table is not None:
        values["epochs"] = auto_epochs(training_images(config, table))
    if config.data:
        values["data"] = str(Path(config.data).expanduser().resolve())
    if config.masks:
        values["masks"] = str(Path(config.masks).expanduser().resolve())
    return Resolved(Config(**values), preprocessing)


def auto_size(table: Table, backbone_size: int, sample: int = 32) -> int:
    """The automatic working size: the backbone's size, capped by the median longer side of the first `sample`
    images rounded up to a multiple of 32, and at least `MIN_AUTO_SIZE`."""
    side = median_side(table, sample)
    return backbone_size if side is None else size_for(side, backbone_size)


def median_side(table: Table, sample: int = 32) -> float | None:
    """The median longer side of the first `sample` images (None when none can be decoded)."""
    head = table_entries(table.with_frame(table.frame.iloc[:sample]))
    sides = [max(image.shape[:2]) for _, image in decode_entries(head) if isinstance(image, np.ndarray)]
    return float(np.median(sides)) if sides else None


def size_for(side: float, backbone_size: int) -> int:
    """The automatic working size for images of `side` pixels: `side` rounded up to a multiple of 32, at least
    `MIN_AUTO_SIZE`, at most the backbone's size.

    >>> size_for(28, 224), size_for(256, 224), size_for(70, 224)
    (64, 224, 96)
    """
    return int(min(backbone_size, max(MIN_AUTO_SIZE, math.ceil(side / 32) * 32)))


def training_images(config: Config, table: Table) -> int:
    """How many images the train split will hold, as `medtune.data.split.assign_splits` will cut it: the given
    train rows (less the validation share when no val is given) or the share left by ``val_fraction`` and
    ``test_fraction``, capped by ``train_limit`` and ``limit``."""
    frame = table.frame
    if table.has_splits:
        train = int((frame["split"] == "train").sum())
        if not (frame["split"] == "val").any() or not (frame["split"] == "test").any():
            train = round(train * (1.0 - config.val_fraction))
    else:
        train = round(len(frame) * (1.0 - config.val_fraction - config.test_fraction))
    caps = [cap for cap in (config.train_limit, config.limit) if cap]
    return max(1, min([train, *caps]))


def auto_epochs(train_images: int) -> int:
    """The number of epochs when ``epochs`` is unset: enough to see `AUTO_IMAGES_SEEN` training images, within
    `AUTO_EPOCHS`. Large sets get few passes, small ones many (a schedule in steps, not in epochs).

    >>> auto_epochs(4708), auto_epochs(1080), auto_epochs(300), auto_epochs(50_000)
    (5, 20, 20, 4)
    """
    low, high = AUTO_EPOCHS
    return int(min(high, max(low, round(AUTO_IMAGES_SEEN / max(1, train_images)))))
