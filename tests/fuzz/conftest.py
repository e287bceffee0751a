"""Fuzzing the readers with Hypothesis: seeds made from real files, mutated byte by byte; every input must end in a
result or one of medtune's named errors, within a time limit and a memory bound.

Profiles: ``ci`` (the default: a bounded run, about a minute in all) and ``long`` for hand runs
(``HYPOTHESIS_PROFILE=long make fuzz``: 20,000 inputs per target). A crash that Hypothesis finds is shrunk to its
smallest input; it becomes a regression test in the target's module (``REGRESSIONS``).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from medtune.errors import MedtuneError

settings.register_profile(
    "ci", max_examples=int(os.environ.get("MEDTUNE_FUZZ_EXAMPLES", "200")), deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    database=None, print_blob=True,
)  # fmt: skip
settings.register_profile(
    "long", max_examples=20_000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    print_blob=True,
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Seconds one input may take to be read or refused.
TIME_LIMIT = 10.0
#: Bytes of address space one input may add to the process (a decompression bomb must be refused, not decoded).
MEMORY_LIMIT = 2 << 30


@contextmanager
def bounded_memory(extra: int = MEMORY_LIMIT) -> Iterator[None]:
    """Cap the process's address space at its current size plus `extra` (the soft limit, raised back after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[0]) * resource.getpagesize()
    cap = current + extra if hard == resource.RLIM_INFINITY else min(hard, current + extra)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_or_refuse(call: Callable[[], Any], what: object) -> Any:
    """Run `call`: a result or a `MedtuneError` naming what went wrong is fine; any other exception, a
    MemoryError, or more than `TIME_LIMIT` seconds is a defect."""
    start = time.monotonic()
    try:
        with bounded_memory():
            result = call()
    except MedtuneError as exc:
        assert str(exc), f"{what}: an empty error message"
        result = exc
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT, f"{what} took {elapsed:.1f} s (at most {TIME_LIMIT} s)"
    return result


@st.composite
def mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` with a few bytes overwritten, a stretch repeated or removed, and possibly truncated: the damage
    files get on disks, in transfers and from tools that write them wrong."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(0, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["byte", "byte", "max", "zero", "cut", "repeat"]))
        if kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind in ("max", "zero"):  # sizes and counts in headers set to extremes
            width = draw(st.sampled_from([2, 4]))
            data[at : at + width] = (b"\xff" if kind == "max" else b"\x00") * width
        elif kind == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 4))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    return tmp_path
