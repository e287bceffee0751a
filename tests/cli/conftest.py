"""A small trained run, shared by the evaluate and predict tests (trained once per session, on real data)."""

from __future__ import annotations

import pytest

from tests.conftest import medtune, shared_path

#: Settings that make a real run take seconds: few images, small size, two short epochs.
TINY = ("limit=96", "image_size=32", "epochs=2", "batch_size=16", "workers=0")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A PneumoniaMNIST run trained through the CLI: normal / pneumonia, 1 channel, 32 px."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = medtune("train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *TINY, "--out", out)
    assert result.returncode == 0, result.stderr
    return out
