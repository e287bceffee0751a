"""What the benchmarks share: where the real datasets are, and the ``--quick`` flag every benchmark takes.

``--quick`` runs the benchmark's own code path on tiny data (a few dozen images, 32 px, one epoch, one repeat), in
seconds. It only replaces the defaults of the benchmark's own options (an option given on the command line still
wins), so a quick run measures nothing worth reading: it shows that the full run gets through.
`tests/benchmarks/test_quick_modes.py` runs every benchmark this way.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The real datasets: ../shared/data beside the repository, or MEDTUNE_SHARED_DATA (as the tests read them).
SHARED_DATA = Path(os.environ.get("MEDTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))

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


def medtune(*args: object, cwd: Path | None = None) -> str:
    """Run ``medtune ARGS`` (in `cwd`, if given) in this process and return what it printed; exit with its output if
    it fails. The console script's own `main`, without paying the imports of torch, timm and Lightning again for
    every command (about 10 s each on a slow CPU): for benchmarks that read the runs' own timings, not the commands'
    wall time."""
    from medtune.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(saved)
    if code:
        raise SystemExit(f"medtune {' '.join(map(str, args))} failed:\n{out.getvalue()}\n{err.getvalue()}")
    return out.getvalue()
