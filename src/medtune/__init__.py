"""medtune: labelled images to a trained, evaluated and explained transfer-learning classifier.

>>> import medtune
>>> result = medtune.train(data="../shared/data/pneumoniamnist/pneumoniamnist.npz", epochs=3)  # doctest: +SKIP
>>> medtune.predict(result.run.path, ["new_xrays/"]).head()  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

from medtune._version import __version__

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from medtune.config import Config
    from medtune.engine.evaluate import Evaluation
    from medtune.engine.train import TrainResult


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
    `medtune.engine.train.train` with a `Config` or the same flat keys as the command line (``data=``,
    ``epochs=``...), the page `medtune.reports.write_run_report`. A report that cannot be written leaves the run
    complete, with ``report_error`` saying why."""
    from dataclasses import replace

    from medtune.config import load_config
    from medtune.engine.train import train as run_training

    if config is not None and keys:
        config = load_config(overrides=config.model_dump(exclude_unset=True) | keys)
    config = config if config is not None else load_config(**keys)
    result = run_training(config, out, progress=progress, callbacks=callbacks, log_prefix=log_prefix)
    if not config.report:
        return result
    from medtune.reports import write_run_report

    page, problem = write_run_report(result.run.path)
    return replace(result, report=page, report_error=problem)


def evaluate(run: str | os.PathLike, data: str | os.PathLike | None = None, **kwargs: Any) -> Evaluation:
    """Metrics of a trained run on its test split or on other data (`medtune.engine.evaluate.evaluate`)."""
    from medtune.engine.evaluate import evaluate as run_evaluation

    return run_evaluation(run, data, **kwargs)


def predict(run: str | os.PathLike, inputs: list[str | os.PathLike], **kwargs: Any) -> pd.DataFrame:
    """Predictions for image files, folders, globs or CSVs (`medtune.engine.predict.predict`)."""
    from medtune.engine.predict import predict as run_prediction

    return run_prediction(run, inputs, **kwargs)


def embed(source: str | os.PathLike, data: str | os.PathLike, **keys: Any) -> Any:
    """Pooled backbone features of every image of `data` from a run or a backbone name, cached beside the image
    store (`medtune.engine.embed.embed`); ``.features`` is ``(N, D)`` float16, ``.table`` the images."""
    from medtune.engine.embed import embed as run_embedding

    return run_embedding(source, data, keys)


def audit(data: str | os.PathLike, source: str = "tf_efficientnet_lite0", *args: Any, **kwargs: Any) -> Any:
    """Duplicates (leakage across splits first), likely label errors and outliers of `data`
    (`medtune.engine.audit.audit`), written as CSV files, ``audit.json`` and the page ``audit.html``."""
    from medtune.engine.audit import audit as run_audit
    from medtune.reports.audit import write_audit_page

    found = run_audit(data, source, *args, **kwargs)
    write_audit_page(found)
    return found


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

    >>> medtune.read_image("../shared/data/dicom/siim_cr_jpeg_baseline.dcm").shape  # doctest: +SKIP
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


# The package of Grad-CAM building blocks shares the name of the function below. Python binds a subpackage to its
# parent's attribute when the subpackage is first imported, which would replace the function the first time
# anything ran `from medtune.explain import ...`. Importing the (lightweight) package here, before the function is
# defined, makes that binding happen now, so `medtune.explain` stays the function; `from medtune.explain import
# compute_cams` still reaches the package through sys.modules.
import_module("medtune.explain")


def explain(
    run: str | os.PathLike, inputs: list[str | os.PathLike], out: str | os.PathLike, **kwargs: Any
) -> pd.DataFrame:
    """Grad-CAM maps for image files, folders, globs or CSVs, written to `out` (`medtune.engine.explain.explain`)."""
    from medtune.engine.explain import explain as run_explanation

    return run_explanation(run, inputs, out, **kwargs)


__all__ = ["__version__", "audit", "evaluate", "explain", "predict", "read_image", "register_backbone", "train"]
