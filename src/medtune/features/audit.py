"""``medtune data audit``: what no metric shows about a dataset: duplicates (above all across splits: leakage),
likely label errors and outliers, ranked and thresholded, written as CSV files and a page.

- **Duplicates** by content (a hash of the decoded pixels: exact copies), by features (cleanlab's near-duplicate
  rule: a pair closer than ``near`` x the median nearest-neighbour distance, cosine) and by keypoints (each image's
  nearest neighbours checked with ORB and RANSAC: copies rotated, flipped, cropped or zoomed, `audit_match`).
  Pairs join into groups; a group that spans splits is leakage and is listed first.
- **Label errors**: cleanlab (confident learning) on out-of-sample probabilities: a logistic-regression
  probe on the features, its regularisation chosen by a grid search, predicting each image from folds it was not
  fitted on (grouped by patient when there are groups).
- **Outliers**: cleanlab's kNN outlier score against the whole set, and against the image's own class (an image
  unlike the rest of its class: a lateral view among frontals).

Each is computed as cleanlab's ``Datalab`` computes its ``near_duplicate``, ``outlier`` and ``label`` issues, with
plain cleanlab's functions over one kNN graph (`_knn_graph`), so the audit needs neither ``datasets`` nor ``pyarrow``.

Features come from `medtune.features.embed` (a backbone's ImageNet features, or a run's fine-tuned backbone), so an
audit after `medtune embed` or `medtune probe` on the same data computes no features again. ``fix_split`` writes a
``split.csv`` in which every duplicate group lies in one split; ``medtune train split_file=`` reads it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune._io import atomic_open, write_json
from medtune.config import load_config
from medtune.data.table import SPLITS, Table
from medtune.errors import ConfigError, DataError, MissingDependencyError
from medtune.runs import default_split

#: cleanlab's default near-duplicate threshold: a fraction of the median distance to the nearest neighbour.
NEAR_THRESHOLD = 0.13
#: Folds of the cross-validated probe whose out-of-sample probabilities cleanlab reads.
FOLDS = 5
#: Nearest neighbours of cleanlab's kNN graph (its default).
NEIGHBOURS = 10
#: cleanlab's default outlier threshold on features: flagged above Q3 + (1 / it - 1) x IQR of the mean kNN distance.
OUTLIER_THRESHOLD = 0.37037
DUPLICATE_COLUMNS = ["group", "kind", "across", "id", "path", "split", "label", "evidence", "distance"]
#: What an audit can look for (``checks=``).
CHECKS = ("duplicates", "labels", "outliers")


@dataclass
class Audit:
    """What `audit` found.

    Attributes:
        duplicates: one row per image in a duplicate group (``group``, ``kind`` exact/near, ``across`` splits,
            ``id``, ``path``, ``split``, ``label``, ``distance`` to its nearest member), leakage first.
        label_issues: images whose given label looks wrong (``given``, ``suggested``, ``quality``: cleanlab's label
            quality, lowest first), empty without labels.
        outliers: images unlike the whole set (``scope`` set), their class (``scope`` class) or both
            (``set+class``), lowest ``score`` first.
        counts: the number of each finding.
        folder: where the CSV files and ``audit.json`` are (``medtune.audit`` and the command add ``audit.html``).
        split_file: the fixed ``split.csv`` (with ``fix_split``), else None.
    """

    duplicates: pd.DataFrame
    label_issues: pd.DataFrame
    outliers: pd.DataFrame
    counts: dict[str, int]
    folder: Path
    table: Table
    split_file: Path | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def import_cleanlab() -> Any:
    import importlib.util

    if importlib.util.find_spec("cleanlab") is None:
        raise MissingDependencyError("medtune data audit needs cleanlab: pip install 'medtune[audit]' (or 'cleanlab')")
    import cleanlab

    return cleanlab


def audit_with_page(*args: Any, **kwargs: Any) -> Audit:
    """`audit`, then its page ``audit.html`` (`medtune.reports.audit.write_audit_page`)."""
    from medtune.reports.audit import write_audit_page

    found = audit(*args, **kwargs)
    write_audit_page(found)
    return found


def audit(
    data: str | os.PathLike,
    source: str = "tf_efficientnet_lite0",
    keys: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None,
    fix_split: bool = False,
    near: float = NEAR_THRESHOLD,
    checks: Sequence[str] = CHECKS,
    progress: bool = True,
) -> Audit:
    """Audit `data` with the features of `source` (a backbone name or a trained run).

    Args:
        data: a folder, CSV/TSV manifest or .npz, read with the keys in `keys`.
        source: the feature network: a backbone (ImageNet weights) or a run (its fine-tuned backbone).
        keys: reading and splitting keys, typed (``{"label": ..., "group": ..., "seed": 0}``); the split is
            the one ``medtune train`` with the same keys would use.
        out: the audit folder (default ``runs/<data>-audit``).
        fix_split: also write ``split.csv`` with every duplicate group in one split.
        near: the near-duplicate threshold, a fraction of the median nearest-neighbour distance.
        checks: what to look for, of `CHECKS` (label errors need the slowest step: the cross-validated probe).
        progress: progress bars on a terminal.

    Raises:
        ConfigError: an unknown check.
        DataError: the data cannot be read, or `fix_split` without labels or duplicate checks.
        MissingDependencyError: cleanlab is not installed.

    >>> found = audit("pneumoniamnist.npz")  # doctest: +SKIP
    >>> found.counts["exact_across"]  # doctest: +SKIP
    8
    """
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown or not checks:
        raise ConfigError(f"unknown audit check(s) {unknown}; choose from {', '.join(CHECKS)}")
    if fix_split and "duplicates" not in checks:
        raise ConfigError("--fix-split moves duplicate groups: keep the duplicates check")
    import_cleanlab()
    from medtune.features.embed import embed
    from medtune.features.similar import normalise

    keys = dict(keys or {})
    config = load_config(**{**keys, "data": str(data)})
    embedding = embed(source, data, keys, progress=progress)
    table = default_split(embedding.table, config)  # the images read once, split as training would split them
    if len(table) < NEIGHBOURS + 2:
        raise DataError(f"{data} has {len(table)} image(s); an audit compares each with {NEIGHBOURS} neighbours")
    features = normalise(np.asarray(embedding.features, dtype=np.float32))
    labelled = table.labelled and not table.multilabel and len(table.classes) > 1
    pred_probs = _out_of_sample_probs(features, table, config.seed) if labelled and "labels" in checks else None
    distances, neighbours = _knn_graph(features) if {"duplicates", "outliers"} & set(checks) else (None, None)
    duplicates = _empty(DUPLICATE_COLUMNS)
    if "duplicates" in checks:
        duplicates = _find_duplicates(table, features, config, _near_duplicates(distances, neighbours, near))
    label_issues = _empty(["id", "path", "split", "given", "suggested", "quality"])
    if pred_probs is not None:
        label_issues = _label_issues(table, pred_probs)
    outliers = _empty(["id", "path", "split", "label", "scope", "score"])
    if "outliers" in checks:
        outliers = _outliers(features, table, distances, labelled)
    folder = Path(out) if out else Path("runs") / f"{_stem(data)}-audit"
    found = Audit(duplicates, label_issues, outliers, _counts(duplicates, label_issues, outliers), folder, table)
    found.facts = {"data": str(Path(data).resolve()), "source": str(source), "near_threshold": near,
                   "folds": FOLDS, "neighbours": NEIGHBOURS, "images": len(table), "labelled": labelled,
                   "checks": list(checks)}  # fmt: skip
    if fix_split:
        found.split_file = write_fixed_split(table, duplicates, folder / "split.csv")
    _write(found)
    return found


def _stem(data: str | os.PathLike) -> str:
    path = Path(data)
    return path.stem if path.suffix else path.name


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype=object) for column in columns})


def _find_duplicates(table: Table, features: np.ndarray, config: Any, near_info: dict[str, Any]) -> pd.DataFrame:
    """Exact copies by pixel hash, near copies by cleanlab's feature rule and by keypoints (`audit_match`)."""
    from medtune.data.checks import scan_images
    from medtune.features.audit_match import MIN_SIDE, candidate_pairs, matched_pairs

    scan = scan_images(table, workers=min(2, os.cpu_count() or 1), window=config.window, frame=config.frame)
    hashes = scan["hash"].where(scan["error"].isna(), None)
    large = (scan[["height", "width"]].min(axis=1).fillna(0) >= MIN_SIDE).to_numpy()
    pairs = candidate_pairs(features)
    pairs = pairs[large[pairs[:, 0]] & large[pairs[:, 1]]]
    matched = matched_pairs(table, pairs, config.window, config.frame)
    return _duplicate_groups(table, hashes, near_info, matched)


def _out_of_sample_probs(features: np.ndarray, table: Table, seed: int) -> np.ndarray:
    """Probabilities of each image from a logistic-regression probe fitted on the folds that leave it out."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    from medtune.features.probe import _search

    targets = table.targets()
    counts = np.bincount(targets, minlength=len(table.classes))
    folds = int(min(FOLDS, counts[counts > 0].min()))
    if folds < 2:
        raise DataError(f"{table.source}: a class has a single image; label checks need two of each class")
    groups = table.frame["group"].to_numpy() if table.frame["group"].notna().all() else None
    splitter = (StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if groups is not None
                else StratifiedKFold(folds, shuffle=True, random_state=seed))  # fmt: skip
    model = _search("logreg", features, targets, groups, seed).best_estimator_
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return cross_val_predict(model, features, targets, groups=groups, cv=splitter, method="predict_proba")


def _knn_graph(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's kNN graph, as Datalab builds it: each image's `NEIGHBOURS` nearest others by cosine distance,
    nearest first, exact copies among them at distance 0 (``distances``, ``neighbours``: N x `NEIGHBOURS`)."""
    from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index

    graph, _ = create_knn_graph_and_index(features, n_neighbors=NEIGHBOURS, metric="cosine")
    n = graph.shape[0]
    return graph.data.reshape(n, -1), graph.indices.reshape(n, -1)


def _near_duplicates(distances: np.ndarray, neighbours: np.ndarray, threshold: float) -> dict[str, Any]:
    """cleanlab's near-duplicate issue (Datalab's ``near_duplicate`` info): each image's neighbours closer than
    `threshold` x the median nearest-neighbour distance, made mutual, and its nearest-neighbour distance."""
    from cleanlab.internal.constants import EPSILON

    nearest = distances[:, 0]
    median = max(np.median(nearest), EPSILON)  # as cleanlab: no zero threshold when most images have a copy
    close = distances < threshold * median
    sets = [[int(j) for j in neighbours[i][close[i]]] for i in range(len(neighbours))]
    for i in range(len(sets)):
        for j in list(sets[i]):
            if i not in sets[j]:
                sets[j].append(i)
    return {"near_duplicate_sets": sets, "distance_to_nearest_neighbor": nearest.astype(float)}


def _outlier_issues(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's kNN outlier issue (Datalab's ``outlier`` on features): the mean distance to the neighbours,
    flagged above Q3 + (1 / `OUTLIER_THRESHOLD` - 1) x IQR, scored exp(-mean / median mean) (``flagged``, ``score``)."""
    from cleanlab.internal.outlier import correct_precision_errors, transform_distances_to_scores
    from scipy.stats import iqr

    mean = distances.mean(axis=1)
    limit = float(np.percentile(mean, 75) + (1 / OUTLIER_THRESHOLD - 1) * iqr(mean))
    scale = float(max(np.median(mean), 100 * np.finfo(np.float64).eps))
    scores = transform_distances_to_scores(mean, t=1, scaling_factor=scale)
    return mean > limit, correct_precision_errors(scores, mean, "cosine")


def _rows(table: Table, positions: np.ndarray) -> pd.DataFrame:
    frame = table.frame.iloc[positions]
    return pd.DataFrame({"id": frame["id"].to_numpy(), "path": frame["path"].to_numpy(),
                         "split": frame["split"].fillna("").to_numpy(),
                         "label": frame["label"].fillna("").astype(str).to_numpy()})  # fmt: skip


def _duplicate_groups(
    table: Table, hashes: pd.Series, info: dict[str, Any], matched: dict[tuple[int, int], int]
) -> pd.DataFrame:
    """Join exact copies (same pixel hash), cleanlab's near-duplicate sets and keypoint-matched pairs into groups,
    leakage first; ``evidence`` says what joined each image."""
    parent = list(range(len(table)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[find(i)] = find(j)

    first: dict[str, int] = {}
    for i, digest in enumerate(hashes):
        if isinstance(digest, str):
            join(i, first.setdefault(digest, i))
    for i, near_set in enumerate(info.get("near_duplicate_sets", [])):
        for j in near_set:
            join(i, int(j))
    keypoints: dict[int, int] = {}
    for (i, j), count in matched.items():
        join(i, j)
        keypoints[i], keypoints[j] = max(keypoints.get(i, 0), count), max(keypoints.get(j, 0), count)
    roots = np.array([find(i) for i in range(len(table))])
    sizes = pd.Series(roots).value_counts()
    grouped = np.flatnonzero(sizes.reindex(roots).to_numpy() > 1)
    if not len(grouped):
        return _empty(DUPLICATE_COLUMNS)
    frame = _rows(table, grouped)
    frame.insert(0, "root", roots[grouped])
    frame["hash"] = hashes.to_numpy()[grouped]
    frame["distance"] = np.asarray(info["distance_to_nearest_neighbor"], dtype=float)[grouped]
    copies = frame.groupby(["root", "hash"], dropna=False)["id"].transform("size").to_numpy() > 1
    frame["evidence"] = [
        "identical pixels" if copy else (f"{keypoints[i]} keypoints agree" if i in keypoints else "features")
        for i, copy in zip(grouped, copies & frame["hash"].notna().to_numpy(), strict=True)
    ]
    by_root = frame.groupby("root")
    frame["kind"] = np.where(by_root["hash"].transform("nunique").to_numpy() == 1, "exact", "near")
    frame["across"] = by_root["split"].transform("nunique").to_numpy() > 1
    frame["order"] = by_root["distance"].transform("max")
    frame = frame.sort_values(["across", "kind", "order", "root"], ascending=[False, True, True, True])
    frame["group"] = pd.factorize(frame["root"])[0] + 1
    return frame[DUPLICATE_COLUMNS].reset_index(drop=True)


def _label_issues(table: Table, pred_probs: np.ndarray) -> pd.DataFrame:
    """cleanlab's label issues (Datalab's ``label`` with probabilities, as `CleanLearning` finds them): confident
    learning's pruning by noise rate flags, self-confidence scores, the most probable class suggested."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    targets = table.targets()
    flagged = np.flatnonzero(find_label_issues(targets, pred_probs, n_jobs=1))  # n_jobs: the same flags, no pool
    frame = _rows(table, flagged).rename(columns={"label": "given"})
    frame["suggested"] = [table.classes[int(c)] for c in pred_probs.argmax(axis=1)[flagged]]
    frame["quality"] = get_label_quality_scores(targets, pred_probs)[flagged]
    return frame.sort_values("quality").reset_index(drop=True)


def _outliers(features: np.ndarray, table: Table, distances: np.ndarray, labelled: bool) -> pd.DataFrame:
    """Outliers of the whole set (cleanlab's outlier issue on the whole kNN graph), then of each class on a graph
    of its own images."""
    parts = []
    flagged, scores = _outlier_issues(distances)
    hit = np.flatnonzero(flagged)
    parts.append(_rows(table, hit).assign(scope="set", score=scores[hit]))
    if labelled:
        targets = table.targets()
        for c in range(len(table.classes)):
            members = np.flatnonzero(targets == c)
            if len(members) < NEIGHBOURS + 2:
                continue
            flagged, scores = _outlier_issues(_knn_graph(features[members])[0])
            hit = np.flatnonzero(flagged)
            parts.append(_rows(table, members[hit]).assign(scope="class", score=scores[hit]))
    frame = pd.concat(parts, ignore_index=True).sort_values("score")
    scopes = frame.groupby("id", sort=False)["scope"].agg(lambda s: "+".join(sorted(set(s), reverse=True)))
    frame = frame.drop_duplicates("id").assign(scope=lambda f: f["id"].map(scopes))
    return frame.reset_index(drop=True)


def _counts(duplicates: pd.DataFrame, label_issues: pd.DataFrame, outliers: pd.DataFrame) -> dict[str, int]:
    groups = duplicates.drop_duplicates("group")
    count = {f"{kind}_{where}": int(((groups["kind"] == kind) & (groups["across"] == (where == "across"))).sum())
             for kind in ("exact", "near") for where in ("across", "within")}  # fmt: skip
    count["images_in_groups"] = len(duplicates)
    count["label_issues"] = len(label_issues)
    count["outliers_set"] = int(outliers["scope"].str.contains("set").sum())
    count["outliers_class"] = int(outliers["scope"].str.contains("class").sum())
    return count


def write_fixed_split(table: Table, duplicates: pd.DataFrame, path: Path) -> Path:
    """A ``split.csv`` with each duplicate group in one split: the split most of its images are in (ties: train,
    then val, then test), so no image is tested on while a copy of it is trained on.

    Raises:
        DataError: the data has no labels (it has no split to fix).
    """
    from medtune.data.split import save_split

    if not table.labelled or table.frame["split"].isna().any():
        raise DataError(f"{table.source}: --fix-split needs labelled data, whose split training would use")
    frame = table.frame.copy()
    rank = {name: n for n, name in enumerate(SPLITS)}
    for _, group in duplicates.groupby("group"):
        counts = group["split"].value_counts()
        best = min(counts.index, key=lambda s: (-counts[s], rank.get(s, 99)))
        frame.loc[frame["id"].isin(group["id"]), "split"] = best
    save_split(table.with_frame(frame), path)
    return path


def _write(found: Audit) -> None:
    found.folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("duplicates", found.duplicates), ("label_issues", found.label_issues),
                        ("outliers", found.outliers)):  # fmt: skip
        with atomic_open(found.folder / f"{name}.csv", "w", encoding="utf-8", newline="") as f:
            frame.to_csv(f, index=False)
    write_json(
        found.folder / "audit.json",
        {**found.facts, "counts": found.counts, "split_file": str(found.split_file) if found.split_file else None},
    )
