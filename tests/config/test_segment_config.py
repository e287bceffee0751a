"""The keys of segmentation runs: their defaults, the encoder alias, and what does not fit the task."""

from __future__ import annotations

import pytest

from medtune.config import load_config
from medtune.errors import ConfigError
from medtune.runs.resolve import check_names


def test_segment_defaults_and_encoder_alias():
    config = load_config(task="segment", encoder="resnet18", arch="fpn")
    assert (config.loss, config.monitor, config.mask) == ("dice+bce", "val_dice", "channel")
    assert config.backbone == "resnet18"
    check_names(config)  # dice+bce is a segmentation loss, fpn an architecture
    assert load_config().loss == "cross-entropy"


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"task": "segment", "monitor": "val_auc"}, "monitor=val_auc does not fit task=segment"),
        ({"monitor": "val_dice"}, "monitor=val_dice does not fit task=classify"),
        ({"task": "segment", "mask": "multiply"}, "mask=multiply does not apply"),
        ({"encoder": "resnet18", "backbone": "resnet34"}, "name the same network"),
    ],
)
def test_keys_that_do_not_fit_are_refused(keys, message):
    with pytest.raises(ConfigError, match=message):
        load_config(**keys)


def test_segmentation_names_are_checked_against_their_registries():
    with pytest.raises(ConfigError, match="unknown segmentation loss 'cross-entropy'"):
        check_names(load_config(task="segment", loss="cross-entropy"))
    with pytest.raises(ConfigError, match="unknown segmentation architecture"):
        check_names(load_config(task="segment", arch="unet3"))
