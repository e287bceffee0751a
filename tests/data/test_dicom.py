"""DICOM decoding on real files: the four in ../shared/data/dicom and the files pydicom ships (CT, MR, multi-frame,
colour, JPEG-LS), every failure with its message, PatientID groups, and the image store built from DICOM."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from medtune.data.images import is_colour, prepare, read_image
from medtune.data.readers import read_table
from medtune.data.split import assign_splits
from medtune.data.store import StoreSpec, open_store
from medtune.errors import ConfigError, ImageReadError
from tests.conftest import REPO, shared_path

pydicom = pytest.importorskip("pydicom", reason="the dicom extra is not installed: pip install 'medtune[dicom]'")
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.pixels import apply_color_lut, pixel_array  # noqa: E402

from medtune.data.dicom import apply_window, dicom_info  # noqa: E402

# Only files bundled in pydicom's wheel: any other name makes get_testdata_file try a download.
CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
NOTE = "group from DICOM PatientID (set group=COLUMN to choose another)"


def dicom(name: str):
    return shared_path("dicom", name)


def stored(path) -> np.ndarray:
    """The stored pixel values as pydicom decodes them (no rescale, window or inversion)."""
    return pixel_array(str(path))


def write_ct(path, patient_id: str | None = None, offset: int = 0, **changes) -> None:
    """A copy of pydicom's CT_small with another PatientID, shifted pixels and any other header changes."""
    ds = pydicom.dcmread(CT)
    if patient_id is not None:
        ds.PatientID = patient_id
    if offset:
        ds.set_pixel_data(ds.pixel_array + offset, "MONOCHROME2", 16)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=REPO,
                          timeout=120)  # fmt: skip


# --- the four shared files -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "shape"),
    [("abdomen_secondary_capture.dcm", (512, 512)), ("nih_dx_no_finding.dcm", (1024, 1024)),
     ("siim_cr_jpeg_baseline.dcm", (1024, 1024))],
)  # fmt: skip
def test_monochrome2_files_keep_their_stored_values(name, shape):
    image = read_image(dicom(name))
    assert image.shape == shape and image.dtype == np.float32
    np.testing.assert_array_equal(image, stored(dicom(name)))


def test_monochrome1_comes_out_as_the_inverse_of_its_original():
    original, retagged = dicom("siim_cr_jpeg_baseline.dcm"), dicom("siim_cr_monochrome1_retagged.dcm")
    assert np.array_equal(stored(retagged), stored(original))  # same pixels on disk, only the tag differs
    np.testing.assert_array_equal(read_image(retagged), 255 - read_image(original))


def test_jpeg_baseline_equals_pylibjpeg_on_the_raw_stream():
    from pydicom.encaps import generate_frames
    from pylibjpeg import decode

    path = dicom("siim_cr_jpeg_baseline.dcm")
    stream = next(generate_frames(pydicom.dcmread(path).PixelData, number_of_frames=1))
    expected = decode(stream)
    image = read_image(path)
    assert image.shape == expected.shape == (1024, 1024)
    np.testing.assert_array_equal(image, expected)
    pillow = pixel_array(str(path), decoding_plugin="pillow")  # the other JPEG decoder rounds differently
    assert np.abs(pillow.astype(int) - image).max() == 1


def test_dicom_info_of_the_shared_files():
    info = dicom_info(dicom("siim_cr_monochrome1_retagged.dcm"))
    assert info == {
        "modality": "CR", "photometric": "MONOCHROME1", "bits_stored": 8, "bits_allocated": 8, "rows": 1024,
        "columns": 1024, "frames": 1, "transfer_syntax": "JPEG Baseline (Process 1)",
        "transfer_syntax_uid": "1.2.840.10008.1.2.4.50", "patient_id": "16d7f894-55d7-4d95-8957-d18987f0e981",
        "window_centre": None, "window_width": None,
    }  # fmt: skip
    found = {n: dicom_info(dicom(n))["modality"] for n in ("abdomen_secondary_capture.dcm", "nih_dx_no_finding.dcm")}
    assert found == {"abdomen_secondary_capture.dcm": "OT", "nih_dx_no_finding.dcm": "DX"}
    mr = dicom_info(MR)
    assert (mr["bits_stored"], mr["window_centre"], mr["window_width"]) == (16, 600.0, 1600.0)


# --- rescale, windows, MONOCHROME1 ----------------------------------------------------------------------------


def test_ct_rescale_gives_hounsfield_units():
    image = read_image(CT)
    assert image.dtype == np.float32 and (image.min(), image.max()) == (-896.0, 1167.0)
    np.testing.assert_array_equal(image, stored(CT).astype(np.float32) - 1024)  # slope 1, intercept -1024
    np.testing.assert_array_equal(read_image(CT, window="none"), image)  # CT_small has no window of its own


def test_mr_window_from_the_file():
    image, raw = read_image(MR), stored(MR).astype(np.float64)
    assert image.dtype == np.float32 and image.max() == 1.0 and 0.204 < image.min() < 0.205
    dicom_linear = np.clip((raw - 599.5) / 1599 + 0.5, 0, 1)  # WC 600 / WW 1600, DICOM's LINEAR function
    np.testing.assert_allclose(image, dicom_linear, atol=1e-6)
    np.testing.assert_allclose(image, np.clip((raw - (600 - 800)) / 1600, 0, 1), atol=1e-3)


def test_window_none_keeps_the_full_range():
    image = read_image(MR, window="none")
    np.testing.assert_array_equal(image, stored(MR))
    assert (image.min(), image.max()) == (127.0, 2145.0)


def test_explicit_window_is_in_hounsfield_units():
    hu = stored(CT).astype(np.float64) - 1024
    image = read_image(CT, window="40,400")
    np.testing.assert_allclose(image, np.clip((hu - (40 - 400 / 2)) / 400, 0, 1), atol=1e-6)
    assert image.min() == 0.0 and image.max() == 1.0
    assert round(float((image == 0).mean()), 4) == round(float((hu <= -160).mean()), 4) > 0.1  # air and fat
    np.testing.assert_allclose(read_image(MR, window=" 600, 1600 "), read_image(MR, window="600,1600"))


def test_apply_window_functions():
    values = np.array([-1000.0, 39.5, 40.0, 240.0, 1000.0])
    np.testing.assert_allclose(apply_window(values, 40, 400), [0, 0.49875, 0.5, 1, 1])
    np.testing.assert_allclose(apply_window(values, 40, 400, "LINEAR")[2], (40 - 39.5) / 399 + 0.5)
    assert apply_window(np.array([40.0]), 40, 400, "SIGMOID")[0] == 0.5


@pytest.mark.parametrize("window", ["40", "auto,none", "40,0", "40,-5", "bright"])
def test_bad_window_text(window):
    with pytest.raises(ConfigError, match="CENTRE,WIDTH"):
        read_image(CT, window=window)


def test_monochrome1_windowed_and_unwindowed(tmp_path):
    ds = pydicom.dcmread(MR)
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "mr1.dcm")
    np.testing.assert_allclose(read_image(tmp_path / "mr1.dcm"), 1 - read_image(MR), atol=1e-6)
    # Unwindowed: inverted within the signed 16-bit stored range, -32768 + 32767 - x.
    np.testing.assert_array_equal(read_image(tmp_path / "mr1.dcm", window="none"), -1 - stored(MR))


def test_voi_lut_sequence_from_the_file(tmp_path):
    ds = pydicom.dcmread(CT)
    item = pydicom.Dataset()
    item.add_new(0x00283002, "SS", [2048, -1024, 16])  # LUT Descriptor: 2048 entries for HU -1024..1023
    lut = (np.linspace(0, 1, 2048) ** 0.5 * 4095).round().astype(np.uint16)  # a gamma curve into 12 bits
    item.add_new(0x00283006, "OW", lut.tobytes())  # LUT Data
    ds.VOILUTSequence = pydicom.Sequence([item])
    ds.save_as(tmp_path / "lut.dcm")
    hu = stored(CT).astype(np.int64) - 1024
    expected = lut[np.clip(hu + 1024, 0, 2047)] / 4095
    np.testing.assert_allclose(read_image(tmp_path / "lut.dcm"), expected, atol=1e-6)
    np.testing.assert_array_equal(read_image(tmp_path / "lut.dcm", window="none"), hu)


# --- frames and colour ----------------------------------------------------------------------------------------


@pytest.fixture
def three_frames(tmp_path):
    """CT_small as a 3-frame file: frame k holds the CT pixels plus k."""
    ds = pydicom.dcmread(CT)
    base = ds.pixel_array
    ds.set_pixel_data(np.stack([base, base + 1, base + 2]), "MONOCHROME2", 16)
    ds.save_as(tmp_path / "ct3.dcm")
    return tmp_path / "ct3.dcm", base.astype(np.float32) - 1024


def test_multi_frame_needs_a_frame(three_frames):
    path, _ = three_frames
    with pytest.raises(ImageReadError, match=r"ct3\.dcm.*holds 3 frames.*frame=K \(0\.\.2\).*frame=middle"):
        read_image(path)


def test_chosen_frame_is_that_frame(three_frames):
    path, hu = three_frames
    np.testing.assert_array_equal(read_image(path, frame=2), hu + 2)
    np.testing.assert_array_equal(read_image(path, frame="middle"), hu + 1)
    np.testing.assert_array_equal(read_image(CT, frame=5), hu)  # single-frame files ignore frame


@pytest.mark.parametrize("frame", [3, 99])
def test_frame_out_of_range(three_frames, frame):
    path, _ = three_frames
    with pytest.raises(ImageReadError, match=rf"frame {frame} is out of range: the file holds 3 frames \(0\.\.2\)"):
        read_image(path, frame=frame)


def test_bundled_multi_frame_rtdose():
    path = get_testdata_file("rtdose.dcm")
    expected = pydicom.dcmread(path).pixel_array[3]  # all 15 frames decoded, then one taken
    np.testing.assert_array_equal(read_image(path, frame=3), expected.astype(np.float32))
    np.testing.assert_array_equal(read_image(path, frame="middle"), pydicom.dcmread(path).pixel_array[7])


def test_ybr_jpeg_comes_out_as_rgb():
    path = get_testdata_file("examples_ybr_color.dcm")  # YBR_FULL_422 JPEG, 30 frames
    image = read_image(path, frame=0)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, pixel_array(path, index=0))  # pydicom's YBR -> RGB conversion
    assert np.abs(image.astype(int) - pixel_array(path, index=0, raw=True)).mean() > 50  # not the YBR values
    assert is_colour(image)


def test_palette_colour_and_16_bit_rgb():
    path = get_testdata_file("examples_palette.dcm")
    ds = pydicom.dcmread(path)
    expected = np.rint(apply_color_lut(ds.pixel_array, ds) / 257).astype(np.uint8)  # 16-bit palette to 8 bits
    np.testing.assert_array_equal(read_image(path), expected)
    rgb16 = get_testdata_file("SC_rgb_rle_16bit.dcm")
    np.testing.assert_array_equal(read_image(rgb16), np.rint(pixel_array(rgb16) / 257).astype(np.uint8))


def test_jpeg_ls_and_jpeg_2000_decode():
    jls = read_image(get_testdata_file("JPEGLSNearLossless_16.dcm"))
    assert jls.shape == (50, 10) and (jls.min(), jls.max()) == (0.0, 65535.0)
    j2k = read_image(get_testdata_file("JPEG2000.dcm"))
    assert j2k.shape == (1024, 256) and (j2k.min(), j2k.max()) == (-30.0, 245.0)


# --- every bad input says what was expected and the fix ---------------------------------------------------------


def test_not_a_dicom_file(tmp_path):
    shutil.copy(shared_path("cxr3", "normal", "00001280_004.png"), tmp_path / "xray.dcm")
    with pytest.raises(ImageReadError, match=r"xray\.dcm: not a DICOM file \(no 'DICM' file header\).*renamed"):
        read_image(tmp_path / "xray.dcm")


def test_truncated_compressed_file(tmp_path):
    (tmp_path / "cut.dcm").write_bytes(dicom("siim_cr_jpeg_baseline.dcm").read_bytes()[:60000])
    with pytest.raises(ImageReadError, match=r"cut\.dcm: the file is truncated \(60000 bytes\).*export it again"):
        read_image(tmp_path / "cut.dcm")


def test_truncated_uncompressed_file(tmp_path):
    data = dicom("nih_dx_no_finding.dcm").read_bytes()
    (tmp_path / "half.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"half\.dcm: the pixel data cannot be decoded.*less than expected.*"
                                             r"truncated or corrupt"):  # fmt: skip
        read_image(tmp_path / "half.dcm")
    (tmp_path / "head.dcm").write_bytes(data[:500])  # cut before the pixel data starts
    with pytest.raises(ImageReadError, match=r"no Pixel Data element although it is a Secondary Capture Image "
                                             r"Storage file: it is truncated \(500 bytes\)"):  # fmt: skip
        read_image(tmp_path / "head.dcm")
    with pytest.raises(ImageReadError, match="8130 vs 8192 bytes"):  # pydicom ships a truncated MR
        read_image(get_testdata_file("MR_truncated.dcm"))


@pytest.mark.parametrize(("name", "kind"), [("DICOMDIR", "Media Storage Directory Storage"),
                                            ("test-SR.dcm", "Comprehensive SR Storage")])  # fmt: skip
def test_no_pixel_data(tmp_path, name, kind):
    shutil.copy(get_testdata_file(name), tmp_path / "x.dcm")
    with pytest.raises(ImageReadError, match=rf"x\.dcm: has no Pixel Data element \({kind}\): it holds no image"):
        read_image(tmp_path / "x.dcm")


def test_unsupported_transfer_syntax(tmp_path):
    ds = pydicom.dcmread(CT)
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: pydicom has no decoder for video
    ds.PixelData = pydicom.encaps.encapsulate([ds.PixelData])
    ds.save_as(tmp_path / "mpeg.dcm", enforce_file_format=True)
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "mpeg.dcm")
    message = str(info.value)
    assert "1.2.840.10008.1.2.4.100 (MPEG2 Main Profile / Main Level) is not supported" in message
    assert "gdcmconv --raw" in message and "dcmdjpeg" in message


def test_corrupt_compressed_data(tmp_path):
    data = bytearray(dicom("siim_cr_jpeg_baseline.dcm").read_bytes())
    data[60000:60400] = bytes([0x00, 0xFF]) * 200  # markers in the middle of the entropy-coded JPEG data
    (tmp_path / "bad.dcm").write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"bad\.dcm: the JPEG Baseline \(Process 1\) pixel data cannot be "
                                             r"decoded \(.*libjpeg.*\): the compressed data is corrupt"):  # fmt: skip
        read_image(tmp_path / "bad.dcm")


def test_missing_decoder_plugin(tmp_path):
    """Without the pylibjpeg packages JPEG-LS has no decoder; JPEG Baseline falls back to pillow (off by 1 at most)."""
    jpeg = dicom("siim_cr_jpeg_baseline.dcm")
    np.save(tmp_path / "pylibjpeg.npy", read_image(jpeg))
    out = run_python(f"""
        import sys
        for name in ("pylibjpeg", "libjpeg", "openjpeg", "rle"):
            sys.modules[name] = None  # as if the dicom extra's decoders were not installed
        import numpy as np
        from medtune.data.images import read_image
        from medtune.errors import ImageReadError
        try:
            read_image({get_testdata_file("JPEGLSNearLossless_16.dcm")!r})
        except ImageReadError as exc:
            print(exc)
        image = read_image({str(jpeg)!r})
        print("pillow", image.shape, int(np.abs(image - np.load({str(tmp_path / "pylibjpeg.npy")!r})).max()))
    """)
    assert out.returncode == 0, out.stderr
    assert "no decoder for its transfer syntax 1.2.840.10008.1.2.4.81 (JPEG-LS Lossy (Near-Lossless)" in out.stdout
    assert "install pylibjpeg-libjpeg (pip install 'medtune[dicom]' installs all the DICOM decoders)" in out.stdout
    assert "gdcmconv --raw" in out.stdout
    assert "pillow (1024, 1024) 1" in out.stdout


def test_without_pydicom_the_install_hint():
    out = run_python(f"""
        import sys
        sys.modules["pydicom"] = None  # as if the dicom extra were not installed
        from medtune.data.images import read_image
        from medtune.errors import MissingDependencyError
        print(read_image({str(shared_path("cxr3", "normal", "00001280_004.png"))!r}).shape)  # other formats work
        try:
            read_image({str(dicom("nih_dx_no_finding.dcm"))!r})
        except MissingDependencyError as exc:
            print(exc)
    """)
    assert out.returncode == 0, out.stderr
    assert "(256, 256)" in out.stdout
    assert "reading DICOM files needs pydicom and its decoders: pip install 'medtune[dicom]'" in out.stdout


# --- PatientID as group, readers, the image store -------------------------------------------------------------


def test_group_from_patient_id_in_a_csv(tmp_path):
    for i, patient in enumerate(["P1", "P1", "P2", ""]):
        write_ct(tmp_path / f"ct{i}.dcm", patient, offset=i)
    pd.DataFrame({"path": [f"ct{i}.dcm" for i in range(4)], "label": ["a", "b", "a", "b"]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    table = read_table(tmp_path / "labels.csv")
    assert table.frame["group"].tolist() == ["P1", "P1", "P2", None]  # an empty PatientID stays unset
    assert NOTE in table.notes
    np.testing.assert_array_equal(read_image(table.frame["path"][3]), stored(CT) - 1024 + 3)


def test_a_group_column_wins_over_patient_id(tmp_path):
    write_ct(tmp_path / "a.dcm", "P1")
    write_ct(tmp_path / "b.dcm", "P1", offset=1)
    (tmp_path / "labels.csv").write_text("path,label,patient_id\na.dcm,x,7\nb.dcm,y,8\n")
    table = read_table(tmp_path / "labels.csv")
    assert table.frame["group"].tolist() == ["7", "8"] and NOTE not in table.notes


def test_group_from_patient_id_in_class_folders_keeps_patients_in_one_split(tmp_path):
    patients = ["P1", "P1", "P2", "P2", "P3", "P3", "P4", "P4", "P5", "P5", "P6", "P6"]
    for i, patient in enumerate(patients):
        (tmp_path / "ab"[i % 2]).mkdir(exist_ok=True)
        write_ct(tmp_path / "ab"[i % 2] / f"{i:02d}.dcm", patient, offset=i)
    table = read_table(tmp_path)
    assert table.classes == ("a", "b") and len(table) == 12 and NOTE in table.notes
    assert dict(zip(table.frame["id"], table.frame["group"], strict=True))["b/03.dcm"] == "P2"
    split = assign_splits(table, 0.3, 0.3, seed=0)
    assert split.frame.groupby("group")["split"].nunique().max() == 1


def test_image_store_holds_what_read_image_gives(tmp_path):
    table = read_table(shared_path("dicom"), labelled=False)
    assert len(table) == 4
    store = open_store(table, StoreSpec(size=32), cache_dir=tmp_path, workers=0, progress=False)
    for i, path in enumerate(table.frame["path"]):
        np.testing.assert_array_equal(store[i], prepare(read_image(path), 32, 1))


@pytest.mark.usefixtures("three_frames")
def test_image_store_with_window_and_frame(tmp_path):
    write_ct(tmp_path / "one.dcm", "P9")
    table = read_table(tmp_path, labelled=False)
    spec = StoreSpec(size=32, window="40,400", frame="middle")
    store = open_store(table, spec, cache_dir=tmp_path / "cache", workers=0, progress=False)
    for i, file in enumerate(table.frame["path"]):
        np.testing.assert_array_equal(store[i], prepare(read_image(file, "40,400", "middle"), 32, 1))
    assert store.images.shape == (2, 32, 32, 1) and store[0].max() == 255


def test_public_read_image_is_the_store_input_without_torch():
    out = run_python(f"""
        import sys
        import medtune
        image = medtune.read_image({str(dicom("siim_cr_monochrome1_retagged.dcm"))!r})
        print(image.shape, image.dtype, image.max(), "torch" in sys.modules)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(1024,", "1024)", "float32", "255.0", "False"]
