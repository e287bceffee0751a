"""Decoding image files into arrays, and the pure array steps that turn them into store-ready uint8.

`read_image` returns what the file holds, at its own precision: ``(H, W)`` for grayscale, ``(H, W, 3)`` for
colour, dtype uint8, uint16 or float32. `to_uint8`, `to_channels` and `resize` are the pure steps the image
store applies afterwards. Each format registers a decoder by file suffix: PIL's formats here, DICOM in
`medtune.data.dicom`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medtune._registry import Registry
from medtune.data._clamped import open_clamped
from medtune.data.dicom import DICOM_SUFFIXES, read_dicom
from medtune.errors import ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: Decoders by lower-case file suffix; a new format is a new file that registers here (as DICOM does below). A decoder
#: is called as ``decoder(path, window=..., frame=...)``; formats without windows or frames ignore those two.
DECODERS: Registry[Callable[..., np.ndarray]] = Registry("image decoder")

RESIZE_MODES = ("squash", "pad", "crop")

INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def is_image_file(path: str | Path) -> bool:
    """True when `path` has a suffix some registered decoder reads."""
    return Path(path).suffix.lower() in DECODERS


def read_image(path: str | Path, window: str = "auto", frame: int | str | None = None) -> np.ndarray:
    """Decode one image file at its own precision: exactly what the image store receives.

    Args:
        path: an image file (PNG 8/16 bit, JPEG, TIFF, BMP, DICOM).
        window: DICOM only: ``auto`` (the file's VOI LUT or window), ``none`` (full range) or ``"CENTRE,WIDTH"``.
        frame: DICOM only: the frame of a multi-frame file (0-based) or ``"middle"``; None refuses such files.

    Returns:
        ``(H, W)`` for grayscale or ``(H, W, 3)`` for colour; uint8, uint16 or float32.

    Raises:
        ImageReadError: the file is missing, truncated, corrupt or of an unknown format.

    >>> read_image("chest.png").shape  # doctest: +SKIP
    (1024, 1024)
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in DECODERS:
        raise ImageReadError(
            path, f"unsupported file type {suffix or '(no suffix)'!r}; expected one of {', '.join(DECODERS.names())}"
        )
    if not path.is_file():
        raise ImageReadError(path, "file not found; check the path (relative paths are resolved against the CSV)")
    return DECODERS.get(suffix)(path, window=window, frame=frame)


def pil_to_array(image: Image.Image) -> np.ndarray:
    """Convert a decoded PIL image of any mode to a gray or RGB array at its own precision, as `read_image` returns
    a file of it (palette images with a gray palette stay gray, 16-bit stays 16-bit, alpha is dropped)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.uint16).copy()
    if mode == "I":
        array = np.asarray(image, dtype=np.int64)
        if array.min() >= 0 and array.max() <= 65535:
            return array.astype(np.uint16)
        return array.astype(np.float32)
    if mode == "F":
        return np.asarray(image, dtype=np.float32).copy()
    if mode in ("L", "LA", "1"):
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    if mode == "P":
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
        # Palette images whose palette is gray (common for X-ray PNGs) stay one channel.
        return rgb[..., 0].copy() if _is_gray(rgb) else rgb.copy()
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()  # RGB, RGBA, CMYK, YCbCr, LAB, HSV


def _is_gray(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]))


def is_colour(image: np.ndarray) -> bool:
    """True for a three-channel image whose channels differ; gray saved as RGB (X-ray JPEGs) is not colour.

    This is the rule behind ``channels=auto``: the data is stored with 3 channels when any image is colour.
    """
    return image.ndim == 3 and image.shape[-1] == 3 and not _is_gray(image)


def _read_with_pil(path: Path, **_: object) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open_clamped(path) as file, Image.open(file) as image:  # a chunk length cannot reserve gigabytes
                image.load()  # force the full decode so truncated files fail here, not later
                image = ImageOps.exif_transpose(image)  # JPEG orientation as the camera meant it
                return pil_to_array(image)
    except UnidentifiedImageError:
        raise ImageReadError(
            path, "not a recognised image (corrupt file, or another format with an image suffix)"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageReadError(path, f"{exc}; the file is truncated or corrupt: re-export or remove it") from None


for _suffix in IMAGE_SUFFIXES:
    DECODERS.register(_suffix)(_read_with_pil)
for _suffix in DICOM_SUFFIXES:
    DECODERS.register(_suffix)(read_dicom)  # pydicom itself is imported only when a DICOM file is read


def to_uint8(array: np.ndarray) -> np.ndarray:
    """Map an image of any precision to uint8: uint8 passes through; floats on a 0-1 scale (windowed DICOM) are
    multiplied by 255; other deeper data is stretched min..max.

    Data deeper than 8 bits (16-bit PNG, DICOM) rarely uses its full range (12-bit X-rays in 16-bit
    containers), so a fixed divide would leave it dark; a min-max stretch keeps all its contrast.
    """
    if array.dtype == np.uint8:
        return array
    data = array.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(array.shape, dtype=np.uint8)
    low, high = float(data[finite].min()), float(data[finite].max())
    if np.issubdtype(array.dtype, np.floating) and low >= 0.0 and high <= 1.0:
        # already on a 0-1 scale (a DICOM window's output): map it as is, so the window is kept, not stretched
        return np.clip(np.rint(np.where(finite, data, 0.0) * 255.0), 0, 255).astype(np.uint8)
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    scaled = np.where(finite, (data - low) / (high - low) * 255.0, 0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def thumbnail(array: np.ndarray, size: int) -> np.ndarray:
    """A uint8 copy of an image (any precision, `to_uint8`) no larger than `size` on either side, for pages:
    ``(H, W)`` for grey images, ``(H, W, 3)`` for colour."""
    array = to_uint8(np.asarray(array))
    if array.ndim == 3:
        array = array[..., 0] if array.shape[-1] == 1 else array[..., :3]
    picture = Image.fromarray(array)
    picture.thumbnail((size, size))
    return np.asarray(picture)


def file_thumbnail(path: str | Path, size: int) -> np.ndarray | None:
    """`thumbnail` of an image file; None for a row of an archive (``.npz``) or a file that cannot be read."""
    if Path(path).suffix.lower() == ".npz":
        return None
    try:
        return thumbnail(read_image(path), size)
    except (ImageReadError, OSError):
        return None


def to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """Return ``(H, W, channels)`` uint8: gray repeated to 3 channels, or colour averaged to 1 (ITU-R 601-2)."""
    if array.ndim == 2:
        array = array[..., None]
    have = array.shape[-1]
    if have == channels:
        return array
    if have == 1 and channels == 3:
        return np.repeat(array, 3, axis=-1)
    if have == 3 and channels == 1:
        return np.asarray(Image.fromarray(array, "RGB").convert("L"))[..., None]
    raise ValueError(f"cannot convert an image with {have} channels to {channels}; expected 1 or 3")


def resize(array: np.ndarray, size: int, mode: str = "squash", interpolation: str = "bicubic") -> np.ndarray:
    """Resize an ``(H, W, C)`` uint8 image to ``(size, size, C)``.

    Args:
        array: the image.
        size: output side in pixels.
        mode: ``squash`` (whole image, aspect not kept: nothing of an X-ray is cut off), ``pad`` (aspect kept,
            black borders) or ``crop`` (aspect kept, centre cropped).
        interpolation: one of ``nearest``, ``bilinear``, ``bicubic``, ``lanczos``, ``box``.

    Returns:
        ``(size, size, C)`` uint8.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is unknown; expected {', '.join(RESIZE_MODES)}")
    resample = INTERPOLATIONS[interpolation]
    height, width, channels = array.shape
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
    if mode == "squash":
        out = image.resize((size, size), resample, reducing_gap=None)
    else:
        scale = (max if mode == "crop" else min)(size / height, size / width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        scaled = image.resize((new_w, new_h), resample)
        if mode == "crop":
            left, top = (new_w - size) // 2, (new_h - size) // 2
            out = scaled.crop((left, top, left + size, top + size))
        else:
            out = Image.new(image.mode, (size, size))
            out.paste(scaled, ((size - new_w) // 2, (size - new_h) // 2))
    result = np.asarray(out, dtype=np.uint8)
    return result[..., None] if result.ndim == 2 else result


def prepare(
    array: np.ndarray, size: int, channels: int, mode: str = "squash", interpolation: str = "bicubic"
) -> np.ndarray:
    """The whole store preprocessing of one decoded image: uint8, channel count, then size."""
    return resize(to_channels(to_uint8(array), channels), size, mode, interpolation)
