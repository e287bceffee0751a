"""``medtune.segment``: segmenters from Python, as ``medtune segment train|evaluate|predict`` on the command line.

A namespace rather than three ``segment_*`` names: ``medtune.segment.train`` reads as the command does, and its
``train``, ``evaluate`` and ``predict`` take the same keywords as the classifier's functions of the same names.

>>> result = medtune.segment.train(data="lungseg/images", masks="lungseg/masks", epochs=5)  # doctest: +SKIP
>>> medtune.segment.predict(result.path, "new_xrays/", "masks/", postprocess="lungs")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from medtune.api.outcomes import EvaluationResult, TrainingResult
    from medtune.config import Config


def train(
    config: Config | None = None, out: str | os.PathLike | None = None, *, progress: bool = True, **keys: Any
) -> TrainingResult:
    """Train a segmenter on images and their masks and score it on the test split (``medtune segment train``): Dice,
    IoU and HD95 with intervals. The same call on an interrupted run resumes it.

    Args:
        config: a `medtune.config.Config`; `keys` are applied on top of it.
        out: the run directory (default ``runs/<data>-<arch>-<encoder>``).
        progress: progress bars on a terminal or in a notebook.
        **keys: configuration keys: ``data=`` (the images), ``masks=`` (their masks, required), ``arch=``,
            ``backbone=`` (the encoder), ``loss=``, ``epochs=``... (``medtune keys --task segment``).

    Returns:
        A `TrainingResult` of the segmentation run.

    >>> medtune.segment.train(data="lungseg/images", masks="lungseg/masks", epochs=5).to_frame()  # doctest: +SKIP
    """
    from medtune.api.making import train as train_run

    return train_run(config, out, progress=progress, **{**keys, "task": "segment"})


def evaluate(
    run: str | os.PathLike, data: str | os.PathLike | None = None, *, masks: str | os.PathLike | None = None,
    split: str | None = None, out: str | os.PathLike | None = None, progress: bool = True,
) -> EvaluationResult:  # fmt: skip
    """Score a segmenter: per-image Dice, IoU and 95% Hausdorff distance, the means with 95% bootstrap intervals
    (``medtune segment evaluate``).

    Args:
        run: a run directory of `train`.
        data: other images to evaluate on (None: the run's own split).
        masks: the masks of `data`, named like the images.
        split: ``train``, ``val``, ``test`` or ``all`` (default: ``test``).
        out: the folder for ``metrics.json`` and ``predictions.csv`` (per image).
        progress: a progress bar while an image store is built.

    Returns:
        An `EvaluationResult`; ``.to_frame()`` has ``dice``, ``iou`` and ``hd95`` with their intervals.

    >>> medtune.segment.evaluate("runs/lungs").to_frame()  # doctest: +SKIP
    """
    from medtune.api.outcomes import EvaluationResult
    from medtune.apply.segment_eval import evaluate_segmenter

    found = evaluate_segmenter(run, data, split, masks, out, progress)
    return EvaluationResult(found.metrics, found.out)


def predict(
    run: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], out: str | os.PathLike, *,
    postprocess: str | None = None, tta: bool | None = None, batch_size: int = 16, progress: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Write a mask per input image at the image's own resolution (``medtune segment predict``); unreadable inputs
    are reported with their error, the others written.

    Args:
        run: a run directory of `train`.
        inputs: image files, folders (searched recursively), glob patterns or CSV/TSV files of paths.
        out: the folder for the masks (``NAME.png``, 0 and 255).
        postprocess: ``none``, or ``lungs``: keep the two largest regions and fill holes (default: the run's).
        tta: average with the mirrored image (default: the run's ``tta``).
        batch_size: images per forward pass.
        progress: a progress bar on a terminal or in a notebook.

    Returns:
        One row per input: ``file``, ``mask``, ``height``, ``width``, ``area`` (the mask's share) and ``error``.

    >>> medtune.segment.predict("runs/lungs", "new_xrays/", "masks/", postprocess="lungs")  # doctest: +SKIP
    """
    from medtune._progress import create_progress
    from medtune.apply.predict import collect_inputs
    from medtune.apply.segment_predict import predict_masks

    paths = collect_inputs([inputs] if isinstance(inputs, str | os.PathLike) else inputs)
    with create_progress(progress) as bar:
        task = bar.add_task(f"segmenting {len(paths)} image(s)", total=len(paths))
        return predict_masks(run, list(paths), out, postprocess, tta, batch_size, lambda n: bar.advance(task, n))
