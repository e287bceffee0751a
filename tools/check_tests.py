"""Check that the tests mirror the modules: every module of ``src/medtune`` has a test module of its own name under
the mirrored path (``src/medtune/apply/predict.py``: ``tests/apply/test_predict.py``; leading underscores dropped),
or is listed in ``tests/README.md`` with tests that exist.

Usage: ``python tools/check_tests.py [SRC] [TESTS]`` (default ``src/medtune tests``). Prints one line per offence
and exits 1, or prints nothing and exits 0.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def listed(readme: Path) -> dict[str, list[str]]:
    """``module -> [test files]`` from the table of the tests' README."""
    found: dict[str, list[str]] = {}
    if not readme.is_file():
        return found
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`") and cells[0].endswith(".py`"):
            found[cells[0].strip("`")] = re.findall(r"`([^`]+\.py)`", cells[1])
    return found


def main(argv: list[str]) -> int:
    src, tests = Path(argv[0] if argv else "src/medtune"), Path(argv[1] if len(argv) > 1 else "tests")
    covered = listed(tests / "README.md")
    problems = []
    for path in sorted(src.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        module = path.relative_to(src).as_posix()
        own = tests / path.relative_to(src).parent / f"test_{path.stem.lstrip('_')}.py"
        if own.is_file():
            continue
        if module not in covered:
            problems.append(f"{module}: no {own} and not listed in {tests / 'README.md'}; write one or list its tests")
            continue
        for test in covered[module]:
            if not (tests.parent / test).is_file():
                problems.append(f"{module}: {tests / 'README.md'} names {test}, which does not exist")
    for module in covered:
        if not (src / module).is_file():
            problems.append(f"{tests / 'README.md'} lists {module}, which is not a module of {src}")
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
