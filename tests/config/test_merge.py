"""Configuration: defaults < YAML < key=value, validated, with suggestions for unknown keys."""

from __future__ import annotations

import pytest

from medtune.config import load_config, parse_overrides
from medtune.errors import ConfigError


def test_defaults():
    config = load_config()
    assert config.backbone == "tf_efficientnet_lite0" and config.pretrained and config.seed == 0


def test_yaml_then_cli_override(tmp_path):
    (tmp_path / "exp.yaml").write_text("data: x.npz\nimage_size: 64\nbackbone: resnet18\n")
    config = load_config(tmp_path / "exp.yaml", ["image_size=96", "label=yes"])
    assert (config.data, config.image_size, config.backbone) == ("x.npz", 96, "resnet18")
    assert config.label == "yes"  # a text key keeps the text; YAML would have made it True


def test_unknown_key_suggests_closest():
    with pytest.raises(ConfigError, match=r"unknown key 'imagesize'. Did you mean 'image_size'"):
        load_config(overrides=["imagesize=64"])


def test_wrong_type_and_range_name_the_key():
    with pytest.raises(ConfigError, match=r"image_size: .*integer.*\(got 'big'\)"):
        load_config(overrides=["image_size=big"])
    with pytest.raises(ConfigError, match=r"val_fraction: .*less than 1"):
        load_config(overrides=["val_fraction=1.5"])
    with pytest.raises(ConfigError, match=r"leaves too little for training"):
        load_config(val_fraction=0.5, test_fraction=0.45)
    with pytest.raises(ConfigError, match=r"channels"):
        load_config(overrides=["channels=2"])


def test_malformed_override_and_yaml(tmp_path):
    with pytest.raises(ConfigError, match=r"expected key=value"):
        parse_overrides(["image_size"])
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=r"key: value pairs at the top level"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"not found; check the path given to --config"):
        load_config(tmp_path / "absent.yaml")


def test_lists_from_commas_or_yaml():
    assert load_config(overrides=["classes=a,b"]).classes == ["a", "b"]
    assert load_config(overrides=["classes=[a, b]"]).classes == ["a", "b"]


def test_config_is_frozen():
    with pytest.raises(Exception, match="frozen"):
        load_config().seed = 3


def test_one_labels_column_with_a_separator_is_the_delimited_column():
    config = load_config(overrides=["labels=finding_labels", "label_sep=|"])
    assert (config.label, config.labels, config.label_sep) == ("finding_labels", None, "|")
    assert load_config(overrides=["labels=a,b"]).labels == ["a", "b"]  # 0/1 columns, untouched
    with pytest.raises(ConfigError, match="label_sep= splits one column"):
        load_config(overrides=["labels=a,b", "label_sep=|"])
