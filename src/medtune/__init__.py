"""medtune: labelled images to a trained, evaluated and explained transfer-learning classifier."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medtune")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
