"""Check the size rules: no Python file over 500 lines, no function or method over 60 lines of code.

A function's lines of code run from its ``def`` (decorators excluded) to its last line, without blank lines,
comment-only lines and its docstring. Nested functions count in their enclosing function and are checked too.

Usage: ``python tools/check_size.py [FOLDER_OR_FILE ...]`` (default ``src``). Prints one line per offence and exits
1, or prints nothing and exits 0.
"""

from __future__ import annotations

import argparse
import ast
import io
import sys
import tokenize
from collections.abc import Iterator
from pathlib import Path

MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60


def python_files(paths: list[str]) -> Iterator[Path]:
    """Yield the .py files under `paths` (files named directly included), sorted, skipping hidden folders."""
    for root in map(Path, paths):
        if root.is_file():
            yield root
            continue
        for path in sorted(root.rglob("*.py")):
            if not any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts):
                yield path


def code_lines(source: str) -> set[int]:
    """Line numbers that hold code: every line a token other than a comment or a line break touches."""
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    """Line numbers of the function's docstring, if it has one (never the ``def`` line itself)."""
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return set(range(first.lineno, (first.end_lineno or first.lineno) + 1)) - {node.lineno}
    return set()


def check_file(path: Path) -> list[str]:
    """Return the offences of one file, in line order."""
    source = path.read_text(encoding="utf-8")
    offences = []
    n_lines = len(source.splitlines())
    if n_lines > MAX_FILE_LINES:
        offences.append(f"{path}: {n_lines} lines (max {MAX_FILE_LINES})")
    tree = ast.parse(source, filename=str(path))
    code = code_lines(source)
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    for node in sorted(functions, key=lambda node: node.lineno):
        span = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        count = len((span & code) - docstring_lines(node))
        if count > MAX_FUNCTION_LINES:
            offences.append(
                f"{path}:{node.lineno}: function {node.name} has {count} lines of code (max {MAX_FUNCTION_LINES})"
            )
    return offences


def main(argv: list[str] | None = None) -> int:
    """Check every .py file under the given folders; print the offences; return 1 when there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["src"], help="folders or files to check (default: src)")
    args = parser.parse_args(argv)
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    offences = [offence for path in python_files(args.paths) for offence in check_file(path)]
    for offence in offences:
        print(offence)
    return 1 if offences else 0


if __name__ == "__main__":
    sys.exit(main())
