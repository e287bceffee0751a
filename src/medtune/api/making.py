"""Making runs from Python: `train`, `ensemble`, `crossdomain`, `sweep` and `tune`, the commands of the same names.

Their keyword arguments are the configuration keys of the command line (``epochs=3``, ``backbone=...``; every key:
``medtune keys``), validated by `medtune.config.Config`; the few options of a command that are not keys
(``out=``, ``study=``, ``storage=``, ``search=``...) are named as on the command line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from medtune.errors import ConfigError

if TYPE_CHECKING:
    from medtune.api.outcomes import TrainingResult
    from medtune.config import Config
    from medtune.experiments.crossdomain import CrossDomainResult
    from medtune.experiments.tune import TuneResult


def train(
    config: Config | None = None, out: str | os.PathLike | None = None, *, progress: bool = True,
    callbacks: Sequence[Any] = (), log_prefix: str = "", **keys: Any,
) -> TrainingResult:  # fmt: skip
    """Train a classifier (or, with ``task=segment``, a segmenter), score it on the test split and write its report
    page (``medtune train``). The same call on an interrupted run resumes it; a finished run is never overwritten.

    Args:
        config: a `medtune.config.Config` (`medtune.config.load_config`); `keys` are applied on top of it.
        out: the run directory (default ``runs/<data>-<backbone>``).
        progress: progress bars on a terminal or in a notebook.
        callbacks: Lightning callbacks added to the trainer.
        log_prefix: put before each line the training prints (a worker's name).
        **keys: configuration keys, as ``key=value`` on the command line: ``data=`` (a folder, CSV/TSV manifest or
            ``.npz``), ``epochs=``, ``backbone=``, ``image_size=``, ``lr=``... (every key: ``medtune keys``).

    Returns:
        A `TrainingResult`: ``.run``, ``.metrics`` (``metrics.json``), ``.report``, ``.to_frame()``, ``.history()``.

    Raises:
        ConfigError: an unknown key (with the closest names) or a value out of range.

    >>> result = medtune.train(data="xrays/", epochs=3, image_size=64)  # doctest: +SKIP
    >>> result.to_frame()  # doctest: +SKIP
    """
    from medtune.api.outcomes import TrainingResult
    from medtune.config import load_config
    from medtune.fitting.train import train_and_report

    if config is not None and keys:
        config = load_config(overrides=config.model_dump(exclude_unset=True) | keys)
    config = config if config is not None else load_config(**keys)
    result = train_and_report(config, out, progress=progress, callbacks=callbacks, log_prefix=log_prefix)
    return TrainingResult.of(result)


def ensemble(runs: Sequence[str | os.PathLike], out: str | os.PathLike, *, report: bool = True) -> TrainingResult:
    """Average the class probabilities of trained runs as one run, scored on their test split (``medtune
    ensemble``). The folder is a run: evaluate, predict, explain, report, export and serve take it.

    Args:
        runs: two or more finished classifier runs with the same classes, data, working size and split (train
            them with ``split_file=FIRST_RUN/split.csv`` unless the data gives its splits).
        out: the ensemble's run directory (new or empty).
        report: also write its ``report.html``.

    Returns:
        A `TrainingResult` of the ensemble's run (``resumed`` is False; ``report`` its page).

    >>> medtune.ensemble(["runs/a", "runs/b"], "runs/a+b").to_frame()  # doctest: +SKIP
    """
    from medtune.api.outcomes import TrainingResult
    from medtune.experiments.ensemble import create_ensemble

    made = create_ensemble(list(runs), out)
    page, error = None, None
    if report:
        from medtune.reports import write_run_report

        page, error = write_run_report(made.run.path)
    return TrainingResult(made.run, made.metrics, False, page, error)


def crossdomain(
    data: Sequence[str | os.PathLike], *, out: str | os.PathLike = "runs/crossdomain",
    label_map: str | os.PathLike | None = None, workers: int = 1, storage: str | None = None, **keys: Any,
) -> CrossDomainResult:  # fmt: skip
    """Train on each dataset and test on every other: the cross-domain matrix (``medtune crossdomain``). Each run
    keeps its own split (by patient where there are groups) and learns the classes the datasets share; running it
    again resumes.

    Args:
        data: two or more datasets, or one table with ``domain=COLUMN`` in `keys`.
        out: the folder for the runs, ``matrix.csv``/``.json`` and the page.
        label_map: a YAML file of ``source label: target label`` (null drops a label).
        workers: worker processes training the runs.
        storage: the queue's database URL (default: SQLite in `out`).
        **keys: configuration keys for every run (``epochs=``, ``image_size=``, ``label=``...).

    Returns:
        The `CrossDomainResult`: ``.matrix`` (one row per train x test pair: AUC, accuracy, balanced accuracy with
        intervals), ``.classes``, ``.out`` and ``.page``.

    >>> medtune.crossdomain(["site_a.csv", "site_b.csv"], epochs=3).matrix  # doctest: +SKIP
    """
    from pathlib import Path

    from medtune.experiments.crossdomain import run_crossdomain

    datasets = [str(d) for d in ([data] if isinstance(data, str | os.PathLike) else data)]
    return run_crossdomain(datasets, keys, out, Path(label_map) if label_map else None, workers, storage)


#: A swept range: ``LOW..HIGH`` or ``LOW..HIGH:log`` with numbers.
RANGE = re.compile(r"^[-+0-9.eE]+\.\.[-+0-9.eE]+(:log)?$")


class QueuedSweep(NamedTuple):
    """What `sweep` queued: the study, its experiments' ids and the queue's database."""

    study: str
    ids: list[int]
    storage: str


def _swept(keys: Mapping[str, Any], task: str) -> tuple[dict[str, Any], list[Any]]:
    """Fixed values and swept dimensions: a list or tuple is swept (but for keys that hold lists), a text
    ``LOW..HIGH[:log]`` is a range (`medtune.experiments.queue.parse_sweep`)."""
    from medtune.experiments.queue import LIST_KEYS, parse_sweep

    fixed, swept = {}, []
    for key, value in keys.items():
        if isinstance(value, list | tuple) and key not in LIST_KEYS:
            texts = [str(v) for v in value]
            if any("," in t for t in texts):
                raise ConfigError(f"{key}={list(value)}: a swept value cannot hold a comma")
            swept.append(f"{key}={','.join(texts)}" + ("," if len(texts) == 1 else ""))
        elif isinstance(value, str) and RANGE.match(value):
            swept.append(f"{key}={value}")
        else:
            fixed[key] = value
    _, dims = parse_sweep(swept, task)
    return fixed, dims


def sweep(
    data: str | os.PathLike | None = None, *, search: int | None = None, study: str | None = None,
    storage: str | None = None, **keys: Any,
) -> QueuedSweep:  # fmt: skip
    """Queue every combination of the swept values (a grid), or `search` trials of a model-based search (``medtune
    sweep``); run them with ``medtune queue run --workers N``, rank them with ``medtune leaderboard``.

    Args:
        data: the data (or ``data=`` in `keys`).
        search: queue this many trials of Optuna's TPE search (with pruning) instead of a grid.
        study: the study's name (default ``sweep-1``, ``sweep-2``...).
        storage: the queue's database URL (default ``runs/queue.db``).
        **keys: configuration keys: a list is swept (``optimizer=["adamw", "sgd"]``), ``"LOW..HIGH"`` or
            ``"LOW..HIGH:log"`` is a range for `search`, anything else is fixed (``epochs=6``).

    Returns:
        The `QueuedSweep`: the study's name, the queued ids and the database.

    >>> medtune.sweep("data.npz", epochs=6, optimizer=["adamw", "sgd"], lr=[1e-3, 1e-2])  # doctest: +SKIP
    QueuedSweep(study='sweep-1', ids=[1, 2, 3, 4], storage='sqlite:///runs/queue.db')
    """
    from medtune.experiments import QueueStorage, add_sweep

    if data is not None:
        keys = {**keys, "data": str(data)}
    fixed, dims = _swept(keys, str(keys.get("task", "classify")))
    db = QueueStorage(storage)
    name, ids = add_sweep(db, fixed, dims, study, search)
    return QueuedSweep(name, ids, db.url)


def tune(
    data: str | os.PathLike, *, budget: str | float = "30m", workers: int = 1, study: str | None = None,
    max_epochs: int = 8, storage: str | None = None, **keys: Any,
) -> TuneResult:  # fmt: skip
    """Search backbone, size, learning rate, weight decay, smoothing, augmentation and freezing for `budget`, then
    make the best trial (or the mean of the best) one run scored once on the test split (``medtune tune``).

    Args:
        data: the data (a folder, CSV/TSV manifest or ``.npz``).
        budget: wall-clock time for all of it: ``30m``, ``2h``, ``1h30m`` or seconds.
        workers: worker processes here.
        study: the study's name (default ``tune-<data>``); an existing one continues with the budget left.
        max_epochs: the epochs of a trial that is never stopped (Hyperband's top rung).
        storage: the queue's database URL (default ``runs/queue.db``).
        **keys: configuration keys fixed for every trial (not searched): ``image_size=64``, ``label=``...

    Returns:
        The `TuneResult`: ``.run`` (a run directory), ``.metrics``, ``.summary`` (the trials and the choice).

    >>> medtune.tune("xrays/", budget="20m").run  # doctest: +SKIP
    """
    from medtune.experiments.tune import tune as run_tune

    return run_tune(data, keys, budget, workers, storage, study, max_epochs)
