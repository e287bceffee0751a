"""Optimizers and schedules by name: every registered name builds, groups are right, schedules have their shape."""

from __future__ import annotations

import itertools

import pytest
import torch

from medtune.config import load_config
from medtune.models import create_classifier
from medtune.training.optim import OPTIMIZERS, create_optimizer, create_param_groups, create_scheduler


def _optimizer(model, config):
    return create_optimizer(model, config.sections.optimisation, config.backbone)


def _groups(model, config):
    return create_param_groups(model, config.sections.optimisation, config.backbone)


@pytest.fixture(scope="module")
def model():
    return create_classifier("tf_efficientnet_lite0", 3, in_chans=1, pretrained=False)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_steps(model, name):
    optimizer = _optimizer(model, load_config(optimizer=name, lr=0.01))
    before = model.head[-1].weight.detach().clone()
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    assert not torch.equal(before, model.head[-1].weight)


def test_sgd_uses_nesterov_momentum(model):
    optimizer = _optimizer(model, load_config(optimizer="sgd", momentum=0.9))
    assert optimizer.defaults["nesterov"] is True and optimizer.defaults["momentum"] == 0.9


def test_groups_per_strategy(model):
    def lrs(strategy):
        return {(g["name"], g["weight_decay"] > 0): g["lr"] for g in _groups(model, load_config(
            strategy=strategy, lr=1e-3, backbone_lr_scale=0.1, weight_decay=0.05))}  # fmt: skip

    assert lrs("freeze") == {("head", True): 1e-3, ("head", False): 1e-3}
    assert lrs("gradual")[("backbone", True)] == pytest.approx(1e-4)
    assert lrs("finetune")[("backbone", True)] == 1e-3
    groups = _groups(model, load_config(weight_decay=0.05))
    no_decay = [p for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert no_decay and all(p.ndim <= 1 for p in no_decay)  # biases and norms are not decayed
    counted = sum(p.numel() for g in groups for p in g["params"])
    assert counted == sum(p.numel() for p in model.parameters())


def _lrs(model, total=100, **keys):
    config = load_config(epochs=10, lr=1.0, **keys)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    scheduler = create_scheduler(optimizer, config.sections.schedule, total)
    out = []
    for _ in range(total):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_cosine_warms_up_then_decays_to_zero(model):
    lrs = _lrs(model, scheduler="cosine", warmup_epochs=1)
    assert lrs[0] < 0.2 and lrs[9] == pytest.approx(1.0) and lrs[-1] < 0.01
    assert all(a <= b + 1e-12 for a, b in itertools.pairwise(lrs[:10]))  # rising during warm-up
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[10:]))  # falling after


def test_step_and_constant_and_one_cycle(model):
    step = _lrs(model, scheduler="step", warmup_epochs=0, step_epochs=3, step_gamma=0.5)
    assert step[0] == 1.0 and step[29] == 1.0 and step[30] == 0.5 and step[60] == 0.25
    constant = _lrs(model, scheduler="constant", warmup_epochs=0)
    assert set(constant) == {1.0}
    cycle = _lrs(model, scheduler="one-cycle", warmup_epochs=2)
    peak = max(range(100), key=cycle.__getitem__)
    assert cycle[peak] == pytest.approx(1.0) and 15 <= peak <= 25 and cycle[-1] < 0.01
