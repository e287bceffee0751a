"""medtune.cli._common: the one place a command's free arguments are split into paths, YAML files and settings."""

from __future__ import annotations

import doctest

import pytest

from medtune.cli import _common
from medtune.cli._common import data_and_settings, data_and_source, split_arguments
from medtune.errors import ConfigError


def test_settings_paths_and_files_are_told_apart(tmp_path):
    odd = tmp_path / "a=b"  # an existing path with '=' in its name is a path
    odd.mkdir()
    files, paths, settings = split_arguments(["x.yaml", str(odd), "lr=0.1", "data.npz"], yaml_files=True)
    assert (files, paths, settings) == (["x.yaml"], [str(odd), "data.npz"], ["lr=0.1"])
    assert data_and_settings(["epochs=2"]) == (None, ["epochs=2"])
    with pytest.raises(ConfigError, match="give one DATA argument"):
        data_and_settings(["a.npz", "b.npz"])
    assert data_and_source(["d.npz", "runs/r", "label=x"], "medtune probe") == ("d.npz", "runs/r", ["label=x"])
    with pytest.raises(ConfigError, match="medtune probe DATA"):
        data_and_source(["label=x"], "medtune probe")
    assert doctest.testmod(_common).failed == 0
