"""Using a trained run from Python: `evaluate`, `predict`, `explain`, `report`, `export` and `serve`, the commands of
the same names with one keyword per command-line spelling (``masks=``, ``tta=``, ``path=``, ``method=``, ``out=``).

Each is a short recipe over the library function the command calls; imports happen inside, so ``import medtune``
stays light. `reading_keys` checks the data keys a command reads, as ``key=value`` on the command line is checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medtune.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from medtune.api.outcomes import EvaluationResult, Predictions
    from medtune.deploy.export import Export


def reading_keys(keys: Mapping[str, Any], command: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """`keys` checked as the data keys (``label=``, ``path=``, ``masks=``...) plus `extra`, typed by the schema.

    Raises:
        ConfigError: a key the command does not read (named, with the keys it reads), or a value out of range.
    """
    from medtune.config import READING_KEYS, check_keys

    return check_keys(keys, (*READING_KEYS, *extra), command)


def evaluate(
    run: str | os.PathLike, data: str | os.PathLike | None = None, *, split: str | None = None,
    tta: bool | None = None, out: str | os.PathLike | None = None, calibration: str | None = None,
    progress: bool = True, **keys: Any,
) -> EvaluationResult:  # fmt: skip
    """Score a run with 95% bootstrap intervals, on its test split or on other labelled data (``medtune evaluate``).

    Labels of other data are matched to the run's classes by name; images whose label matches none are left out
    and reported in ``metrics["warnings"]``.

    Args:
        run: a run directory, or an exported ``model.onnx`` (with `data`).
        data: other labelled data (a folder, CSV/TSV manifest or ``.npz``); None: the run's own split.
        split: ``train``, ``val``, ``test`` or ``all`` (default: ``test``, or all of other data without one).
        tta: average with the horizontal mirror (default: the run's ``tta``).
        out: the folder for ``metrics.json`` and ``predictions.csv`` (default: the run, or
            ``RUN/evaluations/<data>-<split>``).
        calibration: a calibration kept in the run: ``metrics["calibrated"]`` compares decisions before and after.
        progress: progress bars on a terminal or in a notebook.
        **keys: how to read `data`, as on the command line: ``label=``, ``path=``, ``group=``, ``masks=``...

    Returns:
        An `EvaluationResult`: ``.metrics`` (``metrics.json``), ``.out``, ``.to_frame()``, ``.per_class()``.

    >>> medtune.evaluate("runs/demo").to_frame()  # doctest: +SKIP
    """
    from medtune.api.outcomes import EvaluationResult
    from medtune.apply.evaluate import evaluate as run_evaluation

    found = run_evaluation(run, data, split, reading_keys(keys, "medtune.evaluate"), tta, out, progress, calibration)
    return EvaluationResult(found.metrics, found.out)


def predict(
    run: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], *, tta: bool | None = None,
    batch_size: int = 64, path: str | None = None, masks: str | os.PathLike | None = None, outside_paths: bool = False,
    engine: str = "auto", calibration: str | None = None, reject: bool = False, workers: int | None = None,
    progress: bool = True,
) -> Predictions:  # fmt: skip
    """Predict image files (``medtune predict``); unreadable files come back with their error.

    For numpy arrays and PIL images, and to keep the model loaded between calls, use `medtune.load`.

    Args:
        run: a run directory, or a ``model.onnx`` written by ``medtune export``.
        inputs: image files, folders (searched recursively), glob patterns or CSV/TSV files of paths.
        tta: average with the horizontal mirror (default: the run's ``tta``).
        batch_size: images per forward pass.
        path: the path column of CSV inputs (auto-detected when None).
        masks: a folder of masks named like the images, for a run trained with ``mask=...``.
        outside_paths: let CSV inputs name images outside their folder with ``..``.
        engine: ``auto`` (the run's exported model when current), ``torch`` or ``onnx``.
        calibration: a calibration kept in the run: conformal sets, prevalence or thresholds.
        reject: withhold the answers of images the run's guard flags.
        workers: decoding processes (default: the run's ``workers``).
        progress: a progress bar on a terminal or in a notebook.

    Returns:
        `Predictions`: one `Prediction` per image; ``.to_frame()`` is the table ``medtune predict`` writes.

    >>> medtune.predict("runs/demo", "new_xrays/").to_frame().head()  # doctest: +SKIP
    """
    from medtune.api.outcomes import Predictions
    from medtune.apply.predict import predict as run_prediction

    given = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    frame = run_prediction(run, given, tta, batch_size, workers, path, progress, masks, engine, outside_paths,
                           calibration, reject)  # fmt: skip
    classes = tuple(c.removeprefix("prob_") for c in frame.columns if c.startswith("prob_"))
    return Predictions(frame, classes, str(run))


def explain(
    run: str | os.PathLike, inputs: str | os.PathLike | Iterable[str | os.PathLike], out: str | os.PathLike, *,
    method: str = "gradcam", target: str = "predicted", layer: str | None = None,
    masks: str | os.PathLike | None = None, batch_size: int | None = None, progress: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """Class activation maps of images, as pictures and arrays in `out` (``medtune explain``).

    Args:
        run: a run directory.
        inputs: image files, folders, glob patterns or CSV/TSV files of paths.
        out: the folder for the maps (PNG and ``.npy``) and ``explanations.csv``.
        method: ``gradcam``, ``gradcam++``, ``scorecam``, ``eigencam``, ``hirescam`` or ``layercam``.
        target: ``predicted`` (each image's top class) or a class name of the run.
        layer: the backbone module to explain (default: the last feature layer).
        masks: masks named like the images, or a segmentation run: adds each map's energy inside its mask.
        batch_size: images per pass (default: 4 on the CPU, 16 on a GPU).
        progress: a progress bar on a terminal or in a notebook.

    Returns:
        One row per image (``explanations.csv``): file, class explained, its probability, map files, error.

    >>> medtune.explain("runs/demo", "new_xrays/", "cams/", method="gradcam++")  # doctest: +SKIP
    """
    from medtune.apply.explain import explain as run_explanation

    given = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    return run_explanation(run, given, out, method, target, layer, masks, batch_size, progress)


def report(
    run: str | os.PathLike | Sequence[str | os.PathLike], *, out: str | os.PathLike | None = None,
    mistakes: int = 12, method: str = "gradcam", layer: str | None = None, masks: str | os.PathLike | None = None,
) -> Path:  # fmt: skip
    """Write a run's report page, or a comparison page of several runs (``medtune report``): one HTML file that
    needs no network, with a PNG per plot beside it.

    Args:
        run: a run directory, or a list of them (each gets its page, then a comparison page is written).
        out: the page (default ``RUN/report.html``; for several runs, ``comparison.html`` beside them).
        mistakes: how many of the most confident mistakes to show with their maps (0: none).
        method: the class activation map of the mistakes (see `explain`).
        layer: the backbone layer of the maps (default: chosen automatically).
        masks: masks named like the images, or a segmentation run: the share of each map inside its mask.

    Returns:
        The page written (for several runs: the comparison page).

    >>> medtune.report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')
    """
    from medtune.reports import create_comparison, create_report

    runs = [run] if isinstance(run, str | os.PathLike) else list(run)
    if not runs:
        raise ConfigError("give one or more run directories to report on")
    pages = [create_report(r, out if len(runs) == 1 else None, mistakes, method, masks, layer) for r in runs]
    return pages[0] if len(runs) == 1 else create_comparison(runs, out)


def export(
    run: str | os.PathLike | None = None, *, out: str | os.PathLike | None = None, format: str = "onnx",
    quantize: str | None = None, force: bool = False, exporter: str = "torchscript", best: bool = False,
    metric: str = "val_auc", study: str | Sequence[str] | None = None, storage: str | None = None,
) -> Export:  # fmt: skip
    """Export a run's network as one ONNX file with its preprocessing inside, checked against PyTorch on the run's
    test images (``medtune export``).

    Args:
        run: a run directory (or `best` instead).
        out: the model file (default ``RUN/export/model.onnx``).
        format: ``onnx``.
        quantize: ``int8``: also write ``MODEL.int8.onnx``, refused when its test AUC drops by more than 0.01.
        force: keep an int8 model that loses more than that.
        exporter: ``torchscript`` (PyTorch's tracing exporter) or ``dynamo`` (``torch.export``).
        best: export the leaderboard's top finished run instead of `run`.
        metric: with `best`: rank by this (``val_auc``...).
        study: with `best`: only this study (or these).
        storage: with `best`: the queue's database URL (default ``runs/queue.db``).

    Returns:
        The `Export`: ``.model`` (the ``.onnx`` file) and ``.parity`` (the check against PyTorch).

    >>> medtune.export("runs/demo").model  # doctest: +SKIP
    PosixPath('runs/demo/export/model.onnx')
    """
    from medtune.deploy.export import export as run_export

    if best == (run is not None):
        raise ConfigError("give a run to export, or best=True for the leaderboard's top run (not both)")
    if run is None:
        from medtune.experiments.leaderboard import best_run
        from medtune.experiments.storage import QueueStorage

        studies = [study] if isinstance(study, str) else list(study) if study else None
        run = best_run(QueueStorage(storage), metric, studies)
    return run_export(run, out, format, quantize=quantize, force=force, exporter=exporter)


def serve(
    model: str | os.PathLike, *, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 20.0,
    concurrency: int = 4, index: str | os.PathLike | None = None,
) -> None:  # fmt: skip
    """Serve a run or an exported model as a web page and a JSON API until interrupted (``medtune serve``): GET /
    (a page to drop images on), POST /predict, GET /model, GET /health and the OpenAPI page at /docs.

    Args:
        model: a run directory, or a ``model.onnx`` written by ``medtune export``.
        host: the address to bind (loopback unless told otherwise).
        port: the port to listen on.
        max_upload_mb: the largest request body; bigger ones get 413.
        concurrency: predictions at once; more requests get 503.
        index: an index for similar cases (default ``RUN/index`` when built).

    >>> medtune.serve("runs/demo", port=8080)  # doctest: +SKIP
    """
    from medtune.deploy.server import serve as run_server

    run_server(model, host, port, max_upload_mb=max_upload_mb, concurrency=concurrency, index=index)
