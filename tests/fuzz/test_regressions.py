"""The smallest inputs that showed each defect the fuzzing found, kept as plain tests (no Hypothesis needed).

Each is a real file with one or two bytes changed; before its fix it ended in an exception that was not one of
medtune's named errors, or reserved gigabytes of memory.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medtune.config import load_config
from medtune.data.dicom import dicom_info
from medtune.data.images import read_image
from medtune.data.readers import read_table
from medtune.errors import ConfigError, DataError, ImageReadError
from tests.conftest import shared_path
from tests.fuzz.conftest import bounded_memory, read_or_refuse

#: pydicom warns about every odd value of a mutated header; those warnings are the point, not news
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def _png_16bit() -> bytearray:
    xray = Image.open(sorted(shared_path("cxr3", "normal").glob("*.png"))[0]).convert("L").resize((40, 48))
    out = io.BytesIO()
    Image.fromarray(np.asarray(xray, dtype=np.uint16) * 257).save(out, "PNG")
    return bytearray(out.getvalue())


def test_png_chunk_length_of_four_gigabytes_reserves_no_memory(tmp_path):
    """Was: Python's buffered read reserved the 4 GB the IDAT chunk's length claims (MemoryError under a memory
    limit). Now reads are clamped to the file's size."""
    data = _png_16bit()
    at = data.index(b"IDAT") - 4
    data[at : at + 4] = b"\xff\xff\x09\x31"
    path = _write(tmp_path, "bomb-length.png", data)
    result = read_or_refuse(lambda: read_image(path), path)  # under a 2 GB cap on new address space
    assert isinstance(result, np.ndarray | ImageReadError)


def test_dicom_element_length_of_four_gigabytes_reserves_no_memory(tmp_path):
    """Was: pydicom read the Pixel Data element by its length (0xFFFFFFF0): MemoryError under a memory limit."""
    data = bytearray((PYDICOM_FILES / "CT_small.dcm").read_bytes())
    at = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00")
    data[at + 8 : at + 12] = b"\xf0\xff\xff\xff"
    path = _write(tmp_path, "long-element.dcm", data)
    result = read_or_refuse(lambda: read_image(path), path)  # the pixel data is the last element: it decodes
    assert isinstance(result, np.ndarray | ImageReadError)


def test_dicom_unknown_value_representation_is_a_named_error(tmp_path):
    """Was: NotImplementedError ("Unknown Value Representation") from the SOP Class UID element, read when the
    file has no pixel data, to name what it holds."""
    data = bytearray(shared_path("dicom", "siim_cr_jpeg_baseline.dcm").read_bytes())
    at = data.index(b"\x08\x00\x16\x00UI")
    data[at + 4 : at + 6] = b"U\xff"
    data = data[: data.rindex(b"\xe0\x7f\x10\x00")]  # no Pixel Data element
    path = _write(tmp_path, "bad-vr.dcm", data)
    with pytest.raises(ImageReadError, match=r"cannot be read .*Unknown Value Representation"):
        read_image(path)
    read_or_refuse(lambda: dicom_info(path), path)  # the header alone: read, or a named error


def test_dicom_value_of_odd_length_is_a_named_error(tmp_path):
    """Was: pydicom's BytesLengthException (a 3-byte US value: Rows), which derives from Exception alone."""
    data = bytearray((PYDICOM_FILES / "MR_small.dcm").read_bytes())
    at = data.index(b"\x28\x00\x10\x00US\x02\x00")
    data[at : at + 10] = b"\x28\x00\x10\x00US\x03\x00" + data[at + 8 : at + 10] + b"\x00"
    path = _write(tmp_path, "odd-length.dcm", data)
    with pytest.raises(ImageReadError, match="even multiple of bytes per value"):
        read_image(path)


def test_corrupt_rle_pixel_data_panicking_the_rust_decoder_is_a_named_error(tmp_path):
    """Was: pyo3_runtime.PanicException ("index out of bounds") from pylibjpeg-rle, a BaseException that no
    `except Exception` catches. One byte of MR_small_RLE's pixel data changed."""
    pytest.importorskip("rle", reason="pylibjpeg-rle is not installed")
    data = bytearray((PYDICOM_FILES / "MR_small_RLE.dcm").read_bytes())
    data[data.index(b"\xe0\x7f\x10\x00") + 4515] = 149
    path = _write(tmp_path, "rle-panic.dcm", data)
    with pytest.raises(ImageReadError, match="RLE Lossless pixel data cannot be decoded"):
        read_image(path)


def test_configuration_file_that_is_not_utf8_is_a_named_error(tmp_path):
    """Was: UnicodeDecodeError from a YAML file starting with two 0xFF bytes."""
    path = _write(tmp_path, "experiment.yaml", b"\xff\xffepochs: 6\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(path)


def test_yaml_with_python_tags_builds_nothing(tmp_path):
    """Not a defect (yaml.safe_load refuses them); kept so that it stays refused."""
    marker = tmp_path / "ran"
    path = _write(tmp_path, "evil.yaml", f"name: !!python/object/apply:os.system ['touch {marker}']\n".encode())
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(path)
    assert not marker.exists()


def _archive(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_npz_member_with_a_corrupt_header_is_a_named_error(tmp_path):
    """Was: SyntaxError from numpy's .npy header parser (a byte of the header's dict changed)."""
    path = _archive(tmp_path, train_images=np.zeros((4, 8, 8), np.uint8), train_labels=np.zeros(4, np.int64))
    data = bytearray(path.read_bytes())
    at = data.index(b"'descr'")
    data[at + 1] = 0x82
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"cannot read the array 'train_images'"):
        read_table(path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array(0), r"labels has shape \(\); expected"),
        (np.zeros((4, 0)), r"labels has shape \(4, 0\)"),
        (np.array(["a", "b", "c", "d"]), "not whole numbers"),
        (np.array([0.0, 1.0, np.nan, 0.0]), "not whole numbers"),
        (np.array([0, 1, 2**40, 0]), "labels go up to 1099511627776 for 4 images"),
    ],
    ids=["scalar", "no-columns", "text", "nan", "huge-index"],
)
def test_npz_labels_that_are_not_class_indices_are_named(tmp_path, labels, message):
    """Were: TypeError (len of a scalar), ValueError (reshape of an empty array), and for a label of 2**40 a
    MemoryError building 2**40 class names."""
    path = _archive(tmp_path, train_images=np.zeros((4, 8, 8), np.uint8), train_labels=labels)
    with pytest.raises(DataError, match=message), bounded_memory():
        read_table(path)
