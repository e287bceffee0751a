"""tools/check_tests.py: every module has a test module of its own name, or is listed in tests/README.md with tests
that exist."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "check_tests.py"


def _check(src: object, tests: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, str(src), str(tests)], capture_output=True, text=True, cwd=REPO)


def test_the_repository_keeps_the_rule():
    result = _check(REPO / "src" / "medtune", REPO / "tests")
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_untested_modules_and_stale_rows_are_named(tmp_path):
    src, tests = tmp_path / "src" / "pkg", tmp_path / "tests"
    for name in ("a/own.py", "a/_private.py", "a/listed.py", "a/forgotten.py"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text("")
    (tests / "a").mkdir(parents=True)
    (tests / "a" / "test_own.py").write_text("")
    (tests / "a" / "test_private.py").write_text("")
    rows = ["| module | covered by |", "|---|---|", "| `a/listed.py` | `tests/a/test_own.py` |",
            "| `a/gone.py` | `tests/a/test_own.py` |", "| `a/forgotten.py` | `tests/a/x.py` |"]  # fmt: skip
    (tests / "README.md").write_text("\n".join(rows) + "\n")
    result = _check(src, tests)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any("a/forgotten.py" in line and "tests/a/x.py, which does not exist" in line for line in lines)
    assert any("lists a/gone.py, which is not a module" in line for line in lines) and len(lines) == 2
