"""Fuzzing image decoding: PNG (8 and 16 bit), JPEG, TIFF, BMP and DICOM, seeded from real files and mutated.

Every mutated file must decode to an image the store can prepare, or be refused with `ImageReadError` naming the
file, within the time and memory bounds of `tests.fuzz.conftest`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from medtune.data.images import prepare, read_image
from medtune.data.masks import read_mask
from medtune.errors import MedtuneError
from tests.conftest import SHARED_DATA, shared_path
from tests.fuzz.conftest import mutated, read_or_refuse

#: pydicom warns about every odd value of a mutated header; those warnings are the point, not news
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

#: pydicom's own small test files with pixel data: compressed (JPEG, JPEG 2000, RLE), colour, multi-frame.
PYDICOM_SEEDS = ("CT_small.dcm", "MR_small.dcm", "SC_rgb_small_odd.dcm", "JPEG2000.dcm", "SC_rgb_rle.dcm",
                 "MR_small_RLE.dcm", "rtdose.dcm", "SC_rgb_jpeg_dcmtk.dcm")  # fmt: skip


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _seeds() -> dict[str, tuple[str, bytes]]:
    """Name -> (suffix, bytes): small encodings of real images, and real DICOM files as they are."""
    xray = Image.open(sorted(shared_path("cxr3", "normal").glob("*.png"))[0]).convert("L").resize((40, 48))
    tile = Image.open(sorted(shared_path("pathology-tiles").glob("*.tif"))[0]).convert("RGB").resize((40, 40))
    deep = Image.fromarray((np.asarray(xray, dtype=np.uint16) * 257).astype(np.uint16))
    seeds = {
        "png-gray": (".png", _encoded(xray, "PNG")),
        "png-16bit": (".png", _encoded(deep, "PNG")),
        "png-palette": (".png", _encoded(tile.convert("P"), "PNG")),
        "jpeg-gray": (".jpg", _encoded(xray, "JPEG", quality=80)),
        "jpeg-rgb": (".jpeg", _encoded(tile, "JPEG", quality=80)),
        "tiff-rgb": (".tif", _encoded(tile, "TIFF")),
        "tiff-lzw": (".tiff", _encoded(xray, "TIFF", compression="tiff_lzw")),
        "bmp": (".bmp", _encoded(xray, "BMP")),
        "dicom-siim-jpeg": (".dcm", shared_path("dicom", "siim_cr_jpeg_baseline.dcm").read_bytes()),
        "dicom-secondary-capture": (".dcm", shared_path("dicom", "abdomen_secondary_capture.dcm").read_bytes()),
    }
    import pydicom

    folder = Path(pydicom.__file__).parent / "data" / "test_files"
    for name in PYDICOM_SEEDS:
        if (folder / name).is_file():
            seeds[f"pydicom-{name}"] = (".dcm", (folder / name).read_bytes())
    return seeds


SEEDS = _seeds() if (SHARED_DATA / "cxr3").exists() else {}


def _check_decoded(path: Path, result: object) -> None:
    if isinstance(result, MedtuneError):
        assert str(path) in str(result), f"the error does not name the file: {result}"
        return
    assert isinstance(result, np.ndarray) and result.ndim in (2, 3) and min(result.shape[:2]) >= 1
    assert result.ndim == 2 or result.shape[-1] == 3
    channels = 3 if result.ndim == 3 else 1
    assert prepare(result, 16, channels).shape == (16, 16, channels)  # what the store does next


@pytest.mark.parametrize("seed", sorted(SEEDS) or ["absent"])
@given(data=st.data())
def test_mutated_image_files_decode_or_are_refused_by_name(seed, data, tmp_path):
    if seed == "absent":
        pytest.skip("../shared/data is absent: no real files to seed the fuzzing")
    suffix, original = SEEDS[seed]
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(data.draw(mutated(original), label="file"))
    result = read_or_refuse(lambda: read_image(path, frame="middle"), path)
    _check_decoded(path, result)


@given(data=st.data())
def test_mutated_mask_files_are_read_or_refused_by_name(data, tmp_path):
    mask = Image.fromarray(((np.indices((48, 40)).sum(axis=0) % 7) > 2).astype(np.uint8) * 255)
    path = tmp_path / "fuzzed_mask.png"
    path.write_bytes(data.draw(mutated(_encoded(mask, "PNG")), label="mask"))
    shape = data.draw(st.sampled_from([None, (48, 40), (96, 80), (40, 48)]), label="image shape")
    result = read_or_refuse(lambda: read_mask(path, shape, image="xray.png"), path)
    if not isinstance(result, MedtuneError):
        assert result.dtype == bool and (shape is None or result.shape == shape)
