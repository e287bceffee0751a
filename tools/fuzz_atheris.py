"""Coverage-guided fuzzing of the image readers with atheris (libFuzzer), for long runs by hand.

    pip install atheris          # a wheel for CPython 3.11 on x86_64 Linux
    python tools/fuzz_atheris.py -max_total_time=3600 fuzz-corpus/

The corpus folder starts with small encodings of real images (PNG, JPEG, TIFF, BMP) and the real DICOM files of
``../shared/data/dicom``; every input is decoded as the file type its first bytes suggest. Anything but an image or
a `MedtuneError` is a crash: atheris stops and writes the input (``crash-<hash>``); add it to
``tests/fuzz/test_regressions.py``. CI runs the bounded Hypothesis fuzzing in ``tests/fuzz`` instead.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    import numpy as np
    from PIL import Image

    from medtune.data.images import read_image
    from medtune.errors import MedtuneError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SUFFIXES = {b"\x89PNG": ".png", b"\xff\xd8": ".jpg", b"II*\x00": ".tif", b"MM\x00*": ".tif", b"BM": ".bmp"}
SCRATCH = Path(tempfile.mkdtemp(prefix="medtune-atheris-"))


def _suffix(data: bytes) -> str:
    if data[128:132] == b"DICM":
        return ".dcm"
    return next((suffix for magic, suffix in SUFFIXES.items() if data.startswith(magic)), ".png")


def seed_corpus(folder: Path) -> None:
    """Write the starting inputs into `folder` (once)."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        return
    xray = Image.open(sorted((SHARED / "cxr3" / "normal").glob("*.png"))[0]).convert("L").resize((40, 48))
    for name, fmt in (("x.png", "PNG"), ("x.jpg", "JPEG"), ("x.tif", "TIFF"), ("x.bmp", "BMP")):
        out = io.BytesIO()
        xray.save(out, fmt)
        (folder / name).write_bytes(out.getvalue())
    for dicom in sorted((SHARED / "dicom").glob("*.dcm")):
        (folder / dicom.name).write_bytes(dicom.read_bytes())


def test_one_input(data: bytes) -> None:
    path = SCRATCH / f"input{_suffix(data)}"
    path.write_bytes(data)
    try:
        image = read_image(path, frame="middle")
    except MedtuneError:
        return
    assert isinstance(image, np.ndarray) and image.ndim in (2, 3)


if __name__ == "__main__":
    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None:
        seed_corpus(corpus)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
