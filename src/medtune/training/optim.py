"""Optimizers and learning-rate schedules by name, built from torch.optim.

Parameter groups: the head, and (unless the strategy freezes it) the backbone, each split into parameters with
weight decay (weights of convolutions and linear layers) and without (biases and normalisation layers), as timm
does. The schedule is stepped every optimizer step: a linear warm-up, then the chosen shape.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

from medtune._registry import Registry
from medtune.models.stages import frozen_parameters, stage_lr_scales

if TYPE_CHECKING:
    from medtune.config.schema import Optimisation, Schedule

#: Optimizer builders: ``(param_groups, optimisation) -> torch.optim.Optimizer``.
OPTIMIZERS: Registry[Callable[[list[dict], Optimisation], torch.optim.Optimizer]] = Registry("optimizer")
OPTIMIZERS.register("sgd")(
    lambda groups, c: torch.optim.SGD(
        groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov and c.momentum > 0, weight_decay=c.weight_decay
    )
)
OPTIMIZERS.register("adam")(lambda groups, c: torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay))
OPTIMIZERS.register("adamw")(lambda groups, c: torch.optim.AdamW(groups, lr=c.lr, weight_decay=c.weight_decay))
OPTIMIZERS.register("adamax")(lambda groups, c: torch.optim.Adamax(groups, lr=c.lr, weight_decay=c.weight_decay))
OPTIMIZERS.register("adagrad")(lambda groups, c: torch.optim.Adagrad(groups, lr=c.lr, weight_decay=c.weight_decay))

#: Schedule shapes after warm-up: ``(progress 0..1, epoch, schedule) -> factor of the peak learning rate``.
#: Schedules: ``(optimizer, schedule, total_steps, warmup_steps) -> LRScheduler``, stepped every optimizer step.
SCHEDULERS: Registry[Callable[..., torch.optim.lr_scheduler.LRScheduler]] = Registry("scheduler")


def warmup_schedule(
    shape: Callable[[float, float, Schedule], float],
) -> Callable[..., torch.optim.lr_scheduler.LambdaLR]:
    """A schedule builder: a linear warm-up over the warm-up steps, then ``shape(progress, epoch, config)``."""

    def build(
        optimizer: torch.optim.Optimizer, config: Schedule, total_steps: int, warmup: int
    ) -> torch.optim.lr_scheduler.LambdaLR:
        steps_per_epoch = total_steps / config.epochs

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(1, total_steps - warmup)
            return shape(min(progress, 1.0), step / steps_per_epoch, config)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    return build


SCHEDULERS.register("cosine")(warmup_schedule(lambda progress, epoch, c: 0.5 * (1.0 + math.cos(math.pi * progress))))
SCHEDULERS.register("constant")(warmup_schedule(lambda progress, epoch, c: 1.0))
SCHEDULERS.register("step")(warmup_schedule(lambda progress, epoch, c: c.step_gamma ** int(epoch // c.step_epochs)))


@SCHEDULERS.register("one-cycle")
def one_cycle(
    optimizer: torch.optim.Optimizer, config: Schedule, total_steps: int, warmup: int
) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's OneCycleLR; its ramp lasts ``warmup_epochs`` (a share of 0.05 to 0.5 of the steps, else 0.3)."""
    pct = min(0.5, max(warmup / total_steps, 0.05)) if config.warmup_epochs > 0 else 0.3
    max_lr = [group["lr"] for group in optimizer.param_groups]
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=total_steps, pct_start=pct)


def _decay_split(params: Iterable[tuple[str, nn.Parameter]]) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    decay, no_decay = [], []
    for _, param in params:
        (no_decay if param.ndim <= 1 else decay).append(param)
    return decay, no_decay


def _pretrained(model: nn.Module) -> nn.Module:
    """The part that starts from pretrained weights: a `Classifier`'s backbone, or an smp segmenter's encoder."""
    return model.backbone if hasattr(model, "backbone") else model.encoder


def _head_and_backbone(model: nn.Module) -> tuple[list, list]:
    """Named parameters of the new part and of the pretrained part: a `Classifier`'s head and backbone, or an smp
    segmenter's decoder and heads and its encoder."""
    if hasattr(model, "backbone"):
        return list(model.head.named_parameters()), list(model.backbone.named_parameters())
    rest = [(name, p) for name, p in model.named_parameters() if not name.startswith("encoder.")]
    return rest, list(_pretrained(model).named_parameters())


def _backbone_parts(
    model: nn.Module, named: list, config: Optimisation, backbone: str, scale: float
) -> list[tuple[str, list, float]]:
    """The pretrained part's groups: its stages frozen by ``freeze=N`` left out, and with ``lr_decay`` < 1 one
    group per stage at ``decay ** (stages + 1 - stage)`` of the rate (`medtune.models.stages`)."""
    if not config.freeze and config.lr_decay >= 1.0:
        return [("backbone", named, scale)]
    module = _pretrained(model)
    frozen = frozen_parameters(module, config.freeze, backbone)
    named = [(name, p) for name, p in named if name not in frozen]
    if config.lr_decay >= 1.0:
        return [("backbone", named, scale)]
    scales = stage_lr_scales(module, config.lr_decay, backbone)
    stages: dict[float, list] = {}
    for name, param in named:
        stages.setdefault(scales[name], []).append((name, param))
    return [(f"backbone-{i}", part, scale * factor) for i, (factor, part) in enumerate(sorted(stages.items()))]


def create_param_groups(model: nn.Module, config: Optimisation, backbone: str) -> list[dict]:
    """Optimizer groups for a `Classifier` (head and backbone) or a segmenter (decoder and encoder): the pretrained
    part at ``lr * backbone_lr_scale`` for the gradual strategy, absent for the freeze strategy, without the stages
    ``freeze=N`` holds and by stage with ``lr_decay``, each with and without weight decay.

    Args:
        model: the network.
        config: the optimisation section of the configuration (``config.sections.optimisation``).
        backbone: the backbone's name (``backbone=``), for its stages."""
    head, pretrained = _head_and_backbone(model)
    parts = [("head", head, 1.0)]
    if config.strategy != "freeze" and config.freeze != "all":
        scale = config.backbone_lr_scale if config.strategy == "gradual" else 1.0
        parts += _backbone_parts(model, pretrained, config, backbone, scale)
    groups = []
    for name, named, scale in parts:
        decay, no_decay = _decay_split(named)
        for params, weight_decay in ((decay, config.weight_decay), (no_decay, 0.0)):
            if params:
                groups.append({"name": name, "params": params, "lr": config.lr * scale, "weight_decay": weight_decay})
    return groups


def create_optimizer(model: nn.Module, config: Optimisation, backbone: str) -> torch.optim.Optimizer:
    """The optimizer named by ``optimizer=`` over `create_param_groups`.

    >>> from medtune.config import load_config
    >>> from medtune.models import create_classifier
    >>> model = create_classifier("tf_efficientnet_lite0", 2, pretrained=False)
    >>> settings = load_config(optimizer="sgd").sections
    >>> type(create_optimizer(model, settings.optimisation, settings.model.backbone)).__name__
    'SGD'
    """
    return OPTIMIZERS.get(config.optimizer)(create_param_groups(model, config, backbone), config)


def create_scheduler(
    optimizer: torch.optim.Optimizer, config: Schedule, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The schedule named by ``scheduler=`` (`SCHEDULERS`) over `total_steps` optimizer steps, with
    ``warmup_epochs`` of warm-up (one-cycle: its ramp); `config` is the schedule section."""
    total_steps = max(1, total_steps)
    warmup = min(total_steps - 1, round(config.warmup_epochs * total_steps / config.epochs))
    return SCHEDULERS.get(config.scheduler)(optimizer, config, total_steps, warmup)


def list_optimizers() -> list[str]:
    """Names of the optimizers.

    >>> list_optimizers()
    ['sgd', 'adam', 'adamw', 'adamax', 'adagrad']
    """
    return OPTIMIZERS.names()
