"""Every benchmark in benchmarks/ has a quick mode: ``python benchmarks/NAME.py --quick`` runs the benchmark's own code
path on tiny data in seconds, exits 0 and prints its table. The benchmarks are collected by glob, so a new one
without ``--quick`` fails here (its argument parser rejects the flag).

The runs are marked ``bench`` (about a minute each on a busy 2-core CPU): ``make test`` leaves them out and
``make bench-quick`` runs them. `test_every_benchmark_offers_quick` reads the sources only and runs everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO, shared_path

BENCHMARKS = REPO / "benchmarks"
#: The folders of ../shared/data each benchmark reads; a benchmark not listed here is skipped without all of it.
NEEDS = {
    "claims": (),
    "explain": ("cxr3",),
    "exporters": ("pneumoniamnist",),
    "freeze": ("pneumoniamnist",),
    "guard": ("pneumoniamnist", "cxr3", "lc25000-lung", "pathology-tiles", "retinamnist", "ham10000-subset"),
    "inference": ("cxr3",),
    "masked_cxr3": ("cxr3", "lungseg"),
    "medmnist": ("pneumoniamnist",),
    "pneumoniamnist": ("pneumoniamnist",),
    "prevalence_shift": ("pneumoniamnist", "cxr3"),
    "recipes": ("pneumoniamnist",),
    "segment_losses": ("lungseg",),
    "similar": (),
    "startup": ("pneumoniamnist", "cxr3"),
    "store": ("cxr3",),
    "throughput": ("pneumoniamnist",),
}
#: Seconds one quick run may take (the slowest, exporters.py, takes about 90 s on a busy 2-core CPU).
TIMEOUT = 600


def benchmarks() -> list[str]:
    """The benchmark scripts: every ``benchmarks/*.py`` with a ``__main__`` block (helper modules have none)."""
    return sorted(p.stem for p in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())


def test_benchmarks_are_found() -> None:
    assert {"store", "throughput", "guard"} <= set(benchmarks())
    assert "_common" not in benchmarks()
    assert set(NEEDS) <= set(benchmarks()), "NEEDS names a benchmark that is gone"


@pytest.mark.parametrize("name", benchmarks())
def test_every_benchmark_offers_quick(name: str) -> None:
    """Its parser comes from `_common.parse_args` (which adds ``--quick``), or it declares the flag itself."""
    source = (BENCHMARKS / f"{name}.py").read_text()
    assert re.search(r"^\s*args = parse_args\(parser\b", source, re.M) or '"--quick"' in source, name


@pytest.mark.bench
@pytest.mark.parametrize("name", benchmarks())
def test_quick_mode(name: str) -> None:
    for folder in NEEDS.get(name, ("",)):
        shared_path(folder)
    # one OpenMP thread unless told otherwise, as `make test` runs: two threads on a busy 2-core machine wait on
    # each other (Grad-CAM's backward pass slows many times over); CPU only, wide tables
    env = {"OMP_NUM_THREADS": "1", **os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    shown = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert result.returncode == 0, shown
    table = [line for line in result.stdout.splitlines() if "│" in line or "|" in line]  # rich's (or ASCII) rows
    assert len(table) >= 1, shown
