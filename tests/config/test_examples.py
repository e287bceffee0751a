"""Every YAML file in examples/ is a valid configuration: its keys exist, its values have the right types, the
components it names are registered, and it says in a comment which command runs it and where its data comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from medtune.config import load_config
from medtune.runs.resolve import check_names

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


def test_examples_are_there():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_example_loads_and_names_registered_components(path):
    config = load_config(path)
    check_names(config)
    assert config.data, f"{path.name} names no data"
    first = path.read_text().splitlines()[0]
    assert first.startswith("# medtune ") and path.name in first  # the command that runs it


def test_a_typo_in_an_example_would_fail(tmp_path):
    from medtune.errors import ConfigError

    broken = tmp_path / "broken.yaml"
    broken.write_text((EXAMPLES[0].parent / "pneumoniamnist.yaml").read_text().replace("optimizer:", "optimiser:"))
    with pytest.raises(ConfigError, match="optimiser"):
        load_config(broken)
