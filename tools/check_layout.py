"""Check the floor plan rules that import-linter cannot see (``make lint`` runs it beside ``lint-imports``):

1. every package's docstring names each of its modules and subpackages (as `name` or ``name``);
2. a module stem means one thing: a stem used by modules of several packages is the name of a command (a module of
   ``medtune.cli``), the other modules with it being that command's implementation and page; no module or package
   is named like a function of the front door (``medtune.explain`` is a function, not a package);
3. no module imports another package's private names (``from medtune.x.y import _name``), and no module reaches a
   private name through an attribute of another package's module.

Usage: ``python tools/check_layout.py [SRC]`` (default ``src``). Prints one line per offence and exits 1, or prints
nothing and exits 0.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path


def modules(src: Path) -> dict[str, Path]:
    """Every module of the package under `src`, by dotted name (packages by their ``__init__``)."""
    found = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def package_of(name: str, all_modules: dict[str, Path]) -> str:
    """The package a module belongs to (a package belongs to itself)."""
    path = all_modules[name]
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def check_docstrings(src: Path) -> list[str]:
    problems = []
    for init in sorted(src.rglob("__init__.py")):
        folder = init.parent
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        named = set(re.findall(r"`+([A-Za-z_][\w.]*)/?`+", doc))
        children = [p.stem for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
        children += [p.name for p in folder.iterdir() if (p / "__init__.py").is_file()]
        if folder == src / src.name or not children:
            continue
        for child in sorted(children):
            if child not in named:
                problems.append(f"{init}: the package's docstring does not name its module `{child}`")
    return problems


def check_stems(src: Path, all_modules: dict[str, Path]) -> list[str]:
    root = next(p.name for p in sorted(src.iterdir()) if (p / "__init__.py").is_file())
    by_stem: dict[str, list[str]] = defaultdict(list)
    for name, path in all_modules.items():
        if name.count(".") >= 1 and path.name != "__init__.py" and not path.stem.startswith("__"):
            by_stem[path.stem].append(name)
    commands = {name.rpartition(".")[2] for name in all_modules if name.startswith(f"{root}.cli.")}
    problems = []
    for stem, names in sorted(by_stem.items()):
        if len(names) > 1 and stem not in commands:
            problems.append(f"stem {stem!r} names {len(names)} modules ({', '.join(names)}): rename all but one")
    front = src / root / "__init__.py"
    if front.is_file():
        tree = ast.parse(front.read_text(encoding="utf-8"))
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        for name in all_modules:
            last = name.rpartition(".")[2]
            if name.count(".") == 1 and last in functions:
                problems.append(f"{name} shadows the function {root}.{last} of the front door: rename the module")
    return problems


def check_privates(all_modules: dict[str, Path]) -> list[str]:
    problems = []
    for name, path in all_modules.items():
        own = package_of(name, all_modules)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not node.module or node.level:
                continue
            if node.module not in all_modules:
                continue
            source_package = package_of(node.module, all_modules)
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and source_package != own:
                    problems.append(
                        f"{path}:{node.lineno}: imports the private name {alias.name} of {node.module}; "
                        "make it public or move the code into that package"
                    )
    return problems


def main(argv: list[str]) -> int:
    src = Path(argv[0] if argv else "src")
    package_root = next(p for p in sorted(src.iterdir()) if (p / "__init__.py").is_file())
    all_modules = modules(src)
    problems = check_docstrings(package_root) + check_stems(src, all_modules) + check_privates(all_modules)
    for line in problems:
        print(line)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
