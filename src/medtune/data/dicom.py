"""DICOM files: pixel data decoded as a viewer displays it, and header facts (modality, photometric
interpretation, bit depth, patient) read without the pixels.

`read_dicom` follows the DICOM display pipeline: stored values -> modality LUT (rescale slope and intercept, so CT
comes out in Hounsfield units) -> VOI (the file's VOI LUT or window, an explicit window, or none) -> MONOCHROME1
inverted, so that bright means dense as in MONOCHROME2. Grayscale comes out as float32 at full precision (the image
store stretches it to 0-255 later), colour (RGB, YBR, palette) as uint8 RGB. pydicom 3 and its pylibjpeg plugins
(JPEG, JPEG-LS, JPEG 2000, RLE) are the optional ``dicom`` extra, imported only when a DICOM file is read.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtune.config.values import parse_window
from medtune.data._clamped import open_clamped
from medtune.errors import ConfigError, ImageReadError, MissingDependencyError

DICOM_SUFFIXES = (".dcm", ".dicom")
INSTALL_HINT = "pip install 'medtune[dicom]'"
WINDOW_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
_PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_CONVERT_HINT = "or convert the file to uncompressed DICOM with `gdcmconv --raw IN OUT` or dcmtk's `dcmdjpeg IN OUT`"

# The package of the pylibjpeg family that decodes each compressed transfer syntax, named when it is missing.
_LIBJPEG, _OPENJPEG = "pylibjpeg-libjpeg", "pylibjpeg-openjpeg"
_PLUGIN_PACKAGES = {
    "1.2.840.10008.1.2.4.50": _LIBJPEG,  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": _LIBJPEG,  # JPEG Extended (Process 2 and 4)
    "1.2.840.10008.1.2.4.57": _LIBJPEG,  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": _LIBJPEG,  # JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.80": _LIBJPEG,  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": _LIBJPEG,  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _OPENJPEG,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _OPENJPEG,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _OPENJPEG,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _OPENJPEG,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _OPENJPEG,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE Lossless
}

# What a damaged file makes pydicom or a decoder plugin raise while parsing or decoding.
_PARSE_ERRORS = (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error,
                 NotImplementedError, OverflowError, RuntimeError)  # fmt: skip


def _parse_errors() -> tuple[type[BaseException], ...]:
    """What pydicom raises on a corrupt file (fuzzing found its own BytesLengthException among them)."""
    return (*_PARSE_ERRORS, _pydicom().errors.BytesLengthException)


def _dcmread(path: Path, **options: Any) -> Any:
    """`pydicom.dcmread` on a `ClampedReader`: a corrupt element length cannot reserve gigabytes."""
    with open_clamped(path) as file:
        return _pydicom().dcmread(file, **options)


def _pydicom() -> Any:
    try:
        import pydicom
        import pydicom.pixels
    except ImportError:
        raise MissingDependencyError(f"reading DICOM files needs pydicom and its decoders: {INSTALL_HINT}") from None
    return pydicom


def read_dicom(path: str | Path, window: str = "auto", frame: int | str | None = None) -> np.ndarray:
    """Decode one DICOM file as it is displayed: rescaled, windowed, MONOCHROME1 inverted, one frame.

    Args:
        path: a DICOM file.
        window: ``auto`` uses the file's VOI LUT or its first window centre/width, else the full range; ``none``
            ignores the file's window; ``"CENTRE,WIDTH"`` (``"40,400"``) applies that window in the modality's
            units (Hounsfield units for CT). Colour images are never windowed.
        frame: the frame of a multi-frame file (0-based) or ``"middle"``; None refuses multi-frame files.
            Single-frame files ignore it.

    Returns:
        ``(H, W)`` float32 for grayscale: modality values, or 0..1 when a window is applied; ``(H, W, 3)`` uint8 RGB
        for colour (YBR and palette colour converted).

    Raises:
        ImageReadError: not a DICOM file, truncated, no pixel data, an unsupported transfer syntax, a decoder
            plugin missing, corrupt compressed data, a multi-frame file without a frame, a frame out of range.
        MissingDependencyError: pydicom is not installed.

    >>> read_dicom("scans/chest.dcm").shape  # doctest: +SKIP
    (1024, 1024)
    """
    path = Path(path)
    choice = parse_window(window)
    try:
        ds = _read_dataset(path)
        raw = _decode(ds, path, _frame_index(ds, path, frame))
        photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    except (ImageReadError, ConfigError):
        raise  # already named (both are ValueErrors, which the next clause would wrap again)
    except _parse_errors() as exc:  # pydicom parses elements when first read: a corrupt one fails wherever that is
        raise ImageReadError(path, f"the DICOM header cannot be read ({_brief(exc)}); the file is truncated or "
                                   "corrupt: copy or export it again") from None  # fmt: skip
    if photometric == "PALETTE COLOR" or (raw.ndim == 3 and raw.shape[-1] == 3):
        return _to_rgb(raw, ds, path, photometric)
    try:
        return _to_gray(raw, ds, choice, photometric == "MONOCHROME1")
    except _parse_errors() as exc:
        reason = f"its rescale or VOI LUT cannot be applied ({_brief(exc)}); set window=none, or export it again"
        raise ImageReadError(path, reason) from None


def apply_window(values: np.ndarray, centre: float, width: float, function: str = "LINEAR_EXACT") -> np.ndarray:
    """Map `values` through a window to 0..1 (float64): 0 at and below the window, 1 above it.

    Args:
        values: modality values (after rescale: Hounsfield units for CT).
        centre: window centre, in the same units.
        width: window width, positive.
        function: ``LINEAR_EXACT`` (``clip((x - (c - w/2)) / w, 0, 1)``, used for explicit windows), ``LINEAR``
            (DICOM's default for a file's window: centre - 0.5, width - 1, PS3.3 C.11.2.1.2.1) or ``SIGMOID``.

    >>> apply_window(np.array([-200.0, 40.0, 240.0]), 40, 400).tolist()
    [0.0, 0.5, 1.0]
    """
    values = np.asarray(values, dtype=np.float64)
    function = function.upper()
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
    if function == "LINEAR" and width > 1:
        centre, width = centre - 0.5, width - 1.0
    elif function not in WINDOW_FUNCTIONS:
        raise ValueError(f"window function {function!r} is unknown; expected one of {', '.join(WINDOW_FUNCTIONS)}")
    return np.clip((values - (centre - width / 2.0)) / width, 0.0, 1.0)


def _read_dataset(path: Path) -> Any:
    """The whole dataset, or ImageReadError for a file that is not DICOM, truncated, or holds no image."""
    pydicom = _pydicom()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # pydicom's remarks on odd headers would flood a store build
            ds = _dcmread(path)
    except pydicom.errors.InvalidDicomError:
        raise ImageReadError(
            path,
            "not a DICOM file (no 'DICM' file header); expected a DICOM Part 10 file: check that it is not "
            "another format renamed to .dcm, or export it again as DICOM",
        ) from None
    except _parse_errors() as exc:
        raise ImageReadError(path, f"the DICOM header cannot be read ({exc}); the file is truncated or corrupt: copy "
                                   "or export it again") from None  # fmt: skip
    if any("End of file reached" in str(w.message) for w in caught):
        raise ImageReadError(path, f"the file is truncated ({path.stat().st_size} bytes): it ends inside its "
                                   "last element (usually the pixel data); copy or export it again")  # fmt: skip
    if not any(name in ds for name in _PIXEL_ELEMENTS):
        sop = ds.get("SOPClassUID") or getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID")
        kind = getattr(sop, "name", None) or "an unknown SOP class"
        if "Image Storage" in kind:
            raise ImageReadError(
                path,
                f"has no Pixel Data element although it is a {kind} file: it is truncated "
                f"({path.stat().st_size} bytes) or was saved without its pixels; copy or export it again",
            )
        raise ImageReadError(
            path,
            f"has no Pixel Data element ({kind}): it holds no image (a DICOMDIR, structured report or "
            "presentation state, for example); remove it from the data, or point medtune at the image files",
        )
    return ds


def _frame_index(ds: Any, path: Path, frame: int | str | None) -> int | None:
    """The frame to decode: None for a single-frame file, else the chosen one (checked against the count)."""
    if frame is not None and frame != "middle" and (not isinstance(frame, int) or isinstance(frame, bool)):
        raise ConfigError(f"frame {frame!r} is unknown; expected a frame number (0 is the first) or middle")
    try:
        count = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        count = 1
    if count <= 1:
        return None
    if frame is None:
        raise ImageReadError(
            path,
            f"holds {count} frames and no frame was chosen: set frame=K (0..{count - 1}) or frame=middle to "
            "use one frame of each multi-frame file",
        )
    index = count // 2 if frame == "middle" else frame
    if not 0 <= index < count:
        raise ImageReadError(
            path,
            f"frame {frame} is out of range: the file holds {count} frames (0..{count - 1}), set "
            f"frame=0..{count - 1} or frame=middle",
        )
    return index


def _decode(ds: Any, path: Path, index: int | None) -> np.ndarray:
    """The stored pixel values of one frame (YBR converted to RGB), or ImageReadError naming the fix."""
    pixels = _pydicom().pixels
    uid = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    if not uid:
        raise ImageReadError(path, "its file header names no Transfer Syntax UID; export it again as DICOM Part 10")
    name = f"{uid} ({uid.name})" if uid.name != str(uid) else f"{uid} (an unknown transfer syntax)"
    try:
        decoder = pixels.get_decoder(uid)
    except NotImplementedError:
        raise ImageReadError(
            path,
            f"its transfer syntax {name} is not supported by pydicom's decoders: convert the file to "
            "uncompressed DICOM first, e.g. `gdcmconv --raw IN OUT` or dcmtk's `dcmdjpeg IN OUT`",
        ) from None
    package = _PLUGIN_PACKAGES.get(str(uid))
    if not decoder.is_available:
        raise ImageReadError(
            path,
            f"no decoder for its transfer syntax {name} is installed: install {package or 'a decoder plugin'} "
            f"({INSTALL_HINT} installs all the DICOM decoders), {_CONVERT_HINT}",
        )
    try:
        return pixels.pixel_array(ds, index=index)
    except RuntimeError as exc:  # every available plugin failed on the compressed data
        hint = ""
        if package and "pylibjpeg" not in decoder.available_plugins:
            hint = f"; if the file is intact, install {package} ({INSTALL_HINT}), which decodes more variants"
        raise ImageReadError(path, f"the {uid.name} pixel data cannot be decoded ({_brief(exc)}): the "
                                   f"compressed data is corrupt{hint}") from None  # fmt: skip
    except _parse_errors() as exc:
        raise ImageReadError(path, f"the pixel data cannot be decoded ({_brief(exc)}): the file is truncated "
                                   "or corrupt, or its image header (rows, columns, bits) is wrong; copy or export "
                                   "it again") from None  # fmt: skip
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":  # a Rust decoder's panic (pylibjpeg-rle, found by fuzzing)
            raise
        raise ImageReadError(path, f"the {uid.name} pixel data cannot be decoded (its decoder panicked: "
                                   f"{_brief(exc)}): the compressed data is corrupt") from None  # fmt: skip


def _brief(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _to_gray(raw: np.ndarray, ds: Any, choice: str | tuple[float, float], monochrome1: bool) -> np.ndarray:
    """Modality LUT, then the window, then the MONOCHROME1 inversion; float32."""
    pixels = _pydicom().pixels
    values = pixels.apply_modality_lut(raw, ds)
    windowed: np.ndarray | None = None
    if isinstance(choice, tuple):
        windowed = apply_window(values, *choice)
    elif choice == "auto":
        windowed = _file_window(values, ds)
    if windowed is not None:
        return (1.0 - windowed if monochrome1 else windowed).astype(np.float32)
    if monochrome1:
        low, high = _value_range(raw, ds)
        values = low + high - np.asarray(values, dtype=np.float64)
    return np.asarray(values, dtype=np.float32)


def _file_window(values: np.ndarray, ds: Any) -> np.ndarray | None:
    """The file's first VOI LUT, else its first window centre/width, as 0..1; None when it has neither."""
    if ds.get("VOILUTSequence"):
        return _voi_lut(values, ds)
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or width is None or width <= 0:
        return None
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    return apply_window(values, centre, width, function if function in WINDOW_FUNCTIONS else "LINEAR")


def _first(value: Any) -> float | None:
    """The first value of a DS element that may hold several (one per window), as a float."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _voi_lut(values: np.ndarray, ds: Any) -> np.ndarray:
    """The first VOI LUT of the file applied to the modality values, scaled by the LUT's own range to 0..1."""
    pixels = _pydicom().pixels
    item = ds.VOILUTSequence[0]
    entries, first = int(item.LUTDescriptor[0]) or 2**16, int(item.LUTDescriptor[1])
    table = pixels.apply_voi(np.arange(first, first + entries, dtype=np.int64), ds).astype(np.float64)
    mapped = pixels.apply_voi(np.rint(values).astype(np.int64), ds).astype(np.float64)
    low, high = float(table.min()), float(table.max())
    return (mapped - low) / (high - low) if high > low else np.zeros(mapped.shape)


def _value_range(raw: np.ndarray, ds: Any) -> tuple[float, float]:
    """The lowest and highest value the stored bits can hold, through the modality LUT (for the inversion)."""
    if np.issubdtype(raw.dtype, np.floating):
        return float(np.nanmin(raw)), float(np.nanmax(raw))
    bits = int(ds.get("BitsStored") or raw.dtype.itemsize * 8)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    ends = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2**bits - 1], dtype=np.int64)
    mapped = np.asarray(_pydicom().pixels.apply_modality_lut(ends, ds), dtype=np.float64)
    return float(mapped.min()), float(mapped.max())


def _to_rgb(raw: np.ndarray, ds: Any, path: Path, photometric: str) -> np.ndarray:
    """Colour as uint8 RGB: palette indices looked up, deeper samples scaled from their bit depth."""
    if photometric == "PALETTE COLOR":
        try:
            raw = _pydicom().pixels.apply_color_lut(raw, ds)
        except _parse_errors() as exc:
            raise ImageReadError(path, f"its palette colour lookup table cannot be applied ({_brief(exc)}); "
                                       "export it again as RGB") from None  # fmt: skip
        bits = raw.dtype.itemsize * 8
    else:
        bits = int(ds.get("BitsStored") or raw.dtype.itemsize * 8)
    if raw.dtype == np.uint8:
        return np.ascontiguousarray(raw)
    scaled = np.rint(np.clip(raw.astype(np.float64), 0, 2**bits - 1) * (255.0 / (2**bits - 1)))
    return scaled.astype(np.uint8)


def dicom_info(path: str | Path) -> dict:
    """Header facts of one DICOM file, read without its pixel data.

    Returns:
        ``modality``, ``photometric``, ``bits_stored``, ``bits_allocated``, ``rows``, ``columns``, ``frames``,
        ``transfer_syntax`` (its name) and ``transfer_syntax_uid``, ``patient_id``, ``window_centre`` and
        ``window_width`` (the first window, None when the file has none); missing elements are None.

    Raises:
        ImageReadError: not a DICOM file, or a header that cannot be read.

    >>> dicom_info("scans/monochrome1.dcm")["photometric"]  # doctest: +SKIP
    'MONOCHROME1'
    """
    path = Path(path)
    ds = _read_header(path)
    uid = getattr(ds, "file_meta", {}).get("TransferSyntaxUID")
    return {
        "modality": _text(ds.get("Modality")),
        "photometric": _text(ds.get("PhotometricInterpretation")),
        "bits_stored": _int(ds.get("BitsStored")),
        "bits_allocated": _int(ds.get("BitsAllocated")),
        "rows": _int(ds.get("Rows")),
        "columns": _int(ds.get("Columns")),
        "frames": _int(ds.get("NumberOfFrames")) or 1,
        "transfer_syntax": uid.name if uid else None,
        "transfer_syntax_uid": str(uid) if uid else None,
        "patient_id": _text(ds.get("PatientID")),
        "window_centre": _first(ds.get("WindowCenter")),
        "window_width": _first(ds.get("WindowWidth")),
    }


def read_patient_ids(paths: list[str]) -> list[str | None]:
    """The PatientID of each DICOM file (None when empty, missing or unreadable: the image check reports those)."""
    ids: list[str | None] = []
    for path in paths:
        try:
            ids.append(_text(_read_header(Path(path)).get("PatientID")))
        except ImageReadError:
            ids.append(None)
    return ids


def _read_header(path: Path) -> Any:
    pydicom = _pydicom()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        raise ImageReadError(path, "not a DICOM file (no 'DICM' file header); expected a DICOM Part 10 file") from None
    except _parse_errors() as exc:
        reason = f"the DICOM header cannot be read ({exc}); the file is truncated or corrupt"
        raise ImageReadError(path, reason) from None


def _text(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
