"""medtune/__init__.py, the front door: every public function has a real signature (typed parameters, no catch-all
``**kwargs`` but `train`'s configuration keys, which `Config` validates) and forwards every parameter it names."""

from __future__ import annotations

import inspect

import pytest

import medtune


@pytest.mark.parametrize("name", [n for n in medtune.__all__ if n != "__version__"])
def test_public_functions_have_real_signatures(name):
    signature = inspect.signature(getattr(medtune, name))
    kinds = {p.kind for p in signature.parameters.values()}
    assert (inspect.Parameter.VAR_KEYWORD in kinds) == (name == "train")
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values())


def test_the_front_door_matches_the_functions_it_opens():
    from medtune.apply.evaluate import evaluate
    from medtune.apply.explain import explain
    from medtune.apply.predict import predict
    from medtune.features.embed import embed
    from medtune.features.probe import probe

    for front, inner in [(medtune.evaluate, evaluate), (medtune.predict, predict), (medtune.explain, explain),
                         (medtune.embed, embed), (medtune.probe, probe)]:  # fmt: skip
        assert list(inspect.signature(front).parameters) == list(inspect.signature(inner).parameters), front.__name__


def test_windows_is_refused_with_the_way_round_it():
    """medtune's cache locks are POSIX ``flock``: on Windows the import says so and names WSL 2, instead of failing
    later on ``import fcntl``."""
    import subprocess
    import sys

    code = "import sys; sys.platform = 'win32'; import medtune"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ImportError: medtune runs on Linux and macOS" in result.stderr
    assert "WSL 2" in result.stderr
