"""Preprocessing comes from timm's pretrained config, for any channel count, without a network."""

from __future__ import annotations

import time

import pytest
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg

from medtune.errors import ConfigError
from medtune.models import Preprocessing, resolve_preprocessing


@pytest.mark.parametrize(
    ("backbone", "size", "crop_pct"),
    [
        ("tf_efficientnet_lite0", 224, 0.875),
        ("tf_efficientnet_lite1", 240, 0.882),
        ("tf_efficientnet_lite2", 260, 0.89),
    ],
)
def test_default_backbones_use_their_own_config(backbone, size, crop_pct):
    p = resolve_preprocessing(backbone)
    assert p == Preprocessing(
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        input_size=(3, size, size),
        interpolation="bicubic",
        crop_pct=crop_pct,
        crop_mode="center",
    )


def test_rgb_values_are_timms():
    timm_config = resolve_data_config(pretrained_cfg=get_pretrained_cfg("resnet18.a1_in1k").to_dict())
    p = resolve_preprocessing("resnet18.a1_in1k")
    assert p.mean == timm_config["mean"] and p.std == timm_config["std"]
    assert p.input_size == timm_config["input_size"] and p.crop_pct == timm_config["crop_pct"]


def test_one_channel_averages_rgb_statistics():
    p = resolve_preprocessing("resnet18", in_chans=1)
    assert p.input_size == (1, 224, 224)
    assert p.mean == pytest.approx(((0.485 + 0.456 + 0.406) / 3,))
    assert p.std == pytest.approx(((0.229 + 0.224 + 0.225) / 3,))


def test_other_channel_counts_repeat_rgb_like_the_stem():
    p = resolve_preprocessing("resnet18", in_chans=4)
    assert p.mean == pytest.approx((0.485, 0.456, 0.406, 0.485))
    assert p.input_size == (4, 224, 224)


def test_needs_no_network_and_no_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    p = resolve_preprocessing("test_vit.r160_in1k", in_chans=1)
    assert time.perf_counter() - start < 1.0
    assert p.input_size == (1, 160, 160)


def test_round_trips_through_a_dict():
    p = resolve_preprocessing("tf_efficientnet_lite1", in_chans=1)
    data = p.to_dict()
    assert data["mean"] == [0.5] and data["input_size"] == [1, 240, 240]
    assert Preprocessing.from_dict(data) == p


def test_unknown_backbone_and_bad_channels():
    with pytest.raises(ConfigError, match="Did you mean"):
        resolve_preprocessing("tf_efficientnet_lite")
    with pytest.raises(ConfigError, match="in_chans"):
        resolve_preprocessing("tf_efficientnet_lite0", in_chans=0)
