"""medtune.config.schema: the sections a component takes instead of the whole configuration."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medtune.config import Config, load_config
from medtune.config.schema import SECTION_KEYS, Optimisation


def test_every_key_is_in_exactly_one_section():
    listed = [key for keys in SECTION_KEYS.values() for key in keys]
    assert sorted(listed) == sorted(Config.model_fields) and len(listed) == len(set(listed))


def test_sections_carry_the_configuration_s_values_and_types():
    config = load_config(lr=0.02, optimizer="sgd", epochs=3, augment="flip", backbone="resnet18", task="segment")
    sections = config.sections
    assert (sections.optimisation.lr, sections.optimisation.optimizer, sections.schedule.epochs) == (0.02, "sgd", 3)
    assert sections.augmentation.augment == "flip" and sections.model.backbone == "resnet18"
    assert sections.run.task == "segment" and sections.data.data is None
    assert Optimisation.model_fields["lr"].annotation is Config.model_fields["lr"].annotation
    assert not hasattr(sections.optimisation, "backbone")  # a section holds its own keys only
    with pytest.raises(ValidationError):
        sections.optimisation.lr = 1.0  # frozen, as the configuration is
