"""The ``--quick`` flag every benchmark takes: the benchmark's own code path on tiny data (a few dozen images, 32 px,
one epoch, one repeat), in seconds. It only replaces the defaults of the benchmark's own options (an option given
on the command line still wins), so a quick run measures nothing worth reading: it shows that the full run would
get through. `tests/benchmarks/test_quick_modes.py` runs every benchmark this way.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

#: Training settings that make a `medtune train` take seconds: a few dozen images per split, 32 px, one epoch.
TINY_KEYS = "limit=32 image_size=32 epochs=1 batch_size=16 workers=0"


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None, **quick: object
) -> argparse.Namespace:
    """`parser`'s arguments, with a ``--quick`` flag that sets the defaults in `quick` (``dest=value``)."""
    shown = ", ".join(f"{name}={value!r}" for name, value in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"a smoke run in seconds on tiny data ({shown})")
    args = parser.parse_args(argv)
    if args.quick:
        parser.set_defaults(**quick)
        args = parser.parse_args(argv)
    return args
