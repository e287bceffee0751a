"""medtune: labelled images to a trained, evaluated and explained transfer-learning classifier.

>>> import medtune
>>> from medtune.data import demo_data
>>> result = medtune.train(data=str(demo_data()), epochs=3)  # doctest: +SKIP
>>> predictor = medtune.load(result.path)  # doctest: +SKIP
>>> predictor("new_xrays/").to_frame().head()  # doctest: +SKIP

Every command of the command line is a function here (`api`: ``train``, ``evaluate``, ``predict``, ``explain``,
``report``, ``export``, ``serve``, ``segment.train|evaluate|predict``, ``crossdomain``, ``ensemble``, ``embed``,
``probe``, ``index``, ``similar``, ``audit``, ``summary``, ``sweep``, ``tune``) and ``load`` opens a run for
numpy arrays and PIL images. ``import medtune`` does not import torch: each function imports what it uses.

The house, top floor first (a package imports only from the floors below it; ``make lint`` checks that): `cli` (the
command line); `api` (the Python API this front door opens); `experiments` (queue, sweeps, leaderboard,
cross-domain, ensembles) and `deploy` (ONNX export, quantisation, serving); `fitting` (training on Lightning);
`features` (embed, probe, similar, audit, shortcuts); `apply` (evaluate, predict, explain with the bare network) and
`reports` (pages); `runs` (run directories, prepared datasets, trained networks); `tasks` (what differs between
single-label, multi-label and segmentation: one `Task` each) and `cams` (Grad-CAM building blocks); `data`,
`training` (plain-PyTorch blocks of training) and `metrics`; `models`; `config`. Beneath them all: `errors`, `_io`
(atomic writes), `_locks`, `_paths`, `_progress`, `_registry` and `_version`.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from medtune._version import __version__

if sys.platform == "win32":  # its cache locks are POSIX flock (medtune._locks) and its CPU accounting getrusage
    raise ImportError(
        "medtune runs on Linux and macOS; on Windows run it inside WSL 2 (https://learn.microsoft.com/windows/wsl/install)"
    )

from medtune.api import segment
from medtune.api.looking import audit, embed, index, probe, similar, summary
from medtune.api.making import crossdomain, ensemble, sweep, train, tune
from medtune.api.predictor import Predictor, load
from medtune.api.using import evaluate, explain, export, predict, report, serve

if TYPE_CHECKING:
    import numpy as np

    from medtune.api.outcomes import EvaluationResult, Prediction, Predictions, TrainingResult

#: The result types, imported when first asked for (they extend classes of modules that import torch).
_RESULTS = ("EvaluationResult", "Prediction", "Predictions", "TrainingResult")


def __getattr__(name: str) -> Any:
    if name in _RESULTS:
        from medtune.api import outcomes

        return getattr(outcomes, name)
    raise AttributeError(f"module 'medtune' has no attribute {name!r}")


def read_image(path: str | os.PathLike, window: str = "auto", frame: int | str | None = None) -> np.ndarray:
    """Decode one image file (PNG, JPEG, TIFF, BMP, DICOM) exactly as the image store receives it, before it is
    made uint8 and resized (`medtune.data.images.read_image`); does not import torch.

    Args:
        path: the image file.
        window: DICOM: ``auto`` (the file's VOI LUT or window), ``none`` or ``"CENTRE,WIDTH"`` (``"40,400"``).
        frame: DICOM: the frame of a multi-frame file (0-based) or ``"middle"``.

    Returns:
        ``(H, W)`` gray or ``(H, W, 3)`` colour; DICOM gray is float32 (rescaled values, or 0..1 when windowed,
        MONOCHROME1 inverted).

    >>> medtune.read_image("scans/chest.dcm").shape  # doctest: +SKIP
    (1024, 1024)
    """
    from medtune.data.images import read_image as decode

    return decode(path, window, frame)


def register_backbone(name: str, builder: Any = None) -> Any:
    """Make your own network usable as ``backbone=NAME``: an ``nn.Module`` class or a function returning one,
    called with ``num_classes`` and ``in_chans`` (`medtune.models.custom.register_backbone`; also a decorator).

    >>> @medtune.register_backbone("tinynet")  # doctest: +SKIP
    ... class TinyNet(torch.nn.Module): ...
    >>> medtune.train(data="xrays/", backbone="tinynet")  # doctest: +SKIP
    """
    from medtune.models.custom import register_backbone as register

    return register(name, builder)


__all__ = [
    "EvaluationResult", "Prediction", "Predictions", "Predictor", "TrainingResult", "__version__", "audit",
    "crossdomain", "embed", "ensemble", "evaluate", "explain", "export", "index", "load", "predict", "probe",
    "read_image", "register_backbone", "report", "segment", "serve", "similar", "summary", "sweep", "train", "tune",
]  # fmt: skip
