"""``medtune probe``: classical baselines on frozen features (MedMNIST+: a linear probe or kNN on frozen
features is a strong baseline), each written as a run directory that ``report`` reads.

Features come from `medtune.features.embed` (cached). The split is the one training would make (seeded, grouped by
patient, or the data's own). Hyper-parameters are chosen by scikit-learn's ``GridSearchCV`` on the training and
validation images (3 folds, grouped by patient when there are groups, ROC AUC); the best model, refitted on them,
is scored on the test split with the same metrics and bootstrap intervals as ``medtune evaluate``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medtune._io import write_json
from medtune.config import Config, load_config
from medtune.errors import ConfigError, DataError
from medtune.runs import Run, load_table

#: The probes ``--method`` names, each a scikit-learn estimator and the grid searched for it.
METHODS = ("logreg", "knn", "svm")


def create_probe(method: str) -> tuple[Any, dict[str, list]]:
    """A standardised scikit-learn classifier and its hyper-parameter grid.

    Raises:
        ConfigError: an unknown method.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if method == "logreg":
        model, grid = LogisticRegression(max_iter=3000), {"logisticregression__C": [0.001, 0.01, 0.1, 1.0]}
    elif method == "knn":
        model, grid = KNeighborsClassifier(), {"kneighborsclassifier__n_neighbors": [5, 11, 21]}
    elif (
        method == "svm"
    ):  # probabilities by calibration on internal folds (scikit-learn's replacement for probability=)
        model = CalibratedClassifierCV(SVC(random_state=0), ensemble=False)
        grid = {"calibratedclassifiercv__estimator__C": [0.1, 1.0, 10.0]}
    else:
        raise ConfigError(f"--method {method} is unknown; expected one of {', '.join(METHODS)} or all")
    return make_pipeline(StandardScaler(), model), grid


def _search(method: str, features: np.ndarray, targets: np.ndarray, groups: np.ndarray | None, seed: int) -> Any:
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold, StratifiedKFold

    model, grid = create_probe(method)
    folds = (StratifiedGroupKFold(3, shuffle=True, random_state=seed) if groups is not None
             else StratifiedKFold(3, shuffle=True, random_state=seed))  # fmt: skip
    scoring = "roc_auc" if targets.max() == 1 else "roc_auc_ovr"
    search = GridSearchCV(model, grid, scoring=scoring, cv=folds, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        search.fit(features, targets, groups=groups)
    return search


def probe(
    data: str | os.PathLike,
    source: str = "tf_efficientnet_lite0",
    methods: Sequence[str] = ("logreg",),
    keys: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[Run]:
    """Fit each probe on the training split's features and score it on the test split.

    Args:
        data: labelled data (folder, CSV/TSV, .npz), read with the keys in `keys`.
        source: a backbone name or a trained run whose backbone gives the features.
        methods: ``logreg``, ``knn``, ``svm`` (``all``: the three).
        keys: reading and splitting keys, typed (``{"label": ..., "group": ..., "seed": 0}``).
        out: the folder of the probe runs (default ``runs/``); each is ``<data>-<source>-<method>``.
        progress: progress bars on a terminal.

    Returns:
        The run directories written (``metrics.json``, ``predictions.csv``, ``split.csv``, ``probe.json``).
    """
    from medtune.apply.evaluate import write_evaluation
    from medtune.features.embed import embed
    from medtune.metrics.classification import compute_metrics
    from medtune.tasks.classify import predictions_frame

    methods = list(METHODS) if list(methods) == ["all"] else list(methods)
    for method in methods:
        create_probe(method)  # an unknown name fails before the features are computed
    keys = dict(keys or {})
    embedding = embed(source, data, keys, progress=progress)
    table = load_table(load_config(**{**keys, "data": str(data)}))
    if table.multilabel or len(table) != len(embedding.table):
        raise DataError(f"{data}: probes take single-label data whose images all have a label")
    features = np.asarray(embedding.features, dtype=np.float32)
    targets, frame = table.targets(), table.frame
    train = frame["split"].isin(["train", "val"]).to_numpy()  # the grid search folds the training images itself
    test = (frame["split"] == "test").to_numpy()
    groups = frame["group"].to_numpy()[train] if frame["group"].notna().all() else None
    config = load_config(**{**keys, "data": str(data)})
    runs = []
    for method in methods:
        started = time.perf_counter()
        search = _search(method, features[train], targets[train], groups, config.seed)
        probs = search.best_estimator_.predict_proba(features[test])
        metrics = compute_metrics(targets[test], probs, list(table.classes), seed=config.seed)
        metrics.update(split=["test"], probe=method, source=str(source), data=str(Path(data).resolve()))
        run = Run(Path(out or "runs") / f"{_name(config, source)}-{method}")
        run.path.mkdir(parents=True, exist_ok=True)
        part = table.with_frame(frame[test])
        write_evaluation(run.path, metrics, predictions_frame(part, table.classes, targets[test], probs))
        _write_facts(run, config, table, method, search, source, time.perf_counter() - started)
        runs.append(run)
    return runs


def _name(config: Config, source: str) -> str:
    """``<data>-<backbone or run name>``, as training names runs."""
    from medtune.runs.run import default_run_name

    return default_run_name(config.model_copy(update={"backbone": Path(str(source)).name, "name": None}))


def _write_facts(run: Run, config: Config, table: Any, method: str, search: Any, source: str, seconds: float) -> None:
    from medtune.data.split import save_split

    run.write_config(config)
    save_split(table, run.split_file)
    params = {k.split("__")[-1]: v for k, v in search.best_params_.items()}
    write_json(run.path / "probe.json", {
        "method": method, "source": str(source), "params": params, "cv_auc": round(float(search.best_score_), 6),
        "seconds": round(seconds, 2),
    })  # fmt: skip
