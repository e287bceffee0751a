"""Decoding real image files of every supported kind, and the pure store steps."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medtune.data.images import prepare, read_image, resize, thumbnail, to_channels, to_uint8
from medtune.errors import ImageReadError
from tests.conftest import shared_path


@pytest.fixture
def xray() -> np.ndarray:
    """A real 8-bit chest X-ray from ../shared/data/cxr3."""
    return np.asarray(Image.open(shared_path("cxr3", "normal", "00001280_004.png")).convert("L"))


def test_png_8bit_gray(xray):
    image = read_image(shared_path("cxr3", "normal", "00001280_004.png"))
    assert image.dtype == np.uint8 and image.ndim == 2
    np.testing.assert_array_equal(image, xray)


def test_png_16bit_keeps_full_precision(tmp_path, xray):
    deep = xray.astype(np.uint16) * 16 + 7  # 12-bit data in a 16-bit container, as detectors write it
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, deep)
    stretched = to_uint8(image)
    assert stretched.min() == 0 and stretched.max() == 255


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_png_colour_modes(tmp_path, xray, mode):
    Image.fromarray(xray).convert(mode).save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png")
    assert image.dtype == np.uint8
    if mode == "LA":
        np.testing.assert_array_equal(image, xray)
    elif mode == "P":  # a gray palette stays one channel (within the palette's quantisation)
        assert image.ndim == 2
        assert np.abs(image.astype(int) - xray).mean() < 4
    else:
        assert image.shape == (*xray.shape, 3)
        np.testing.assert_array_equal(image[..., 1], xray)


def test_colour_palette_png_is_rgb(tmp_path):
    tile = np.asarray(Image.open(shared_path("pathology-tiles", "TUM-AACHEHDV.tif")).convert("RGB"))
    Image.fromarray(tile).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (224, 224, 3)


def test_jpeg_exif_orientation_is_applied(tmp_path, xray):
    wide = xray[:100, :200]  # 100 rows, 200 columns
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(wide).save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    assert read_image(tmp_path / "rot.jpg").shape == (200, 100)


def test_real_jpeg_and_odd_png_from_covid_collection():
    jpeg = read_image(shared_path("cxr-fullres", "1-s2.0-S1684118220300608-main.pdf-001.jpg"))
    png = read_image(shared_path("cxr-fullres", "1.CXRCTThoraximagesofCOVID-19fromSingapore.pdf-002-fig3a.png"))
    assert jpeg.dtype == np.uint8 and png.dtype == np.uint8
    assert min(jpeg.shape[:2]) > 50 and min(png.shape[:2]) > 50


def test_tiff_and_bmp(tmp_path):
    tile = read_image(shared_path("pathology-tiles", "ADI-AAQEFMRI.tif"))
    assert tile.shape == (224, 224, 3) and tile.dtype == np.uint8
    Image.fromarray(tile).save(tmp_path / "tile.bmp")
    np.testing.assert_array_equal(read_image(tmp_path / "tile.bmp"), tile)


def test_truncated_png_names_the_file(tmp_path):
    data = shared_path("cxr3", "normal", "00001280_004.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png.*truncated or corrupt"):
        read_image(tmp_path / "cut.png")


def test_not_an_image_names_the_file(tmp_path):
    (tmp_path / "notes.png").write_text("this is text, saved with the wrong suffix")
    with pytest.raises(ImageReadError, match=r"notes\.png.*not a recognised image"):
        read_image(tmp_path / "notes.png")


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(ImageReadError, match=r"absent\.png.*file not found"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "scan.xyz").write_bytes(b"\0")
    with pytest.raises(ImageReadError, match=r"unsupported file type '\.xyz'.*\.png"):
        read_image(tmp_path / "scan.xyz")


def test_resize_modes_keep_or_change_aspect(xray):
    wide = to_channels(xray[:128, :256], 1)
    assert resize(wide, 64, "squash").shape == (64, 64, 1)
    padded = resize(wide, 64, "pad")
    assert padded.shape == (64, 64, 1) and padded[:10].max() == 0  # black bars top and bottom
    assert resize(wide, 64, "crop").shape == (64, 64, 1)


def test_channels_both_ways(xray):
    rgb = to_channels(xray, 3)
    assert rgb.shape == (*xray.shape, 3)
    np.testing.assert_array_equal(to_channels(rgb, 1)[..., 0], xray)


def test_prepare_is_the_whole_chain(xray):
    out = prepare(xray.astype(np.uint16) * 3, 32, 3)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.max() > 200 and out.min() < 20  # stretched to the full range before resizing


def test_thumbnails_keep_the_picture_and_its_proportions():
    xray = read_image(shared_path("cxr-fullres", "00000061_012.png"))
    small = thumbnail(xray, 96)
    assert small.dtype == np.uint8 and max(small.shape[:2]) == 96 and small.ndim == 2
    assert small.std() > 20  # a picture, not a sliver or a flat square
    colour = thumbnail(np.dstack([np.full((300, 200), v, np.uint16) for v in (0, 500, 1000)]), 96)
    assert colour.shape == (96, 64, 3)
    assert thumbnail(np.zeros((28, 28, 1), np.uint8), 96).shape == (28, 28)  # never enlarged
