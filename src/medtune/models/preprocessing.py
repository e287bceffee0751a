"""Preprocessing a backbone expects (mean, std, input size, interpolation, crop), read from its pretrained config."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from medtune.models.backbones import _check_count, check_backbone
from medtune.models.custom import NetworkSource, is_custom, network_source


@dataclass(frozen=True)
class Preprocessing:
    """How images are resized and normalised for a backbone.

    Args:
        mean: per-channel mean of the 0-1 scaled input, one value per input channel.
        std: per-channel standard deviation, one value per input channel.
        input_size: (channels, height, width) the pretrained weights were trained at.
        interpolation: resize interpolation (``"bicubic"``, ``"bilinear"``...).
        crop_pct: fraction of the resized image kept by the evaluation centre crop.
        crop_mode: timm's crop mode (``"center"``, ``"squash"``, ``"border"``).
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float
    crop_mode: str = "center"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and YAML (tuples become lists)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """Inverse of `to_dict`.

        >>> p = Preprocessing((0.5,), (0.5,), (1, 224, 224), "bicubic", 0.875)
        >>> Preprocessing.from_dict(p.to_dict()) == p
        True
        """
        return cls(
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            input_size=tuple(int(v) for v in data["input_size"]),
            interpolation=str(data["interpolation"]),
            crop_pct=float(data["crop_pct"]),
            crop_mode=str(data.get("crop_mode", "center")),
        )


def _per_channel(values: tuple[float, ...], in_chans: int) -> tuple[float, ...]:
    """Match timm's ``adapt_input_conv``: one channel sums the RGB filters, so it takes the average statistic;
    other counts repeat the channels cyclically."""
    values = tuple(float(v) for v in values)
    if in_chans == len(values):
        return values
    if in_chans == 1:
        return (sum(values) / len(values),)
    return tuple(values[i % len(values)] for i in range(in_chans))


def _data_config(backbone: str) -> dict[str, Any]:
    from timm.data import resolve_data_config

    pretrained_cfg = check_backbone(backbone)
    if pretrained_cfg is not None:
        return resolve_data_config(pretrained_cfg=pretrained_cfg.to_dict())
    import timm  # no registered config: the model builds a default one; random weights, no download

    return resolve_data_config(model=timm.create_model(backbone, pretrained=False))


def resolve_preprocessing(backbone: str, in_chans: int = 3, source: NetworkSource | None = None) -> Preprocessing:
    """Return the preprocessing of `backbone`'s pretrained weights, for `in_chans`-channel input.

    Values come from timm's pretrained config for the name (``timm.data.resolve_data_config``); nothing is
    downloaded and no pretrained model is built. timm itself keeps 3-channel mean/std and input size even for a
    1-channel model; here they follow the stem adaptation instead: one channel gets the average of the RGB
    statistics (timm sums the RGB filters), other channel counts repeat them cyclically.

    Args:
        backbone: a timm model name (with or without a pretrained tag).
        in_chans: input channels of the model.
        source: your own network's recorded code (a trained run's), instead of reading `backbone` now.

    Returns:
        The frozen `Preprocessing`.

    Raises:
        ConfigError: unknown backbone, or `in_chans` below 1.

    >>> p = resolve_preprocessing("tf_efficientnet_lite0", in_chans=1)
    >>> p.mean, p.std, p.input_size, p.interpolation, p.crop_pct
    ((0.5,), (0.5,), (1, 224, 224), 'bicubic', 0.875)
    """
    _check_count("in_chans", in_chans, 1)
    if source is not None or is_custom(backbone):
        from medtune.models.custom_build import custom_data_config

        config = custom_data_config(source or network_source(backbone))
    else:
        config = _data_config(backbone)
    _, height, width = config["input_size"]
    return Preprocessing(
        mean=_per_channel(config["mean"], in_chans),
        std=_per_channel(config["std"], in_chans),
        input_size=(in_chans, int(height), int(width)),
        interpolation=str(config["interpolation"]),
        crop_pct=float(config["crop_pct"]),
        crop_mode=str(config.get("crop_mode", "center")),
    )
