"""``medtune`` commands run in the benchmark's own process: the `main` the console script calls, without paying the
imports of torch, timm and Lightning again for every command (about 10 s each on a slow CPU). For benchmarks that
time what the commands report (their runs' histories), not the commands' wall time."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path


def medtune(*args: object, cwd: Path | None = None) -> str:
    """Run ``medtune ARGS`` (in `cwd`, if given) and return what it printed; exit with its output if it fails."""
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
