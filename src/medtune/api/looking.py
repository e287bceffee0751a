"""Looking at data and features from Python: `summary` (``medtune data summary``), `audit` (``medtune data
audit``), `embed`, `probe`, `index` and `similar`.

The commands on frozen features take ``DATA`` first, then the run whose network gives the features (else the
``backbone=`` key, else `DEFAULT_BACKBONE`), then the keys that say how the data is read, as on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from medtune.api.using import reading_keys

if TYPE_CHECKING:
    import pandas as pd

    from medtune.data.summary import Summary
    from medtune.features.audit import Audit
    from medtune.features.embed import Embedding
    from medtune.features.similar import SearchIndex
    from medtune.runs import Run

#: The feature network when neither a run nor ``backbone=`` is given.
DEFAULT_BACKBONE = "tf_efficientnet_lite0"
#: The checks `audit` runs by default.
AUDIT_CHECKS = ("duplicates", "labels", "outliers")


def feature_source(run: str | os.PathLike | None, keys: dict[str, Any]) -> str:
    """The run, else the ``backbone=`` key, else `DEFAULT_BACKBONE`."""
    return str(run) if run is not None else str(keys.get("backbone") or DEFAULT_BACKBONE)


def summary(data: str | os.PathLike, *, progress: bool = True, **keys: Any) -> Summary:
    """Counts per class and split, image sizes, DICOM headers, problems, and one sample walked through
    preprocessing (``medtune data summary``). A folder without class folders is summarised as unlabelled images.

    Args:
        data: a folder of class folders (or of images), a CSV/TSV manifest or an ``.npz``.
        progress: a progress bar while the images are scanned.
        **keys: configuration keys: ``label=``, ``group=``, ``image_size=``...

    Returns:
        The `Summary`: ``.ok`` (False when the data cannot be used as it is), ``.problems`` (each with its fix),
        ``.table``, ``.size_table()``, ``.steps`` (the sample's walk) and ``.to_dict()``.

    >>> medtune.summary("xrays/", group="patient_id").problems  # doctest: +SKIP
    """
    from medtune._progress import create_progress
    from medtune.config import load_config
    from medtune.data.summary import summarize
    from medtune.runs import prepare_dataset

    dataset = prepare_dataset(load_config(**{**keys, "data": str(data)}), labelled=None, store=False)
    with create_progress(progress) as bar:
        task = bar.add_task("scanning images", total=len(dataset.table))
        return summarize(dataset.table, dataset.config.sections.data, dataset.resolved.preprocessing,
                         on_progress=lambda n: bar.advance(task, n))  # fmt: skip


def audit(
    data: str | os.PathLike, run: str | os.PathLike | None = None, *, out: str | os.PathLike | None = None,
    fix_split: bool = False, near: float = 0.13, checks: Sequence[str] = AUDIT_CHECKS, progress: bool = True,
    **keys: Any,
) -> Audit:  # fmt: skip
    """Duplicates (leakage across splits first), likely label errors and outliers, from frozen features (``medtune
    data audit``); writes CSV files, ``audit.json`` and the page ``audit.html``.

    Args:
        data: a folder, CSV/TSV manifest or ``.npz``.
        run: a run whose network gives the features (else ``backbone=``, else `DEFAULT_BACKBONE`).
        out: the audit folder (default ``runs/<data>-audit``).
        fix_split: write ``split.csv`` with each duplicate group in one split.
        near: the near-duplicate threshold (times the median neighbour distance).
        checks: what to look for: ``duplicates``, ``labels``, ``outliers`` (label checks are slowest).
        progress: progress bars on a terminal or in a notebook.
        **keys: how to read `data` (``label=``, ``group=``, ``image_size=``...), ``backbone=`` and ``seed=``.

    Returns:
        The `Audit`: ``.counts``, ``.duplicates``, ``.label_issues``, ``.outliers``, ``.folder``, ``.split_file``.

    >>> medtune.audit("xrays/", checks=["duplicates"]).counts  # doctest: +SKIP
    """
    from medtune.features.audit import audit_with_page

    keys = reading_keys(keys, "medtune.audit", ("backbone", "seed"))
    return audit_with_page(data, feature_source(run, keys), keys, out, fix_split, near, list(checks), progress)


def embed(
    data: str | os.PathLike, run: str | os.PathLike | None = None, *, batch_size: int = 64, progress: bool = True,
    **keys: Any,
) -> Embedding:  # fmt: skip
    """The pooled features of every image of `data`, computed once and read back from the cache after (``medtune
    embed``).

    Args:
        data: a folder, CSV/TSV manifest or ``.npz``.
        run: a run whose network gives the features (else ``backbone=``, else `DEFAULT_BACKBONE`).
        batch_size: images per forward pass.
        progress: progress bars on a terminal or in a notebook.
        **keys: how to read `data` (``label=``, ``image_size=``...) and ``backbone=``.

    Returns:
        The `Embedding`: ``.features`` ``(N, D)`` float16, ``.table`` (the images, in feature order), ``.path``.

    >>> medtune.embed("xrays/", backbone="tf_efficientnet_lite0").features.shape  # doctest: +SKIP
    """
    from medtune.features.embed import embed as run_embedding

    keys = reading_keys(keys, "medtune.embed", ("backbone",))
    return run_embedding(feature_source(run, keys), data, keys, batch_size, progress)


def probe(
    data: str | os.PathLike, run: str | os.PathLike | None = None, *, method: str | Sequence[str] = "logreg",
    out: str | os.PathLike | None = None, study: str | None = None, storage: str | None = None, progress: bool = True,
    **keys: Any,
) -> list[Run]:  # fmt: skip
    """Fit probes (logistic regression, kNN, SVM) on frozen features, each scored on the test split as a run
    directory (``medtune probe``); hyper-parameters by cross-validation on the training images, grouped by patient.

    Args:
        data: a folder, CSV/TSV manifest or ``.npz``.
        run: a run whose network gives the features (else ``backbone=``, else `DEFAULT_BACKBONE`).
        method: ``logreg``, ``knn``, ``svm``, ``all``, or several (a list, or comma-separated).
        out: the folder of the probe runs (default ``runs/``).
        study: also add the probes to this leaderboard study.
        storage: the queue's database URL (with `study`; default ``runs/queue.db``).
        progress: progress bars on a terminal or in a notebook.
        **keys: how to read `data` (``label=``, ``group=``, ``image_size=``...) and ``backbone=``.

    Returns:
        One `medtune.runs.Run` per probe; ``medtune.evaluate(run.path)`` or ``medtune.report(run.path)`` take them.

    >>> [r.path.name for r in medtune.probe("xrays/", method="logreg,knn")]  # doctest: +SKIP
    """
    from medtune.features.probe import probe as run_probe

    keys = reading_keys(keys, "medtune.probe", ("backbone",))
    methods = [m.strip() for part in ([method] if isinstance(method, str) else method) for m in part.split(",")]
    runs = run_probe(data, feature_source(run, keys), [m for m in methods if m], keys, out, progress)
    if study or storage:
        from medtune.experiments.probe_runs import record_probes
        from medtune.experiments.storage import QueueStorage

        record_probes(QueueStorage(storage), runs, study or "probes")
    return runs


def index(
    data: str | os.PathLike, run: str | os.PathLike | None = None, *, out: str | os.PathLike | None = None,
    progress: bool = True, **keys: Any,
) -> SearchIndex:  # fmt: skip
    """Embed every image of `data` and save a FAISS index of their features for `similar` (``medtune index``).

    Args:
        data: the images to search: a folder, CSV/TSV manifest or ``.npz``.
        run: a run whose network gives the features (else ``backbone=``, else `DEFAULT_BACKBONE`).
        out: the index folder (default ``RUN/index`` for a run, else ``runs/index-<data>``).
        progress: progress bars on a terminal or in a notebook.
        **keys: how to read `data` (``label=``, ``image_size=``...) and ``backbone=``.

    Returns:
        The `SearchIndex`: ``.path``, ``.images`` (one row per indexed image) and ``.meta``.

    >>> medtune.index("xrays/", "runs/demo").path  # doctest: +SKIP
    PosixPath('runs/demo/index')
    """
    from medtune.features.similar import build_index

    keys = reading_keys(keys, "medtune.index", ("backbone",))
    return build_index(feature_source(run, keys), data, keys, out, progress)


def similar(
    index: str | os.PathLike | SearchIndex, queries: str | os.PathLike | Iterable[str | os.PathLike], *, k: int = 8
) -> pd.DataFrame:
    """The `k` most similar indexed images of each query, by the cosine similarity of their features (``medtune
    similar``).

    Args:
        index: an index folder (`index`), a run with one (``RUN/index``), or a `SearchIndex`.
        queries: query image files.
        k: neighbours per query.

    Returns:
        One row per query and neighbour: ``query``, ``rank``, ``similarity``, ``id``, ``path``, ``label``,
        ``split`` (a query that cannot be read: one row with its ``error``).

    >>> medtune.similar("runs/demo", ["new.png"], k=4)  # doctest: +SKIP
    """
    from medtune.features.similar import SearchIndex, load_index
    from medtune.features.similar import similar as find_similar

    found = index if isinstance(index, SearchIndex) else load_index(index)
    given = [queries] if isinstance(queries, str | os.PathLike) else queries
    return find_similar(found, [str(q) for q in given], k)
