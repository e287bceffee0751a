"""medtune.data.store_spec: what a store holds its images in, refused with the accepted values when wrong."""

from __future__ import annotations

import pytest

from medtune.config import load_config
from medtune.data.store_spec import MASK_MODES, StoreSpec
from medtune.errors import ConfigError


def test_a_spec_follows_a_resolved_configuration():
    spec = StoreSpec.from_config(load_config(image_size=64, channels=3, mask="channel", interpolation="bilinear"))
    assert (spec.size, spec.channels, spec.stored_channels, spec.mask) == (64, 3, 4, "channel")
    assert "channel" in MASK_MODES


@pytest.mark.parametrize(
    ("values", "message"),
    [({"size": 0}, "positive number of pixels"), ({"size": 8, "channels": 2}, "must be 1"),
     ({"size": 8, "resize": "zoom"}, "resize mode 'zoom'"), ({"size": 8, "mask": "paint"}, "mask mode 'paint'"),
     ({"size": 8, "interpolation": "cubicle"}, "interpolation 'cubicle'")],
)  # fmt: skip
def test_bad_values_are_refused_naming_what_is_accepted(values, message):
    with pytest.raises(ConfigError, match=message):
        StoreSpec(**values)
