"""Installed size of medtune's core and of each extra, from the distributions installed in this environment.

    python tools/install_sizes.py                 # pyproject.toml as it is
    python tools/install_sizes.py --ref aa33ab1   # pyproject.toml at a git commit (sizes "before")

For each requirement set it walks the dependency closure through the installed packages' metadata (markers
evaluated for this machine and the extras asked for) and adds up the sizes of their files on disk. Run it in an
environment that has every extra installed (``make setup``); a requirement that is not installed is listed as
missing. An extra's row is what it adds to the core.
"""

from __future__ import annotations

import argparse
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]


def _dist_size(dist: metadata.Distribution) -> int:
    total = 0
    for file in dist.files or []:
        path = Path(dist.locate_file(file))
        if path.is_file():
            total += path.stat().st_size
    return total


def closure(requirements: list[str], missing: set[str]) -> set[str]:
    """Canonical names of the installed distributions `requirements` pull in (medtune's own extras expanded)."""
    seen: set[str] = set()
    todo = [(Requirement(r), frozenset()) for r in requirements]
    while todo:
        req, _ = todo.pop()
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.add(name)
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if sub.marker is None or any(sub.marker.evaluate(env) for env in envs):
                todo.append((sub, frozenset()))
    return {k.split("[")[0] for k in seen}


def _project(ref: str | None) -> dict:
    if ref is None:
        return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    text = subprocess.run(["git", "show", f"{ref}:pyproject.toml"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    return tomllib.loads(text)["project"]


def _expand(reqs: list[str], extras: dict[str, list[str]]) -> list[str]:
    """medtune's own ``medtune[a,b]`` requirements replaced by the extras' requirements."""
    out: list[str] = []
    for spec in reqs:
        req = Requirement(spec)
        if canonicalize_name(req.name) == "medtune":
            for extra in req.extras:
                out += _expand(extras[extra], extras)
        else:
            out.append(spec)
    return out


def sizes(ref: str | None) -> list[tuple[str, float, int]]:
    project = _project(ref)
    extras = project.get("optional-dependencies", {})
    missing: set[str] = set()
    size = {}
    core = closure(project["dependencies"], missing)
    mb = lambda names: sum(_dist_size(metadata.distribution(n)) for n in names if n not in missing) / 1e6  # noqa: E731
    rows = [("core (pip install medtune)", mb(core), len(core))]
    for extra in sorted(extras):
        if extra in ("test", "dev"):
            continue
        names = closure(_expand(extras[extra], extras), missing) - core
        size[extra] = names
        rows.append((f"[{extra}] adds", mb(names), len(names)))
    if missing:
        print(f"not installed here (left out): {', '.join(sorted(missing))}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref", help="read pyproject.toml at this git commit")
    args = parser.parse_args()
    print(f"| requirements ({args.ref or 'now'}) | MB on disk | distributions |")
    print("|---|---|---|")
    for name, megabytes, count in sizes(args.ref):
        print(f"| {name} | {megabytes:,.0f} | {count} |")


if __name__ == "__main__":
    main()
