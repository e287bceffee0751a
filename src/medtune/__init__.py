"""medtune: labelled images to a trained, evaluated and explained transfer-learning classifier.

>>> import medtune
>>> from medtune.data import demo_data
>>> result = medtune.train(data=str(demo_data()), epochs=3)  # doctest: +SKIP
>>> medtune.predict(result.run.path, ["new_xrays/"]).head()  # doctest: +SKIP

The house, top floor first (a package imports only from the floors below it; ``make lint`` checks that):
`cli` (the command line); `experiments` (queue, sweeps, leaderboard, cross-domain, ensembles) and `deploy`
(ONNX export, quantisation, serving); `fitting` (training on Lightning); `features` (embed, probe, similar,
audit, shortcuts); `apply` (evaluate, predict, explain with the bare network) and `reports` (pages); `runs`
(run directories, prepared datasets, trained networks); `tasks` (what differs between single-label,
multi-label and segmentation: one `Task` each) and `cams` (Grad-CAM building blocks); `data`, `training`
(plain-PyTorch blocks of training) and `metrics`; `models`; `config`. Beneath them all: `errors`, `_io` (atomic
writes), `_locks`, `_paths`, `_progress`, `_registry` and `_version`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medtune._version import __version__

if sys.platform == "win32":  # its cache locks are POSIX flock (medtune._locks) and its CPU accounting getrusage
    raise ImportError(
        "medtune runs on Linux and macOS; on Windows run it inside WSL 2 (https://learn.microsoft.com/windows/wsl/install)"
    )

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from medtune.apply.evaluate import Evaluation
    from medtune.config import Config
    from medtune.features.audit import Audit
    from medtune.features.embed import Embedding
    from medtune.fitting.train import TrainResult
    from medtune.runs import Run


def train(
    config: Config | None = None,
    out: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
    log_prefix: str = "",
    **keys: Any,
) -> TrainResult:
    """Train and evaluate a classifier, then write its report page (unless ``report=false``): training is
    `medtune.fitting.train.train_and_report` with a `Config` or the same flat keys as the command line (``data=``,
    ``epochs=``...). A report that cannot be written leaves the run
    complete, with ``report_error`` saying why."""
    from medtune.config import load_config
    from medtune.fitting.train import train_and_report

    if config is not None and keys:
        config = load_config(overrides=config.model_dump(exclude_unset=True) | keys)
    config = config if config is not None else load_config(**keys)
    return train_and_report(config, out, progress=progress, callbacks=callbacks, log_prefix=log_prefix)


def evaluate(
    run: str | os.PathLike,
    data: str | os.PathLike | None = None,
    split: str | None = None,
    keys: Mapping[str, Any] | None = None,
    tta: bool | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    calibration: str | None = None,
) -> Evaluation:
    """Metrics of a trained run (or its ``.onnx``) on its test split, or on other data read with the typed reading
    `keys`, with the decisions before and after a named `calibration` (`medtune.apply.evaluate.evaluate`)."""
    from medtune.apply.evaluate import evaluate as run_evaluation

    return run_evaluation(run, data, split, keys, tta, out, progress, calibration)


def predict(
    run: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    tta: bool | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    path_column: str | None = None,
    progress: bool = True,
    masks: str | os.PathLike | None = None,
    engine: str = "auto",
    outside_paths: bool = False,
    calibration: str | None = None,
    reject: bool = False,
) -> pd.DataFrame:
    """Predictions for image files, folders, globs or CSVs, one row each, under a named `calibration` (conformal
    sets, or a prevalence or threshold calibration for other data) and with the guard's verdict when the run has one
    (`medtune.apply.predict.predict`)."""
    from medtune.apply.predict import predict as run_prediction

    return run_prediction(
        run, inputs, tta, batch_size, workers, path_column, progress, masks, engine, outside_paths, calibration, reject
    )


def embed(
    source: str | os.PathLike,
    data: str | os.PathLike,
    keys: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> Embedding:
    """Pooled backbone features of every image of `data` from a run or a backbone name, cached beside the image
    store (`medtune.features.embed.embed`); ``.features`` is ``(N, D)`` float16, ``.table`` the images."""
    from medtune.features.embed import embed as run_embedding

    return run_embedding(source, data, keys, batch_size, progress)


def audit(
    data: str | os.PathLike,
    source: str = "tf_efficientnet_lite0",
    keys: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    fix_split: bool = False,
    near: float | None = None,
    checks: Sequence[str] | None = None,
    progress: bool = True,
) -> Audit:
    """Duplicates (leakage across splits first), likely label errors and outliers of `data`
    (`medtune.features.audit.audit`), written as CSV files, ``audit.json`` and the page ``audit.html``."""
    from medtune.features.audit import CHECKS, NEAR_THRESHOLD, audit_with_page

    near = NEAR_THRESHOLD if near is None else near
    return audit_with_page(data, source, keys, out, fix_split, near, CHECKS if checks is None else checks, progress)


def probe(
    data: str | os.PathLike,
    source: str = "tf_efficientnet_lite0",
    methods: Sequence[str] = ("logreg",),
    keys: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Run]:
    """Logistic regression, kNN or SVM on frozen features, each scored on the test split as a run directory
    (`medtune.features.probe.probe`)."""
    from medtune.features.probe import probe as run_probe

    return run_probe(data, source, methods, keys, out, progress)


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


def explain(
    run: str | os.PathLike,
    inputs: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    method: str = "gradcam",
    target: str = "predicted",
    layer: str | None = None,
    masks: str | os.PathLike | None = None,
    batch_size: int | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Grad-CAM maps for image files, folders, globs or CSVs, written to `out` (`medtune.apply.explain.explain`)."""
    from medtune.apply.explain import explain as run_explanation

    return run_explanation(run, inputs, out, method, target, layer, masks, batch_size, progress)


__all__ = [
    "__version__", "audit", "embed", "evaluate", "explain", "predict", "probe", "read_image", "register_backbone",
    "train",
]  # fmt: skip
