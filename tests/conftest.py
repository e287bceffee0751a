"""Shared fixtures: CPU only, a temporary cache, and the real datasets in ../shared/data."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDTUNE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Return a path inside ../shared/data, skipping the test with a clear reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset {path} is absent: put ../shared/data beside the repository to run this test")
    return path


def medtune_subprocess(*args: object, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``medtune`` command line in a subprocess (wide output, CPU only, the session's cache)."""
    env = {**os.environ, "COLUMNS": "200", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "medtune", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)  # fmt: skip


def medtune(*args: object, cwd: Path = REPO, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the ``medtune`` command line in this process: the same `main` the console script calls, with its
    standard output and error captured and the exit code it returns (an unexpected exception becomes exit code 1
    with its traceback on standard error, as in a subprocess).

    A subprocess pays the imports of torch, timm and Lightning again for every call (about 10 s on a slow CPU);
    each command keeps at least one test through `medtune_subprocess`, the real console entry point. `timeout`
    is accepted for the same signature and not enforced here.
    """
    from medtune.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved, columns = os.getcwd(), os.environ.get("COLUMNS")
    os.chdir(cwd)
    os.environ["COLUMNS"] = "200"  # rich reads the width of its error console from COLUMNS, as in a subprocess
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved)
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return subprocess.CompletedProcess(["medtune", *map(str, args)], code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    """The whole test session uses its own medtune cache (never the user's) and runs on the CPU."""
    saved = {k: os.environ.get(k) for k in ("MEDTUNE_CACHE", "CUDA_VISIBLE_DEVICES")}
    os.environ["MEDTUNE_CACHE"] = str(tmp_path_factory.mktemp("medtune-cache"))
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


#: Settings that make a real run take seconds: few images, small size, two short epochs.
TINY = ("limit=96", "image_size=32", "epochs=2", "batch_size=16", "workers=0")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A PneumoniaMNIST run trained through the CLI: normal / pneumonia, 1 channel, 32 px (with its report)."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    result = medtune_subprocess("train", shared_path("pneumoniamnist", "pneumoniamnist.npz"), *TINY, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_cxr3_run(tmp_path_factory):
    """A three-class cxr3 run (covid / normal / pneumonia, patient-grouped split), 64 px, trained through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "cxr3"
    labels = shared_path("cxr3", "labels.csv")
    result = medtune("train", labels, "label=label", "group=patient_id", "limit=60", "image_size=64", "epochs=2",
                     "batch_size=16", "workers=0", "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def tiny_findings_run(tmp_path_factory):
    """A multi-label cxr3 run: the ChestX-ray14 findings of the `|`-joined finding_labels column ("No Finding" is
    none), trained with the literal ``labels=finding_labels label_sep='|'`` of the command line, scaled down."""
    out = tmp_path_factory.mktemp("runs") / "findings"
    result = medtune("train", shared_path("cxr3", "labels.csv"), "labels=finding_labels", "label_sep=|", "limit=300",
                     "image_size=32", "epochs=1", "batch_size=32", "workers=0", "--out", out)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (out.parent / "train-stdout.txt").write_text(result.stdout)  # what `medtune train` printed, for the tests
    return out


#: A segmentation run that takes seconds: 16 images per split of lungseg at 64 px, one epoch.
TINY_SEGMENT = ("image_size=64", "limit=16", "epochs=1", "batch_size=8", "workers=0")


@pytest.fixture(scope="session")
def tiny_segment_run(tmp_path_factory):
    """A lung segmenter (U-Net on tf_efficientnet_lite0 with its packaged weights) trained through the CLI on real
    lungseg X-rays and masks, scaled down (with its report)."""
    out = tmp_path_factory.mktemp("runs") / "lungs"
    images, masks = shared_path("lungseg", "images"), shared_path("lungseg", "masks")
    result = medtune("segment", "train", images, f"masks={masks}", *TINY_SEGMENT, "--out", out)
    assert result.returncode == 0, result.stderr
    (out.parent / "train-stdout.txt").write_text(result.stdout)
    return out
