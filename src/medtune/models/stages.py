"""A backbone's stages, read from timm's feature info: what ``freeze=N`` freezes and ``lr_decay=`` scales.

timm lists, for every backbone family, the module after which each feature level (stride 2, 4, 8...) is taken:
``layer1``-``layer4`` for a ResNet, ``blocks.0``-``blocks.6`` for an EfficientNet, ``stages.0``-``stages.3`` for a
ConvNeXt. Those modules end the stages; a listed single layer before the first block (a ResNet's ``act1``, a
DenseNet's ``norm0``) belongs to the stem. Parameters are taken in the order the network registers them, which is
the order it runs them in: the stem is everything before the first stage's first parameter, and stage ``i`` runs
from there to the last parameter of its module (an EfficientNet's ``blocks.4`` stage takes ``blocks.3`` too).
Parameters after the last stage (a final norm or 1x1 convolution) count as the last stage.
"""

from __future__ import annotations

from torch import nn

from medtune.errors import ConfigError

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def stage_modules(backbone: nn.Module, name: str = "backbone") -> list[str]:
    """The module names that end each stage, first to last.

    Raises:
        ConfigError: the backbone has no feature info (not a timm model), so its stages are unknown.

    >>> import timm
    >>> stage_modules(timm.create_model("resnet18", pretrained=False, num_classes=0))
    ['layer1', 'layer2', 'layer3', 'layer4']
    """
    info = getattr(backbone, "feature_info", None)
    if not info:
        raise ConfigError(
            f"{name} has no stage list (timm's feature_info), so freeze=N and lr_decay= cannot find its stages; "
            "use a timm backbone, or strategy=freeze / finetune"
        )
    modules = dict(backbone.named_modules())
    entries = info.get_dicts() if hasattr(info, "get_dicts") else list(info)
    stages: list[str] = []
    for entry in entries:
        module = modules.get(entry["module"])
        is_block = any(True for _ in module.children()) and not isinstance(module, _NORMS) if module else False
        if module is not None and (stages or is_block):  # single layers and norms before the first block: stem
            stages.append(entry["module"])
    return stages


def parameter_stages(backbone: nn.Module, name: str = "backbone") -> tuple[dict[str, int], int]:
    """Each parameter's stage (0: the stem, 1 to S: the stages) and the number of stages S.

    >>> import timm
    >>> stages, count = parameter_stages(timm.create_model("resnet18", pretrained=False, num_classes=0))
    >>> count, stages["conv1.weight"], stages["layer1.0.conv1.weight"], stages["layer4.1.bn2.bias"]
    (4, 0, 1, 4)
    """
    stages = stage_modules(backbone, name)
    params = [param for param, _ in backbone.named_parameters()]
    ends = []
    for stage in stages:
        inside = [j for j, param in enumerate(params) if param.startswith(stage + ".")]
        if inside:
            ends.append((min(inside), max(inside)))
    if not ends:
        raise ConfigError(f"{name}: none of its stages ({', '.join(stages) or 'none'}) holds parameters")
    first = ends[0][0]
    result = {}
    for j, param in enumerate(params):
        stage = 0 if j < first else next((i + 1 for i, (_, end) in enumerate(ends) if j <= end), len(ends))
        result[param] = stage
    return result, len(ends)


def frozen_parameters(backbone: nn.Module, freeze: int | str, name: str = "backbone") -> set[str]:
    """Names of the parameters ``freeze=N`` holds fixed: the stem and stages 1 to N (``all``: every one)."""
    if freeze == "all":
        return {param for param, _ in backbone.named_parameters()}
    if not freeze:
        return set()
    stages, count = parameter_stages(backbone, name)
    if int(freeze) > count:
        raise ConfigError(f"freeze={freeze}: {name} has {count} stages; give 0 to {count}, or all")
    return {param for param, stage in stages.items() if stage <= int(freeze)}


def still_frozen(backbone: nn.Module, unfrozen: int, name: str = "backbone") -> set[str]:
    """Names of the parameters still frozen when the last `unfrozen` stages learn (gradual unfreezing, ULMFiT's:
    the last stage first, the stem once every stage learns).

    >>> import timm
    >>> net = timm.create_model("resnet18", pretrained=False, num_classes=0)
    >>> [len(still_frozen(net, n)) for n in range(6)]
    [60, 45, 30, 15, 3, 0]
    """
    stages, count = parameter_stages(backbone, name)
    return {param for param, stage in stages.items() if stage <= count - unfrozen}


def frozen_norm_layers(backbone: nn.Module, frozen: set[str]) -> list[nn.Module]:
    """The normalisation layers whose parameters are all frozen: kept in eval mode so their statistics stay too."""
    layers = []
    for module_name, module in backbone.named_modules():
        if isinstance(module, _NORMS[0]):
            own = [f"{module_name}.{p}" for p, _ in module.named_parameters(recurse=False)]
            if own and all(p in frozen for p in own):
                layers.append(module)
    return layers


def stage_lr_scales(backbone: nn.Module, decay: float, name: str = "backbone") -> dict[str, float]:
    """timm-style layer-wise learning-rate decay over the stages: the head keeps the learning rate, the last stage
    gets ``decay`` times it, each earlier stage ``decay`` times the next one's, the stem the smallest."""
    stages, count = parameter_stages(backbone, name)
    return {param: decay ** (count + 1 - stage) for param, stage in stages.items()}
