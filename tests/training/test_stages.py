"""``freeze=N`` and ``lr_decay=`` on two backbone families: which parameters learn, and at which rate."""

from __future__ import annotations

import pandas as pd
import pytest
import timm
import torch

from medtune.config import load_config
from medtune.errors import ConfigError
from medtune.fitting.train import train
from medtune.models.stages import frozen_parameters, parameter_stages, stage_modules
from medtune.runs.trained import network_state
from medtune.training.optim import create_param_groups
from tests.conftest import shared_path

KEYS = {"limit": 64, "image_size": 32, "epochs": 1, "batch_size": 16, "workers": 0, "report": False, "keep": "last"}


@pytest.fixture(scope="module")
def resnet_weights(tmp_path_factory):
    """A resnet18 state dict on disk (no hub at test time): the weights= file the run starts from."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), path)
    return path


def _start(backbone: str, weights) -> dict[str, torch.Tensor]:
    """The backbone's starting weights, as the run loads them (in_chans=1: timm sums the stem over colours)."""
    from medtune.models import create_classifier

    model = create_classifier(backbone, 2, in_chans=1, weights=weights)
    return {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "resnet18"])
def test_freeze_two_stages_trains_exactly_the_rest(backbone, resnet_weights, tmp_path):
    weights = str(resnet_weights) if backbone == "resnet18" else None
    config = load_config(data=str(shared_path("pneumoniamnist", "pneumoniamnist.npz")), backbone=backbone,
                         weights=weights, freeze=2, **KEYS)  # fmt: skip
    run = train(config, out=tmp_path / "run", progress=False).run
    trained = network_state(torch.load(run.last_checkpoint, map_location="cpu", weights_only=True))
    start = _start(backbone, weights)
    body = timm.create_model(backbone, pretrained=False, num_classes=0, in_chans=1)
    frozen = frozen_parameters(body, 2)
    stages, _ = parameter_stages(body)
    assert frozen == {name for name, stage in stages.items() if stage <= 2} and frozen
    for name, value in start.items():
        short = name.removeprefix("backbone.")
        moved = not torch.equal(value, trained[name])
        if short in frozen or (short.rsplit(".", 1)[0] + ".weight" in frozen and "running" in short):
            assert not moved, f"{name} is in a frozen stage but changed"
        elif short in stages and stages[short] > 2 and short.endswith("weight"):
            assert moved, f"{name} is in a trained stage but did not change"
    history = pd.read_csv(run.history_file)
    assert 0 < history["trainable"].iloc[0] < 1


def test_stage_lists_come_from_timm_feature_info():
    lite = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    assert stage_modules(lite) == ["blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"]
    assert parameter_stages(lite)[0]["conv_stem.weight"] == 0  # the stem
    assert frozen_parameters(lite, "all") == {name for name, _ in lite.named_parameters()}
    with pytest.raises(ConfigError, match="has 5 stages"):
        frozen_parameters(lite, 6)
    with pytest.raises(ConfigError, match="no stage list"):
        frozen_parameters(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3)), 1)


def test_lr_decay_gives_each_earlier_stage_a_smaller_rate():
    from medtune.models import create_classifier

    model = create_classifier("resnet18", 2, pretrained=False)
    config = load_config(backbone="resnet18", lr=1e-2, lr_decay=0.5, freeze=1)
    groups = create_param_groups(model, config.sections.optimisation, config.backbone)
    rates = {group["name"]: group["lr"] for group in groups}
    # head 1e-2; stages 4, 3, 2 at 0.5, 0.25, 0.125 of it; stage 1 and the stem frozen (left out)
    assert sorted(rates.values(), reverse=True) == pytest.approx([1e-2, 5e-3, 2.5e-3, 1.25e-3])
    learning = {id(p) for group in groups for p in group["params"]}
    assert id(model.backbone.conv1.weight) not in learning and id(model.backbone.layer1[0].conv1.weight) not in learning
    assert id(model.backbone.layer2[0].conv1.weight) in learning


def test_the_report_says_what_freeze_and_lr_decay_did():
    from medtune.reports.sections import _stages_note

    history = pd.DataFrame({"trainable": [0.62, 0.62]})
    note = _stages_note({"freeze": 2, "lr_decay": 0.5}, history)
    assert "freeze=2 held the stem and the first 2 stage(s) fixed" in note and "lr_decay=0.5" in note
    assert "62.0% of the parameters learned" in note
    assert _stages_note({"freeze": 0, "lr_decay": 1.0}, history) == ""
    stepwise = _stages_note({"unfreeze": "stages"}, pd.DataFrame({"trainable": [0.01, 0.5, 1.0]}))
    assert "unfroze one backbone stage per epoch" in stepwise and "1%, 50%, 100%" in stepwise


def test_gradual_unfreezing_adds_one_stage_per_epoch_from_the_last(resnet_weights, tmp_path):
    config = load_config(data=str(shared_path("pneumoniamnist", "pneumoniamnist.npz")), backbone="resnet18",
                         weights=str(resnet_weights), strategy="gradual", unfreeze="stages", freeze_epochs=1,
                         **{**KEYS, "epochs": 3})  # fmt: skip
    run = train(config, out=tmp_path / "run", progress=False).run
    body = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=1)
    stages, count = parameter_stages(body)
    sizes = dict(body.named_parameters())
    total = sum(p.numel() for p in body.parameters()) + 512 * 2 + 2  # the head: Linear(512, 2)

    def share(learning_stages: set[int]) -> float:
        learning = sum(sizes[name].numel() for name, stage in stages.items() if stage in learning_stages)
        return (learning + 512 * 2 + 2) / total

    history = pd.read_csv(run.history_file)
    expected = [share(set()), share({count}), share({count, count - 1})]  # head; + layer4; + layer3
    assert history["trainable"].tolist() == pytest.approx(expected, abs=1e-4)
    assert history["backbone_frozen"].astype(str).tolist() == ["True", "False", "False"]
    trained = network_state(torch.load(run.last_checkpoint, map_location="cpu", weights_only=True))
    start = _start("resnet18", str(resnet_weights))
    assert not torch.equal(start["backbone.layer3.0.conv1.weight"], trained["backbone.layer3.0.conv1.weight"])
    assert torch.equal(start["backbone.layer2.0.conv1.weight"], trained["backbone.layer2.0.conv1.weight"])
    assert torch.equal(start["backbone.layer2.0.bn1.running_mean"], trained["backbone.layer2.0.bn1.running_mean"])
    with pytest.raises(ValueError, match=r"unfreeze=stages .* add strategy=gradual"):
        load_config(unfreeze="stages")
