"""medtune.explain through its Python API: a map per readable image, written beside a table of what was explained."""

from __future__ import annotations

import pytest

import medtune
from medtune.errors import ConfigError
from tests.conftest import shared_path


def test_maps_are_written_for_each_image_and_their_target(tiny_run, tmp_path):
    images = sorted(shared_path("cxr3", "normal").glob("*.png"))[:2]
    table = medtune.explain(tiny_run, images, tmp_path / "cams", target="pneumonia", progress=False)
    assert len(table) == 2 and set(table["target"]) == {"pneumonia"} and table["error"].isna().all()
    assert len(list((tmp_path / "cams").glob("*.png"))) >= 2 and (tmp_path / "cams" / "explanations.csv").is_file()
    with pytest.raises(ConfigError, match="covid"):
        medtune.explain(tiny_run, images, tmp_path / "other", target="covid", progress=False)
