"""tools/check_layout.py: the floor-plan rules `make lint` applies to src/ beside import-linter's contracts (package
docstrings name their modules, one meaning per module stem, no package shadowing a front-door function, no private
names imported across packages)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "check_layout.py"


def _check(src: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, str(src)], capture_output=True, text=True, cwd=REPO)


def _write(root, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_src_keeps_the_rules():
    result = _check(REPO / "src")
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_a_package_that_follows_the_rules_passes(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": '"""Front door: `cli`, `apply`."""\ndef explain(): ...\n',
        "pkg/cli/__init__.py": '"""Commands: `explain`."""\n',
        "pkg/cli/explain.py": "from pkg.apply.explain import run\n",
        "pkg/apply/__init__.py": '"""Using: `explain` and ``scoring``."""\n',
        "pkg/apply/explain.py": "from pkg.apply.scoring import _shared\ndef run(): ...\n",
        "pkg/apply/scoring.py": "def _shared(): ...\n",
    })  # fmt: skip
    result = _check(tmp_path)
    assert result.returncode == 0, result.stdout


def test_each_broken_rule_is_named(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": '"""Front door: `cli`, `explain`, `fitting`."""\ndef explain(): ...\n',
        "pkg/cli/__init__.py": '"""Commands."""\n',
        "pkg/cli/train.py": "",
        "pkg/explain/__init__.py": '"""Grad-CAM: `inference`."""\n',
        "pkg/explain/inference.py": "from pkg.fitting.inference import _private\n",
        "pkg/fitting/__init__.py": '"""Fitting: `inference`."""\n',
        "pkg/fitting/inference.py": "def _private(): ...\n",
    })  # fmt: skip
    result = _check(tmp_path)
    assert result.returncode == 1
    out = result.stdout
    assert "does not name its module `train`" in out  # cli's docstring
    assert "stem 'inference' names 2 modules (pkg.explain.inference, pkg.fitting.inference)" in out
    assert "pkg.explain shadows the function pkg.explain of the front door" in out
    assert "imports the private name _private of pkg.fitting.inference" in out
    assert len(out.splitlines()) == 4, out
