"""tools/check_size.py: the size rules `make lint` applies to src/ (files up to 500 lines, functions up to 60 lines
of code, docstrings, comments and blank lines not counted)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "check_size.py"


def _check(*paths: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *map(str, paths)], capture_output=True, text=True, cwd=REPO)


def _function(name: str, code_lines: int, docstring_lines: int = 0, blanks: int = 0) -> str:
    doc = ['    """Doc.', *(["    more."] * max(0, docstring_lines - 2)), '    """'] if docstring_lines else []
    body = [f"    x{i} = {i}  # a comment" for i in range(code_lines - 1)]
    return "\n".join([f"def {name}():", *doc, *body, *([""] * blanks), "    # only a comment", ""]) + "\n"


def test_src_keeps_the_rules():
    result = _check(REPO / "src")
    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_long_functions_and_files_are_named(tmp_path):
    (tmp_path / "ok.py").write_text(_function("fits", 60, docstring_lines=30, blanks=20))
    (tmp_path / "long.py").write_text(_function("too_long", 61))
    (tmp_path / "big.py").write_text("x = 1\n" * 501)
    result = _check(tmp_path)
    assert result.returncode == 1
    lines = sorted(result.stdout.splitlines())
    assert lines == [f"{tmp_path / 'big.py'}: 501 lines (max 500)",
                     f"{tmp_path / 'long.py'}:1: function too_long has 61 lines of code (max 60)"]  # fmt: skip
