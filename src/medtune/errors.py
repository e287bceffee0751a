"""Typed exceptions. Every message names the file or value, what was expected, and how to fix it."""

from __future__ import annotations


class MedtuneError(Exception):
    """Base class for every error medtune raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(MedtuneError, ValueError):
    """A configuration key or value is unknown or out of range."""


class DataError(MedtuneError, ValueError):
    """The data cannot be read or is unusable as given (missing file, bad column, unknown label...)."""


class ImageReadError(DataError):
    """One image file cannot be decoded.

    Args:
        path: the file that failed.
        reason: what went wrong, in words.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class WeightsError(MedtuneError, RuntimeError):
    """Pretrained weights cannot be found or loaded."""


class MissingDependencyError(MedtuneError, ImportError):
    """An optional dependency is needed for this feature; the message names the extra to install."""


class DiskFullError(MedtuneError, OSError):
    """No space left on the device a file was being written to; nothing half-written was left behind."""
